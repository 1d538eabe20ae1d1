"""Access records with call statistics, and the wire debug loggers."""

from __future__ import annotations

import logging

import pyarrow as pa
import pytest

from tests._services import Service, ServiceImpl
from vgi_rpc import AnnotatedBatch, RpcError, serve_pipe


def _records(caplog: pytest.LogCaptureFixture) -> list[dict[str, int | str | bool | float]]:
    return [r.vgi_rpc for r in caplog.records if r.name == "vgi_rpc.access"]  # type: ignore[attr-defined]


def test_one_access_record_per_unary_call_with_statistics(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, logger="vgi_rpc.access"),
        serve_pipe(Service, ServiceImpl()) as svc,
    ):
        svc.echo_bytes(data=b"x" * 1000)
        with pytest.raises(RpcError):
            svc.fail(message="no")
    ok, failed = _records(caplog)
    assert ok["method"] == "echo_bytes"
    assert ok["method_type"] == "unary"
    assert ok["status"] == "ok"
    assert ok["protocol"] == "Service"
    assert len(str(ok["protocol_hash"])) == 64
    assert (ok["input_batches"], ok["input_rows"], ok["output_batches"], ok["output_rows"]) == (
        1,
        1,
        1,
        1,
    )
    assert 1000 <= int(ok["input_bytes"]) < 1100  # logical Arrow buffer size: payload + offsets
    assert 1000 <= int(ok["output_bytes"]) < 1100
    assert failed["status"] == "error"
    assert failed["error_type"] == "ValueError"
    assert failed["error_message"] == "no"
    assert str(ok["timestamp"]).endswith("Z")


def test_stream_access_record_counts_every_batch_and_cancel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    floats = pa.schema([("value", pa.float64())])
    with (
        caplog.at_level(logging.INFO, logger="vgi_rpc.access"),
        serve_pipe(Service, ServiceImpl()) as svc,
    ):
        assert len(list(svc.countdown(n=4))) == 4
        with svc.running_sum() as session:
            for _ in range(3):
                session.exchange(AnnotatedBatch.from_pydict({"value": [1.0, 2.0]}, schema=floats))
        for _ in svc.countdown(n=100):
            break
    produced, exchanged, cancelled = _records(caplog)
    assert (produced["method_type"], produced["output_batches"], produced["output_rows"]) == (
        "stream",
        4,
        4,
    )
    # the request batch counts as input too: 1 request row + 3 inputs of 2 rows
    assert exchanged["input_batches"] == 4
    assert exchanged["input_rows"] == 7
    assert exchanged["output_batches"] == 3
    assert cancelled["cancelled"] is True
    assert "cancelled" not in produced
    assert len(str(produced["stream_id"])) == 32
    assert produced["truncated"] == "payload_omitted"  # payloads are logged at DEBUG only


def test_nothing_is_counted_when_no_one_listens(caplog: pytest.LogCaptureFixture) -> None:
    logging.getLogger("vgi_rpc.access").setLevel(logging.WARNING)
    try:
        with serve_pipe(Service, ServiceImpl()) as svc:
            svc.noop()
        assert not _records(caplog)
    finally:
        logging.getLogger("vgi_rpc.access").setLevel(logging.NOTSET)


def test_wire_loggers_show_requests_batches_and_stream_lifecycle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="vgi_rpc.wire"),
        serve_pipe(Service, ServiceImpl()) as svc,
    ):
        svc.greet(name="wire")
        list(svc.countdown(n=1))
    text = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records)
    assert "vgi_rpc.wire.request: sending greet(): 1 rows x 2 cols ['name', 'punctuation']" in text
    assert "vgi_rpc.wire.request: received greet()" in text
    assert "vgi_rpc.wire.response: answered greet(): 1 rows x 1 cols ['result']" in text
    assert "vgi_rpc.wire.batch: greet(): data batch" in text
    assert "vgi_rpc.wire.stream: countdown(): stream opened (Countdown)" in text
    assert "vgi_rpc.wire.stream: countdown(): stream closed" in text
