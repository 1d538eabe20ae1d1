"""The six ``vgi_rpc.wire.*`` debug loggers of seed 002 speak on every transport, and cost nothing when off."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pyarrow as pa
import pytest

from tests._services import Service, ServiceImpl
from tests.conftest import WORKER, worker_env
from vgi_rpc import (
    RpcError,
    RpcServer,
    StderrMode,
    connect,
    http_connect,
    make_wsgi_app,
    serve_pipe,
)
from vgi_rpc.http import serve_in_thread

SIX = ("request", "response", "batch", "stream", "transport", "http")


@pytest.fixture
def wire(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger="vgi_rpc.wire"):
        yield caplog


def _lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == f"vgi_rpc.wire.{logger}"]


def _has(caplog: pytest.LogCaptureFixture, logger: str, pattern: str) -> None:
    lines = _lines(caplog, logger)
    assert any(re.search(pattern, line) for line in lines), (pattern, lines)


def test_pipe_unary_stream_and_error_traffic(wire: pytest.LogCaptureFixture) -> None:
    with serve_pipe(Service, ServiceImpl(), shm_size=8 << 20) as svc:
        svc.greet(name="wire")
        list(svc.countdown(n=2))
        with svc.running_sum() as session:
            session.exchange(pa.RecordBatch.from_pydict({"value": [1.0, 2.0]}))
        with pytest.raises(RpcError):
            svc.fail(message="boom")
        svc.echo_big(data=b"x" * (1 << 20))
    # request: what was sent and received, arguments included
    _has(
        wire,
        "request",
        r"sending greet\(\): 1 rows x 2 cols \['name', 'punctuation'\] values=\{'name': 'wire'",
    )
    _has(wire, "request", r"received greet\(\)")
    # response: results, error batches, and shared-memory routing
    _has(
        wire,
        "response",
        r"answered greet\(\): 1 rows x 1 cols \['result'\] values=\{'result': 'hello wire!'\}",
    )
    _has(wire, "response", r"answered fail\(\) with an error batch: .*vgi_rpc.log_message.*boom")
    _has(wire, "response", r"routed via shared memory \S+: 1 rows, \d+ bytes at offset \d+")
    # batch: how the client classified each batch
    _has(wire, "batch", r"greet\(\): data batch")
    _has(wire, "batch", r"fail\(\): error batch")
    # stream: both ends of the lifecycle, turn by turn
    _has(wire, "stream", r"countdown\(\): stream opened \(header: False\)")
    _has(
        wire, "stream", r"countdown\(\): tick -> 1 rows x 1 cols \['value'\] values=\{'value': 2\}"
    )
    _has(wire, "stream", r"countdown\(\): tick, input 0 rows")
    _has(wire, "stream", r"countdown\(\): the server finished the stream")
    _has(wire, "stream", r"running_sum\(\): exchange -> .*values=\{'total': 3.0\}")
    _has(wire, "stream", r"running_sum\(\): stream closed by the client")
    _has(wire, "stream", r"running_sum\(\): stream closed$")
    # transport: channel open and close with descriptors
    _has(wire, "transport", r"channel open: read fd \d+, write fd \d+")
    _has(wire, "transport", r"channel close: read fd \d+, write fd \d+")


def test_subprocess_transport_names_the_worker(wire: pytest.LogCaptureFixture) -> None:
    with connect(Service, [*WORKER, "service"], env=worker_env(), stderr=StderrMode.PIPE) as svc:
        svc.noop()
    _has(wire, "transport", r"worker started: pid \d+, cmd ")
    _has(wire, "transport", r"worker exited: pid \d+, status 0")


def test_http_shows_urls_statuses_and_body_sizes(wire: pytest.LogCaptureFixture) -> None:
    app = make_wsgi_app(RpcServer(Service, ServiceImpl()), signing_key=b"k" * 32)
    with serve_in_thread(app) as url, http_connect(Service, url) as svc:
        svc.greet(name="http")
        list(svc.countdown(n=1))
    escaped = re.escape(url)
    # the client's view
    _has(
        wire,
        "http",
        rf"POST {escaped}/vgi/greet -> 200 \(request body \d+ bytes, response body \d+ bytes",
    )
    _has(wire, "http", rf"POST {escaped}/vgi/countdown/init -> 200")
    _has(wire, "http", rf"POST {escaped}/vgi/countdown/exchange -> 200")
    # the server's view
    _has(
        wire,
        "http",
        r"POST http://127\.0\.0\.1:\d+/vgi/greet -> 200 \(request body \d+ bytes, response body \d+ bytes\)",
    )
    _has(wire, "request", r"received greet\(\)")


def test_every_logger_spoke(wire: pytest.LogCaptureFixture) -> None:
    app = make_wsgi_app(RpcServer(Service, ServiceImpl()), signing_key=b"k" * 32)
    with serve_pipe(Service, ServiceImpl()) as svc:
        list(svc.countdown(n=1))
    with serve_in_thread(app) as url, http_connect(Service, url) as remote:
        remote.noop()
    assert {name for name in SIX if _lines(wire, name)} == set(SIX)


def test_nothing_is_formatted_while_the_loggers_are_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """With DEBUG off, no batch is ever rendered: the level is checked before any formatting."""
    import vgi_rpc.rpc._wire_log as wire_log

    def forbidden(*_: object) -> str:
        raise AssertionError("describe_batch ran while the wire loggers were off")

    for module in ("_wire_log", "_client", "_server", "_step", "_call_host", "_server_stream"):
        monkeypatch.setattr(f"vgi_rpc.rpc.{module}.describe_batch", forbidden, raising=False)
    assert wire_log.describe_batch is forbidden
    wire_logger = logging.getLogger("vgi_rpc.wire")
    old = wire_logger.level
    wire_logger.setLevel(logging.INFO)
    try:
        with serve_pipe(Service, ServiceImpl(), shm_size=8 << 20) as svc:
            svc.greet(name="quiet")
            list(svc.countdown(n=2))
            with svc.running_sum() as session:
                session.exchange(pa.RecordBatch.from_pydict({"value": [1.0]}))
            with pytest.raises(RpcError):
                svc.fail(message="boom")
            svc.echo_big(data=b"x" * (1 << 20))
    finally:
        wire_logger.setLevel(old)
