"""IPC bytes a peer hands over outside a request: shared-memory batches, ``__describe__``
schemas, nested payloads the CLI prints. Each is bounded and refused with a typed error."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests._hostile import string_offsets_past_data, wide_schema
from tests._services import Service, ServiceImpl
from vgi_rpc import IPCError, ProtocolError, RpcServer
from vgi_rpc._ipc import encode_stream
from vgi_rpc.cli._values import plain
from vgi_rpc.rpc._describe import parse_describe_batch
from vgi_rpc.shm import read_stored_batch

BATCH = pa.record_batch({"s": ["a", "b"], "n": [1, 2]})


def _stored(batch: pa.RecordBatch) -> pa.Buffer:
    return encode_stream(batch.schema, [(batch, None)])


def test_a_stored_batch_is_read_in_place() -> None:
    data = _stored(BATCH)
    batch = read_stored_batch(data, 4096, BATCH.schema)
    assert batch.equals(BATCH)
    values = batch.column(0).buffers()[2]
    assert values is not None
    assert data.address <= values.address < data.address + data.size


def test_a_stored_batch_must_have_its_pointers_schema() -> None:
    other = pa.record_batch({"s": [1, 2], "n": [1, 2]})
    with pytest.raises(IPCError, match="another schema than its pointer batch"):
        read_stored_batch(_stored(other), 4096, BATCH.schema)


@pytest.mark.parametrize(
    "data",
    [
        wide_schema("m", 10_001),
        b"\xff\xff\xff\xff\x10\x00\x00\x00" + b"\x00" * 16,
        b"\xff\xff\xff\xff\xff\xff\xff\x7f",  # a header claimed past the stored bytes
    ],
    ids=["wide schema", "garbage header", "header past the end"],
)
def test_a_malformed_stored_batch_is_an_ipc_error(data: bytes) -> None:
    with pytest.raises(IPCError, match="shared-memory offset 4096"):
        read_stored_batch(pa.py_buffer(data), 4096, None)


def _describe_with(column: str, value: object) -> pa.RecordBatch:
    batch, _ = RpcServer(Service, ServiceImpl(), enable_describe=True).describe()
    columns = batch.to_pydict()
    columns[column] = [value] * batch.num_rows
    return pa.RecordBatch.from_pydict(columns, schema=batch.schema)


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("params_schema_ipc", b"\xff\xff\xff\xff\x08\x00\x00\x00garbage!", "params schema"),
        ("result_schema_ipc", wide_schema("m", 10_001), "result schema"),
        ("result_schema_ipc", None, "result schema is NoneType"),
    ],
)
def test_a_malformed_describe_answer_is_a_protocol_error(
    column: str, value: object, problem: str
) -> None:
    with pytest.raises(ProtocolError, match=problem):
        parse_describe_batch(_describe_with(column, value), None)


def test_the_cli_prints_a_malformed_nested_payload_as_bytes() -> None:
    crafted = string_offsets_past_data("m", "name")  # unchecked, to_pylist reads past the body
    shown = plain(crafted)
    assert isinstance(shown, str)
    assert shown.startswith("base64:")
    good = encode_stream(BATCH.schema, [(BATCH, None)]).to_pybytes()
    assert plain(good) == [{"s": "a", "n": 1}, {"s": "b", "n": 2}]
