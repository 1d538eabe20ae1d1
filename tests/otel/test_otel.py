"""OpenTelemetry instrumentation on the pipe, a subprocess worker and HTTP, with the SDK's
in-memory span exporter and metric reader; W3C trace context from the caller's active span."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from opentelemetry.sdk.trace import TracerProvider

from tests._services import Service, ServiceImpl
from tests.conftest import ROOT, worker_env
from tests.otel._helpers import Telemetry
from vgi_rpc import (
    AnnotatedBatch,
    CallContext,
    ExchangeState,
    OutputCollector,
    RpcError,
    RpcServer,
    StderrMode,
    Stream,
    connect,
    instrument_server,
    serve_pipe,
)
from vgi_rpc.http import http_connect, make_wsgi_app, serve_in_thread
from vgi_rpc.otel import OtelConfig

TRANSPORTS = ["pipe", "subprocess", "http"]
COUNTERS = (
    "input_batches",
    "output_batches",
    "input_rows",
    "output_rows",
    "input_bytes",
    "output_bytes",
)
FLOATS = pa.schema([("value", pa.float64())])

SEEN: list[dict[bytes, bytes]] = []


@dataclasses.dataclass
class MetadataSpy(ExchangeState):
    """Keeps the metadata of every input it sees (module level: HTTP rebuilds it from tokens)."""

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        SEEN.append(dict(input.custom_metadata or {}))
        out.emit_pydict({"total": [0.0]})


class SpyImpl(ServiceImpl):
    def running_sum(self) -> Stream[MetadataSpy]:  # type: ignore[override]
        return Stream(pa.schema([("total", pa.float64())]), MetadataSpy(), input_schema=FLOATS)


# The caller's side: a provider of its own, so its spans are never mixed with the server's.
CLIENT = TracerProvider().get_tracer("tests.client")


class Collected:
    """What the server reported, filled in once the connection is closed."""

    spans: list[dict[str, Any]]
    metrics: list[dict[str, Any]]

    def server_spans(self, name: str | None = None) -> list[dict[str, Any]]:
        return [s for s in self.spans if name is None or s["name"] == name]

    def points(self, name: str) -> list[dict[str, Any]]:
        return [p for p in self.metrics if p["name"] == name]


@contextlib.contextmanager
def instrumented(
    kind: str, tmp_path: Any, config: OtelConfig | None = None
) -> Iterator[tuple[Any, Collected]]:
    """A proxy of an instrumented ``Service`` over ``kind``; spans and metrics after the block."""
    collected = Collected()
    if kind == "subprocess":
        out = tmp_path / "otel.json"
        cmd = [sys.executable, "-m", "tests.otel._otel_worker", str(out)]
        with connect(Service, cmd, env=worker_env(), stderr=StderrMode.PIPE) as svc:
            yield svc, collected
        data = json.loads(out.read_text())
        collected.spans, collected.metrics = data["spans"], data["metrics"]
        return
    telemetry = Telemetry.create()
    server = instrument_server(RpcServer(Service, ServiceImpl()), config or telemetry.config)
    if kind == "pipe":
        with serve_pipe(Service, server) as svc:
            yield svc, collected
    else:
        with serve_in_thread(make_wsgi_app(server)) as url, http_connect(Service, url) as svc:
            yield svc, collected
    collected.spans, collected.metrics = telemetry.span_dicts(), telemetry.metric_points()


def _ids(span: Any) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_unary_span_is_the_child_of_the_callers_span(kind: str, tmp_path: Any) -> None:
    with instrumented(kind, tmp_path) as (svc, collected):
        with CLIENT.start_as_current_span("caller") as caller:
            assert svc.echo_bytes(data=b"x" * 1000) == b"x" * 1000
        trace_id, span_id = _ids(caller)
    (span,) = collected.server_spans()
    assert span["name"] == "echo_bytes"
    assert span["kind"] == "SERVER"
    assert span["trace_id"] == trace_id
    assert span["parent_span_id"] == span_id
    attributes = span["attributes"]
    assert attributes["rpc.system"] == "vgi_rpc"
    assert attributes["rpc.service"] == "Service"
    assert attributes["rpc.method"] == "echo_bytes"
    assert attributes["rpc.vgi_rpc.method_type"] == "unary"
    counts = [attributes[f"rpc.vgi_rpc.{name}"] for name in COUNTERS]
    assert counts[:4] == [1, 1, 1, 1]
    assert 1000 <= counts[4] < 1100  # logical Arrow buffer sizes: payload + offsets
    assert 1000 <= counts[5] < 1100
    assert span["status"] == "OK"
    assert "rpc.vgi_rpc.error_type" not in attributes


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_failed_call_has_error_type_exception_event_and_error_status(
    kind: str, tmp_path: Any
) -> None:
    with instrumented(kind, tmp_path) as (svc, collected):
        with pytest.raises(RpcError):
            svc.fail(message="no luck")
        assert svc.add(a=1.0, b=2.0) == 3.0  # the connection stays usable
    failed = collected.server_spans("fail")[0]
    assert failed["status"] == "ERROR"
    assert "ValueError" in failed["status_description"]
    assert failed["attributes"]["rpc.vgi_rpc.error_type"] == "ValueError"
    (event,) = failed["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert event["attributes"]["exception.message"] == "no luck"
    assert failed["attributes"]["rpc.vgi_rpc.output_batches"] == 0
    assert failed["parent_span_id"] is None  # no active span on the caller's side: a root span


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_metrics_count_requests_by_method_and_status_and_record_duration(
    kind: str, tmp_path: Any
) -> None:
    with instrumented(kind, tmp_path) as (svc, collected):
        svc.add(a=1.0, b=2.0)
        svc.add(a=3.0, b=4.0)
        with pytest.raises(RpcError):
            svc.fail(message="x")
    requests = {
        (p["attributes"]["rpc.method"], p["attributes"]["status"]): p["value"]
        for p in collected.points("rpc.server.requests")
    }
    assert requests == {("add", "ok"): 2, ("fail", "error"): 1}
    durations = {
        (p["attributes"]["rpc.method"], p["attributes"]["status"]): p
        for p in collected.points("rpc.server.duration")
    }
    assert durations[("add", "ok")]["count"] == 2
    assert durations[("fail", "error")]["count"] == 1
    assert 0 < durations[("add", "ok")]["sum"] < 5  # seconds
    assert durations[("add", "ok")]["unit"] == "s"
    assert all(p["attributes"]["rpc.service"] == "Service" for p in collected.metrics)


@pytest.mark.parametrize("kind", ["pipe", "subprocess"])
def test_a_stream_gets_one_span_for_the_whole_call_on_byte_streams(
    kind: str, tmp_path: Any
) -> None:
    with instrumented(kind, tmp_path) as (svc, collected):
        with CLIENT.start_as_current_span("caller") as caller:
            assert len(list(svc.countdown(n=3))) == 3
            with svc.running_sum() as session:
                for _ in range(2):
                    session.exchange(
                        AnnotatedBatch.from_pydict({"value": [1.0, 2.0]}, schema=FLOATS)
                    )
        trace_id, span_id = _ids(caller)
    produced, exchanged = collected.server_spans()
    assert (produced["name"], exchanged["name"]) == ("countdown", "running_sum")
    for span in (produced, exchanged):
        assert span["attributes"]["rpc.vgi_rpc.method_type"] == "stream"
        assert (span["trace_id"], span["parent_span_id"]) == (trace_id, span_id)
        assert len(span["attributes"]["rpc.vgi_rpc.stream_id"]) == 32
    assert produced["attributes"]["rpc.vgi_rpc.output_batches"] == 3
    assert produced["attributes"]["rpc.vgi_rpc.output_rows"] == 3
    # the request batch counts as input: 1 request row, then 2 inputs of 2 rows
    assert exchanged["attributes"]["rpc.vgi_rpc.input_batches"] == 3
    assert exchanged["attributes"]["rpc.vgi_rpc.input_rows"] == 5
    assert exchanged["attributes"]["rpc.vgi_rpc.output_batches"] == 2


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_failing_stream_reports_its_error(kind: str, tmp_path: Any) -> None:
    with instrumented(kind, tmp_path) as (svc, collected), pytest.raises(RpcError):
        list(svc.fail_stream(after=2))
    span = collected.server_spans("fail_stream")[-1]
    assert span["status"] == "ERROR"
    assert span["events"][0]["name"] == "exception"
    assert (
        span["attributes"]["rpc.vgi_rpc.error_type"]
        == span["events"][0]["attributes"]["exception.type"]
    )


def test_http_stream_is_one_span_per_request_linked_by_stream_id(tmp_path: Any) -> None:
    with instrumented("http", tmp_path) as (svc, collected):
        with CLIENT.start_as_current_span("caller") as caller:
            with svc.running_sum() as session:
                for _ in range(3):
                    session.exchange(
                        AnnotatedBatch.from_pydict({"value": [1.0, 2.0]}, schema=FLOATS)
                    )
            assert len(list(svc.countdown(n=3))) == 3
        trace_id, span_id = _ids(caller)
    exchanged = collected.server_spans("running_sum")
    assert len(exchanged) == 4  # /init, then one /exchange per input
    assert {(s["trace_id"], s["parent_span_id"]) for s in exchanged} == {(trace_id, span_id)}
    assert len({s["attributes"]["rpc.vgi_rpc.stream_id"] for s in exchanged}) == 1
    assert sum(s["attributes"]["rpc.vgi_rpc.input_rows"] for s in exchanged) == 1 + 3 * 2
    assert sum(s["attributes"]["rpc.vgi_rpc.output_batches"] for s in exchanged) == 3
    produced = collected.server_spans("countdown")  # lockstep: a request per produced batch
    assert len({s["attributes"]["rpc.vgi_rpc.stream_id"] for s in produced}) == 1
    assert sum(s["attributes"]["rpc.vgi_rpc.output_batches"] for s in produced) == 3
    assert {s["parent_span_id"] for s in produced} == {span_id}
    stream_ids = {s["attributes"]["rpc.vgi_rpc.stream_id"] for s in exchanged + produced}
    assert len(stream_ids) == 2  # one per stream


def test_trace_context_never_reaches_the_implementations_input_metadata(tmp_path: Any) -> None:
    SEEN.clear()
    telemetry = Telemetry.create()
    server = instrument_server(RpcServer(Service, SpyImpl()), telemetry.config)
    with (
        serve_in_thread(make_wsgi_app(server)) as url,
        http_connect(Service, url) as svc,
        CLIENT.start_as_current_span("caller"),
        svc.running_sum() as session,
    ):
        batch = pa.RecordBatch.from_pydict({"value": [1.0]}, schema=FLOATS)
        session.exchange(AnnotatedBatch(batch, pa.KeyValueMetadata({b"mine": b"1"})))
    assert len(SEEN) == 1
    assert SEEN[0] == {b"mine": b"1"}  # the caller's own metadata only
    assert telemetry.span_dicts()[-1]["parent_span_id"] is not None


def test_spans_made_by_the_implementation_nest_under_the_server_span(tmp_path: Any) -> None:
    telemetry = Telemetry.create()
    tracer = telemetry.tracer_provider.get_tracer("tests.impl")

    class Traced(ServiceImpl):
        def add(self, a: float, b: float) -> float:
            with tracer.start_as_current_span("inner"):
                return a + b

    server = instrument_server(RpcServer(Service, Traced()), telemetry.config)
    with serve_pipe(Service, server) as svc:
        svc.add(a=1.0, b=2.0)
        svc.add(a=1.0, b=2.0)
    inner, outer, inner2, outer2 = telemetry.span_dicts()
    assert (inner["name"], outer["name"]) == ("inner", "add")
    assert inner["parent_span_id"] == outer["span_id"]
    assert inner2["parent_span_id"] == outer2["span_id"]
    assert outer2["parent_span_id"] is None  # nothing leaks from one call into the next


def test_a_call_the_sampler_drops_is_counted_and_its_children_are_dropped_too() -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    telemetry = Telemetry.create()
    dropping = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    dropping.add_span_processor(SimpleSpanProcessor(telemetry.spans))
    # The implementation's tracer samples every root span: only a dropped parent drops it.
    tracer = telemetry.tracer_provider.get_tracer("tests.impl")
    seen: list[tuple[bool, bool]] = []

    class Traced(ServiceImpl):
        def add(self, a: float, b: float) -> float:
            with tracer.start_as_current_span("inner") as inner:
                context = inner.get_span_context()
                seen.append((context.is_valid, inner.is_recording()))
                return a + b

    config = OtelConfig(tracer_provider=dropping, meter_provider=telemetry.meter_provider)
    server = instrument_server(RpcServer(Service, Traced()), config)
    with serve_pipe(Service, server) as svc:
        assert svc.add(a=1.0, b=2.0) == 3.0
        with pytest.raises(RpcError):
            svc.fail(message="x")
    assert telemetry.span_dicts() == []  # nothing sampled, nothing exported
    assert seen == [(True, False)]  # the implementation's span joined the dropped server span
    counts = {
        p["attributes"]["status"]: p["value"]
        for p in telemetry.metric_points()
        if p["name"] == "rpc.server.requests"
    }
    assert counts == {"ok": 1, "error": 1}


def test_config_switches_and_custom_attributes(tmp_path: Any) -> None:
    telemetry = Telemetry.create()
    config = OtelConfig(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        enable_metrics=False,
        record_exceptions=False,
        custom_attributes={"deployment.environment": "test"},
    )
    with instrumented("pipe", tmp_path, config) as (svc, _), pytest.raises(RpcError):
        svc.fail(message="x")
    assert telemetry.metric_points() == []
    (span,) = telemetry.span_dicts()
    assert span["events"] == []
    assert span["attributes"]["deployment.environment"] == "test"


def test_instrument_server_returns_the_server_and_is_exported() -> None:
    import vgi_rpc
    import vgi_rpc.otel

    server = RpcServer(Service, ServiceImpl())
    assert vgi_rpc.instrument_server is vgi_rpc.otel.instrument_server
    assert instrument_server(server) is server
    assert len(server.observers) == 1


def test_import_vgi_rpc_never_imports_opentelemetry_and_clients_skip_propagation() -> None:
    code = (
        "import sys, vgi_rpc\n"
        "from vgi_rpc.rpc import with_trace_context\n"
        "from tests._services import Service, ServiceImpl\n"
        "with vgi_rpc.serve_pipe(Service, ServiceImpl()) as svc:\n"
        "    assert svc.add(a=1.0, b=2.0) == 3.0\n"
        "md = {b'k': b'v'}\n"
        "assert with_trace_context(md) is md\n"
        "assert vgi_rpc.RpcServer(Service, ServiceImpl()).observers == []\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
