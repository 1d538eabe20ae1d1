"""What ``instrument_server`` costs a unary call, and what it costs when it is not used.

Ours only, run in the project venv (it needs ``opentelemetry-sdk``, in the
``dev`` extra). Every mode runs in its own child process, pinned to CPU 0
(``taskset -c 0``), serving ``Bench.add`` over ``serve_pipe``; rounds
interleave the modes, and each child reports its best batch.

=============  ==============================================================
mode           what runs
=============  ==============================================================
no-sdk         plain server; ``opentelemetry`` cannot even be imported
plain          plain server; the SDK is imported (and a global provider set)
otel           ``instrument_server`` with the SDK: a span per call into an
               ``InMemorySpanExporter`` (``SimpleSpanProcessor``), the counter
               and histogram into an ``InMemoryMetricReader``
otel-batch     as ``otel`` with a ``BatchSpanProcessor`` (what production uses)
otel+parent    as ``otel``, inside an active client span: the client sends
               ``traceparent`` and the server span is its child
=============  ==============================================================

It also times the two checks an uninstrumented path makes per call (the
client's ``with_trace_context`` and the server's ``start_record``) to show
the no-SDK path costs nothing measurable. Nothing here fails on speed::

    .venv/bin/python benchmarks/otel_overhead.py [--calls 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Protocol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("no-sdk", "plain", "otel", "otel-batch", "otel+parent")


class Bench(Protocol):
    """The benchmarked service."""

    def add(self, a: float, b: float) -> float:
        """Add two numbers."""
        ...


class BenchImpl:
    """Its implementation."""

    def add(self, a: float, b: float) -> float:
        """Add two numbers."""
        return a + b


def _server(mode: str) -> tuple[Any, Any]:
    """The server for ``mode`` and its span exporter (``None`` without the SDK)."""
    if mode == "no-sdk":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import fails: no SDK
    from vgi_rpc import RpcServer

    server = RpcServer(Bench, BenchImpl())
    if mode == "no-sdk":
        return server, None
    from opentelemetry import trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from vgi_rpc.otel import OtelConfig, instrument_server

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    processor = BatchSpanProcessor if mode == "otel-batch" else SimpleSpanProcessor
    tracer_provider.add_span_processor(processor(spans))
    trace.set_tracer_provider(tracer_provider)
    if mode.startswith("otel"):
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        instrument_server(server, OtelConfig(tracer_provider, meter_provider))
    return server, spans


def _worker(mode: str) -> None:
    """Subprocess server for ``--transport subprocess``."""
    from vgi_rpc import run_server

    server, _ = _server(mode)
    run_server(server)


def _connect(transport: str, mode: str, server: Any, stack: contextlib.ExitStack) -> Any:
    """The proxy of ``Bench`` over ``transport`` (closed with ``stack``)."""
    if transport == "pipe":
        from vgi_rpc import serve_pipe

        return stack.enter_context(serve_pipe(Bench, server))
    if transport == "subprocess":
        from vgi_rpc import connect

        cmd = [sys.executable, os.path.abspath(__file__), "--worker", mode]
        return stack.enter_context(connect(Bench, cmd))
    from vgi_rpc.http import http_connect, make_wsgi_app, serve_in_thread

    app = make_wsgi_app(server, signing_key=b"k" * 32)
    url = stack.enter_context(serve_in_thread(app, threads=1))
    return stack.enter_context(http_connect(Bench, url))


def _child(transport: str, mode: str, calls: int, batches: int) -> dict[str, Any]:
    server, spans = _server(mode)
    parent: Any = contextlib.nullcontext()
    if mode == "otel+parent":
        from opentelemetry.sdk.trace import TracerProvider

        parent = TracerProvider().get_tracer("bench.client").start_as_current_span("client")
    best = float("inf")
    with contextlib.ExitStack() as stack, parent:
        bench = _connect(transport, mode, server, stack)
        for _ in range(calls // 5):  # warm up
            bench.add(a=1.0, b=2.0)
        for _ in range(batches):
            if spans is not None:
                spans.clear()
            start = time.perf_counter()
            for _ in range(calls):
                bench.add(a=1.0, b=2.0)
            best = min(best, (time.perf_counter() - start) / calls)
    loaded = any(
        name.startswith("opentelemetry") and sys.modules[name] is not None for name in sys.modules
    )
    return {"mode": mode, "us_per_call": best * 1e6, "opentelemetry_loaded": loaded}


def _checks(calls: int) -> dict[str, float]:
    """ns per call of the checks an uninstrumented call makes (no SDK loaded)."""
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    import logging

    from vgi_rpc import RpcServer
    from vgi_rpc.rpc import with_trace_context
    from vgi_rpc.wire import keys as k

    logging.getLogger("vgi_rpc.access").setLevel(logging.WARNING)
    server = RpcServer(Bench, BenchImpl())
    handler = server.handler(None, "add")
    assert handler is not None
    metadata = {k.METHOD_KEY: b"add"}
    out: dict[str, float] = {}
    start = time.perf_counter()
    for _ in range(calls):
        with_trace_context(metadata)
    out["with_trace_context_ns"] = (time.perf_counter() - start) / calls * 1e9
    start = time.perf_counter()
    for _ in range(calls):
        server.start_record(handler, "rid", None)
    out["start_record_ns"] = (time.perf_counter() - start) / calls * 1e9
    return out


def _floor(calls: int) -> dict[str, float]:
    """us per call: the SDK's own floor (a bare span, a histogram point) vs one observed call."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from vgi_rpc import RpcServer
    from vgi_rpc.otel import OtelConfig, instrument_server
    from vgi_rpc.wire import keys as k

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tracer = tracer_provider.get_tracer("floor")
    histogram = meter_provider.get_meter("floor").create_histogram("floor")
    server = instrument_server(
        RpcServer(Bench, BenchImpl()), OtelConfig(tracer_provider, meter_provider)
    )
    handler = server.handler(None, "add")
    assert handler is not None
    metadata = {k.METHOD_KEY: b"add"}
    out: dict[str, float] = {}
    start = time.perf_counter()
    for _ in range(calls):
        tracer.start_span("add").end()
        histogram.record(0.001, {"rpc.method": "add"})
    out["sdk_floor_us"] = (time.perf_counter() - start) / calls * 1e6
    spans.clear()
    start = time.perf_counter()
    for _ in range(calls):
        record = server.start_record(handler, "rid", None, metadata=metadata)
        assert record is not None
        record.finish()
    out["observed_call_us"] = (time.perf_counter() - start) / calls * 1e6
    return out


