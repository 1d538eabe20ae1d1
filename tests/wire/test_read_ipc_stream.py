"""``read_ipc_stream``: a whole IPC stream from untrusted bytes, read like a request."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests._hostile import stream, string_offsets_past_data
from vgi_rpc import IPCError, IpcValidation, ResourceLimits, read_ipc_stream

EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _stream(*batches: pa.RecordBatch) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue()


def test_every_batch_comes_back_in_place() -> None:
    first = pa.record_batch({"s": ["a", None], "n": [1.5, 2.5]})
    second = pa.record_batch({"s": ["c", "d"], "n": [3.5, None]})
    data = _stream(first, second)
    schema, batches = read_ipc_stream(data)
    assert schema.equals(first.schema)
    assert [b.to_pylist() for b in batches] == [first.to_pylist(), second.to_pylist()]
    for batch in batches:
        values = batch.column(0).buffers()[2]
        assert values is not None
        assert data.address <= values.address < data.address + data.size  # a slice, not a copy


def test_dictionary_batches_are_read_with_their_dictionaries() -> None:
    first = pa.record_batch({"d": pa.array(["x", "y", "x"]).dictionary_encode()})
    second = pa.record_batch({"d": pa.array(["z"]).dictionary_encode()})
    _, batches = read_ipc_stream(_stream(first, second))
    assert [b.column(0).to_pylist() for b in batches] == [["x", "y", "x"], ["z"]]


def test_offsets_past_the_data_are_refused_unless_validation_is_skipped() -> None:
    data = string_offsets_past_data("m", "name")
    with pytest.raises(IPCError, match=r"not a valid Arrow IPC stream: .*FULL validation"):
        read_ipc_stream(data)
    _, batches = read_ipc_stream(data, validation=IpcValidation.NONE)  # framing still checked
    assert batches[0].num_rows == 1


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "it is empty"),
        (b"not arrow at all", "must start with 0xFFFFFFFF"),
        (EOS, "must start with a schema message"),
    ],
)
def test_what_is_not_a_stream_is_an_ipc_error(data: bytes, problem: str) -> None:
    with pytest.raises(IPCError, match=problem):
        read_ipc_stream(data)


def test_bytes_after_the_end_of_the_stream_are_refused() -> None:
    data = _stream(pa.record_batch({"a": [1]})).to_pybytes()
    with pytest.raises(IPCError, match="bytes follow its end-of-stream marker"):
        read_ipc_stream(data + b"\x00")


def test_limits_bound_the_schema_and_no_message_is_larger_than_the_bytes() -> None:
    nested = pa.record_batch({"l": pa.array([[[1]]])})
    with pytest.raises(IPCError, match="max_nesting_depth"):
        read_ipc_stream(_stream(nested), ResourceLimits(max_nesting_depth=1))
    wide = pa.record_batch({f"c{i}": [i] for i in range(20)})
    with pytest.raises(IPCError, match="max_columns"):
        read_ipc_stream(_stream(wide), ResourceLimits(max_columns=10))
    whole = _stream(pa.record_batch({"a": list(range(1000))})).to_pybytes()
    with pytest.raises(IPCError):  # a body claimed past the end is not waited for or allocated
        read_ipc_stream(whole[: len(whole) // 2])


def test_metadata_rides_along_untouched() -> None:
    data = stream(pa.record_batch({"a": [1]}), {b"k": b"v"})
    _, batches = read_ipc_stream(data)
    assert batches[0].to_pylist() == [{"a": 1}]
