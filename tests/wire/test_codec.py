"""Wire codec: golden bytes and metadata layouts from the spec (sections 2, 3, 7, 8, appendices)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from vgi_rpc import IPCError, IpcValidation, Level, MethodNotImplementedError
from vgi_rpc._ipc import encode_stream, validate_batch
from vgi_rpc.wire import (
    EMPTY_SCHEMA,
    BatchKind,
    classify,
    empty_batch,
    error_metadata,
    log_metadata,
    message_from_metadata,
    request_metadata,
    rpc_error_from_metadata,
)

# Appendix C: the serialized empty schema.
EMPTY_SCHEMA_BYTES = bytes.fromhex(
    "ffffffff300000001000000000000a000c000600050008000a000000000104000c000000080008000000040008000000"
    "0400000000000000"
)
EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def test_empty_schema_serializes_to_the_spec_blob() -> None:
    assert EMPTY_SCHEMA.serialize().to_pybytes() == EMPTY_SCHEMA_BYTES


def test_every_stream_ends_with_the_eos_marker() -> None:
    data = encode_stream(EMPTY_SCHEMA, [(empty_batch(EMPTY_SCHEMA), None)]).to_pybytes()
    assert data.endswith(EOS)
    assert data.startswith(EMPTY_SCHEMA_BYTES)


def test_request_metadata_carries_method_version_and_id() -> None:
    md = request_metadata("add", "0123456789abcdef", "1.2.3")
    assert md == {
        b"vgi_rpc.method": b"add",
        b"vgi_rpc.request_version": b"1",
        b"vgi_rpc.request_id": b"0123456789abcdef",
        b"vgi_rpc.protocol_version": b"1.2.3",
    }
    assert b"vgi_rpc.protocol_version" not in request_metadata("add", "x")


ZERO = empty_batch(EMPTY_SCHEMA)
ONE = pa.RecordBatch.from_pydict({"a": [1]})
LOG = {b"vgi_rpc.log_level": b"INFO", b"vgi_rpc.log_message": b"m"}


@pytest.mark.parametrize(
    ("batch", "metadata", "kind"),
    [
        (ZERO, None, BatchKind.DATA),
        (ONE, LOG, BatchKind.DATA),  # rows win over metadata
        (ZERO, LOG, BatchKind.LOG),
        (ZERO, {**LOG, b"vgi_rpc.log_level": b"EXCEPTION"}, BatchKind.ERROR),
        (ZERO, {b"vgi_rpc.log_level": b"INFO"}, BatchKind.DATA),  # needs both keys
        (ZERO, {**LOG, b"vgi_rpc.shm_offset": b"0"}, BatchKind.LOG),  # log keys take priority
        (ZERO, {b"vgi_rpc.location": b"https://x"}, BatchKind.EXTERNAL_POINTER),
        (ZERO, {b"vgi_rpc.shm_offset": b"0", b"vgi_rpc.shm_length": b"8"}, BatchKind.SHM_POINTER),
        (ZERO, {b"vgi_rpc.stream_state#b64": b"AA=="}, BatchKind.STATE_TOKEN),
        (ZERO, {b"something.else": b"1"}, BatchKind.DATA),
    ],
)
def test_batch_classification_follows_section_7(
    batch: pa.RecordBatch, metadata: dict[bytes, bytes] | None, kind: BatchKind
) -> None:
    assert classify(batch, metadata) is kind


def test_log_metadata_round_trips_to_a_message() -> None:
    md = log_metadata(Level.WARN, "careful", {"n": 3}, server_id="abcdefabcdef", request_id="r1")
    assert md[b"vgi_rpc.log_level"] == b"WARN"
    assert json.loads(md[b"vgi_rpc.log_extra"]) == {"n": 3}
    msg = message_from_metadata(md)
    assert (msg.level, msg.message, msg.extra, msg.server_id, msg.request_id) == (
        Level.WARN,
        "careful",
        {"n": 3},
        "abcdefabcdef",
        "r1",
    )
    assert b"vgi_rpc.log_extra" not in log_metadata(
        Level.INFO, "x", None, server_id="s", request_id="r"
    )


def _raise_deep(depth: int) -> None:
    if depth == 0:
        raise ValueError("deep")
    _raise_deep(depth - 1)


def test_error_metadata_matches_section_8() -> None:
    md: dict[bytes, bytes] = {}
    try:
        try:
            _raise_deep(10)
        except ValueError as inner:
            raise KeyError("outer") from inner
    except KeyError as exc:
        md = error_metadata(exc, server_id="sid", request_id="rid")
    assert md[b"vgi_rpc.log_level"] == b"EXCEPTION"
    assert md[b"vgi_rpc.log_message"] == b"KeyError: 'outer'"
    extra = json.loads(md[b"vgi_rpc.log_extra"])
    assert extra["exception_type"] == "KeyError"
    assert extra["exception_message"] == "'outer'"
    assert extra["traceback"].startswith("Traceback")
    assert len(extra["frames"]) <= 5
    assert set(extra["frames"][-1]) == {"file", "line", "function", "code"}
    assert "ValueError: deep" in extra["cause"]
    assert "context" not in extra
    assert b"vgi_rpc.error_kind" not in md
    err = rpc_error_from_metadata(md)
    assert (err.error_type, err.error_message, err.request_id) == ("KeyError", "'outer'", "rid")


def test_error_kind_is_written_top_level_and_in_extra() -> None:
    md = error_metadata(MethodNotImplementedError("nope"), server_id="s", request_id="r")
    assert md[b"vgi_rpc.error_kind"] == b"method_not_implemented"
    assert json.loads(md[b"vgi_rpc.log_extra"])["error_kind"] == "method_not_implemented"
    assert rpc_error_from_metadata(md).error_kind == "method_not_implemented"


def test_long_tracebacks_are_truncated() -> None:
    exc = ValueError("x" * 40_000)
    md = error_metadata(exc, server_id="s", request_id="r")
    tb = json.loads(md[b"vgi_rpc.log_extra"])["traceback"]
    assert len(tb) <= 16_000 + 40
    assert tb.endswith("<traceback truncated>")


def test_error_reader_tolerates_minimal_and_unknown_fields() -> None:
    err = rpc_error_from_metadata(
        {b"vgi_rpc.log_level": b"EXCEPTION", b"vgi_rpc.log_message": b"boom"}
    )
    assert (err.error_type, err.error_message, err.remote_traceback, err.error_kind) == (
        "EXCEPTION",
        "boom",
        "",
        None,
    )
    odd = rpc_error_from_metadata(
        {
            b"vgi_rpc.log_level": b"EXCEPTION",
            b"vgi_rpc.log_message": b"m",
            b"vgi_rpc.log_extra": b"not json",
            b"vgi_rpc.error_kind": b"some_future_kind",
        }
    )
    assert odd.error_kind == "some_future_kind"


def _invalid_utf8_batch() -> pa.RecordBatch:
    offsets = pa.py_buffer(b"\x00\x00\x00\x00\x02\x00\x00\x00")
    data = pa.py_buffer(b"\xff\xfe")
    array = pa.StringArray.from_buffers(1, offsets, data)
    return pa.RecordBatch.from_arrays([array], names=["s"])


def test_ipc_validation_levels() -> None:
    bad = _invalid_utf8_batch()
    validate_batch(bad, IpcValidation.NONE)
    validate_batch(bad, IpcValidation.STANDARD)
    with pytest.raises(IPCError, match="FULL validation"):
        validate_batch(bad, IpcValidation.FULL)


def test_full_validation_applies_to_received_requests() -> None:
    from tests._services import Service, ServiceImpl
    from vgi_rpc import RpcServer
    from vgi_rpc.transports import make_pipe_pair

    bad = _invalid_utf8_batch().rename_columns(["name"])
    client, server_side = make_pipe_pair()
    try:
        md = request_metadata("greet", "r")
        client.write_chunks([encode_stream(bad.schema, [(bad, md)])])
        server = RpcServer(Service, ServiceImpl())
        assert server.serve_one(server_side)
        reader = pa.ipc.open_stream(client.reader)
        _, reply = reader.read_next_batch_with_custom_metadata()
        with pytest.raises(StopIteration):
            reader.read_next_batch()
        assert b"IPCError" in reply[b"vgi_rpc.log_message"]
        assert b"Invalid UTF8" in reply[b"vgi_rpc.log_message"]
        # the whole request was consumed, so the connection still serves
        ok = pa.RecordBatch.from_pydict({"name": ["x"], "punctuation": ["!"]})
        client.write_chunks([encode_stream(ok.schema, [(ok, request_metadata("greet", "r2"))])])
        assert server.serve_one(server_side)
        assert pa.ipc.open_stream(client.reader).read_next_batch().to_pydict() == {
            "result": ["hello x!"]
        }
    finally:
        client.close()
        server_side.close()
