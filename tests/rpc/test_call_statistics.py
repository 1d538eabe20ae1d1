"""Call statistics on the ``vgi_rpc.access`` LogRecord itself, and call observers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests._log_records import Keep
from tests._services import Service, ServiceImpl
from vgi_rpc import AnnotatedBatch, CallStatistics, RpcError, RpcServer, serve_pipe
from vgi_rpc.access_log import JsonAccessFormatter
from vgi_rpc.rpc import AuthContext, CallRecord
from vgi_rpc.wire import keys as k

COUNTERS = (
    "input_batches",
    "output_batches",
    "input_rows",
    "output_rows",
    "input_bytes",
    "output_bytes",
)


@pytest.fixture
def access() -> Iterator[Keep]:
    logger = logging.getLogger("vgi_rpc.access")
    handler = Keep()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_call_statistics_is_public() -> None:
    import vgi_rpc

    assert "CallStatistics" in vgi_rpc.__all__
    stats = CallStatistics()
    assert [getattr(stats, name) for name in COUNTERS] == [0] * 6


def test_access_record_carries_statistics_as_logrecord_attributes(access: Keep) -> None:
    with serve_pipe(Service, ServiceImpl()) as svc:
        svc.echo_bytes(data=b"x" * 1000)
        with pytest.raises(RpcError):
            svc.fail(message="no")
    ok, failed = access.records
    assert ok.levelno == logging.INFO
    assert (ok.input_batches, ok.output_batches, ok.input_rows, ok.output_rows) == (1, 1, 1, 1)  # type: ignore[attr-defined]
    assert 1000 <= ok.input_bytes < 1100  # type: ignore[attr-defined]
    assert 1000 <= ok.output_bytes < 1100  # type: ignore[attr-defined]
    assert (ok.method, ok.protocol, ok.status, ok.error_type) == ("echo_bytes", "Service", "ok", "")  # type: ignore[attr-defined]
    assert (failed.method, failed.status, failed.error_type) == ("fail", "error", "ValueError")  # type: ignore[attr-defined]
    assert failed.output_batches == 0  # type: ignore[attr-defined]
    # the mapping the JSON formatter reads is still there, with the same values
    assert ok.vgi_rpc["input_bytes"] == ok.input_bytes  # type: ignore[attr-defined]


def test_any_formatter_can_use_the_attributes(access: Keep) -> None:
    access.setFormatter(
        logging.Formatter("%(method)s %(status)s rows=%(input_rows)d/%(output_rows)d")
    )
    with serve_pipe(Service, ServiceImpl()) as svc:
        assert len(list(svc.countdown(n=3))) == 3
    assert [access.format(r) for r in access.records] == ["countdown ok rows=1/3"]


def test_json_formatter_writes_the_counters(access: Keep) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonAccessFormatter())
    logging.getLogger("vgi_rpc.access").addHandler(handler)
    try:
        with serve_pipe(Service, ServiceImpl()) as svc:
            svc.add(a=1.0, b=2.0)
    finally:
        logging.getLogger("vgi_rpc.access").removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    payload = json.loads(line)
    assert payload["method"] == "add"
    assert payload["status"] == "ok"
    assert [payload[name] for name in COUNTERS][:4] == [1, 1, 1, 1]
    assert payload["input_bytes"] > 0


class Recorder:
    """A call observer that keeps what it is told."""

    def __init__(self) -> None:
        self.started: list[tuple[str, dict[bytes, bytes] | None]] = []
        self.finished: list[tuple[str, str | None, dict[str, int], float]] = []

    def start(
        self, call: CallRecord, metadata: dict[bytes, bytes] | None, auth: AuthContext | None
    ) -> Recorder:
        self.started.append((call.method, metadata))
        return self

    def finish(self, call: CallRecord, error: BaseException | None, duration: float) -> None:
        stats = {name: getattr(call.stats, name) for name in COUNTERS}
        self.finished.append(
            (call.method, type(error).__name__ if error else None, stats, duration)
        )


def test_observers_see_every_call_even_with_the_access_log_off() -> None:
    logging.getLogger("vgi_rpc.access").setLevel(logging.WARNING)
    try:
        recorder = Recorder()
        server = RpcServer(Service, ServiceImpl()).add_observer(recorder)
        with serve_pipe(Service, server) as svc:
            svc.add(a=1.0, b=2.0)
            with svc.running_sum() as session:
                session.exchange(AnnotatedBatch.from_pydict({"value": [1.0, 2.0]}))
            with pytest.raises(RpcError):
                svc.fail(message="x")
    finally:
        logging.getLogger("vgi_rpc.access").setLevel(logging.NOTSET)
    assert [m for m, _ in recorder.started] == ["add", "running_sum", "fail"]
    assert recorder.started[0][1] is not None
    assert recorder.started[0][1][k.METHOD_KEY] == b"add"
    (add, summed, failed) = recorder.finished
    assert add[1] is None
    assert add[2]["output_rows"] == 1
    assert summed[2]["input_rows"] == 3
    assert summed[2]["output_batches"] == 1
    assert failed[1] == "ValueError"
    assert all(duration > 0 for *_, duration in recorder.finished)


def test_a_failing_observer_never_fails_the_call(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def start(self, call: CallRecord, metadata: Any, auth: Any) -> Broken:
            return self

        def finish(self, call: CallRecord, error: Any, duration: float) -> None:
            raise RuntimeError("observer bug")

    class BrokenAtStart:
        def start(self, call: CallRecord, metadata: Any, auth: Any) -> None:
            raise RuntimeError("observer bug at start")

    server = RpcServer(Service, ServiceImpl()).add_observer(Broken()).add_observer(BrokenAtStart())
    with caplog.at_level(logging.ERROR, logger="vgi_rpc.rpc"), serve_pipe(Service, server) as svc:
        assert svc.add(a=1.0, b=2.0) == 3.0
    assert any("observer" in r.getMessage() for r in caplog.records)


def test_no_record_without_access_log_or_observer() -> None:
    server = RpcServer(Service, ServiceImpl())
    logging.getLogger("vgi_rpc.access").setLevel(logging.WARNING)
    try:
        handler = server.handler(None, "add")
        assert handler is not None
        assert server.start_record(handler, "rid", None) is None
        assert server.observers == []
    finally:
        logging.getLogger("vgi_rpc.access").setLevel(logging.NOTSET)