def _pin() -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", "0"] if taskset else []


def _run(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [*_pin(), sys.executable, os.path.abspath(__file__), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Drive the children, print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transports", default="pipe,subprocess,http")
    parser.add_argument("--child", choices=[*MODES, "checks", "floor"])
    parser.add_argument("--transport", default="pipe")
    parser.add_argument("--worker", choices=MODES)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker)
        return
    if args.child == "checks":
        print(json.dumps(_checks(args.calls * 100)))
        return
    if args.child == "floor":
        print(json.dumps(_floor(args.calls)))
        return
    if args.child:
        print(json.dumps(_child(args.transport, args.child, args.calls, args.batches)))
        return
    print(
        f"pinned: {' '.join(_pin()) or 'no (taskset not found)'}; python {sys.version.split()[0]}"
    )
    for transport in args.transports.split(","):
        calls = args.calls if transport != "http" else max(args.calls // 5, 100)
        samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(args.rounds):
            for mode in MODES:
                child = ["--child", mode, "--transport", transport, "--calls", str(calls)]
                result = _run([*child, "--batches", str(args.batches)])
                samples[mode].append(result["us_per_call"])
                if mode == "no-sdk":
                    assert not result["opentelemetry_loaded"], (
                        "the no-sdk child loaded opentelemetry"
                    )
        print(f"\nunary add() over {transport}, {calls} calls x {args.batches} batches per child")
        print(f"{'mode':<14}{'median us/call':>16}{'best':>10}{'/ plain':>9}   rounds")
        median = {mode: statistics.median(values) for mode, values in samples.items()}
        for mode, values in samples.items():
            rounds = " ".join(f"{v:.1f}" for v in values)
            ratio = median[mode] / median["plain"]
            print(f"{mode:<14}{median[mode]:>16.1f}{min(values):>10.1f}{ratio:>9.3f}   {rounds}")
    checks = _run(["--child", "checks", "--calls", str(args.calls)])
    total = checks["with_trace_context_ns"] + checks["start_record_ns"]
    print(
        f"\nno-SDK path per call (no observer, access log off): client with_trace_context "
        f"{checks['with_trace_context_ns']:.0f} ns + server start_record "
        f"{checks['start_record_ns']:.0f} ns = {total / 1000:.2f} us"
    )
    floor = _run(["--child", "floor", "--calls", str(args.calls)])
    print(
        f"instrumented, outside any transport: one call's observer work "
        f"{floor['observed_call_us']:.1f} us; the SDK's floor (a bare span + one histogram "
        f"point) {floor['sdk_floor_us']:.1f} us"
    )


if __name__ == "__main__":
    main()
