"""Hostile request bodies, built byte by byte: the regression inputs of issue 9's findings."""

from __future__ import annotations

import io
import struct
from typing import Any

import pyarrow as pa

from vgi_rpc import TransportError
from vgi_rpc._flatbuf import _Buf

METHOD = b"vgi_rpc.method"
VERSION = b"vgi_rpc.request_version"


def stream(batch: pa.RecordBatch, metadata: dict[bytes, bytes]) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch, custom_metadata=metadata)
    return sink.getvalue()


def request(method: str, columns: dict[str, Any], **extra: bytes) -> bytes:
    metadata = {METHOD: method.encode(), VERSION: b"1"}
    metadata.update({key.encode(): value for key, value in extra.items()})
    return stream(pa.RecordBatch.from_pydict(columns), metadata)


def string_offsets_past_data(method: str, name: str, end: int = 1 << 20) -> bytes:
    """A one-row string request whose end offset points ``end`` bytes into a 13-byte buffer.

    Unvalidated, decoding it reads (or copies back to the caller) memory past the body.
    """
    text = b"A" * 13
    body = request(method, {name: [text.decode()]})
    offsets = struct.pack("<ii", 0, len(text)) + text  # the offsets buffer, then the data
    assert body.count(offsets) == 1
    return body.replace(offsets, struct.pack("<ii", 0, end) + text)


def odd_int_width_schema(method: str, name: str) -> bytes:
    """A request whose schema declares a 7-bit integer (pyarrow: ArrowNotImplementedError)."""
    body = request(method, {name: pa.array([5], pa.int8())})
    schema_end = 8 + struct.unpack_from("<i", body, 4)[0]
    # The Int type table holds bitWidth as an int32 8: find which 8 it is by trying each.
    at = body.find(struct.pack("<i", 8), 8)
    while 0 <= at < schema_end:
        patched = body[:at] + struct.pack("<i", 7) + body[at + 4 :]
        try:
            pa.ipc.read_schema(pa.py_buffer(patched[:schema_end]))
        except pa.ArrowNotImplementedError:
            return patched
        except (pa.ArrowInvalid, OSError):
            pass
        at = body.find(struct.pack("<i", 8), at + 1)
    raise AssertionError("no bitWidth field found in the schema message")


def huge_body_length(method: str, name: str) -> bytes:
    """A request batch message claiming a body of nearly 2**63 bytes."""
    body = bytearray(request(method, {name: ["x" * 64]}))
    schema_len = struct.unpack_from("<i", body, 4)[0]
    batch_at = 8 + schema_len
    batch_len = struct.unpack_from("<i", body, batch_at + 4)[0]
    meta = bytes(body[batch_at + 8 : batch_at + 8 + batch_len])
    flatbuffer = _Buf(meta)
    at = flatbuffer.field(flatbuffer.u32(0), 3)  # Message.bodyLength
    assert at, "the batch message has no bodyLength field"
    struct.pack_into("<q", body, batch_at + 8 + at, (1 << 63) - 16)
    return bytes(body)


def wide_schema(method: str, columns: int) -> bytes:
    """A request with ``columns`` int8 columns (distinct names make distinct schemas)."""
    arrays = [pa.array([1], pa.int8())] * columns
    names = [f"c{method}{i}" for i in range(columns)]
    batch = pa.RecordBatch.from_arrays(arrays, names=names)
    return stream(batch, {METHOD: method.encode(), VERSION: b"1"})


def deep_schema(method: str, depth: int) -> bytes:
    """A request whose one column nests ``depth`` lists: ``depth + 1`` levels of fields."""
    t: pa.DataType = pa.int8()
    value: object = 1
    for _ in range(depth):
        t = pa.list_(t)
        value = [value]
    batch = pa.RecordBatch.from_arrays([pa.array([value], t)], names=["deep"])
    return stream(batch, {METHOD: method.encode(), VERSION: b"1"})


class RecordingChannel:
    """A byte-stream channel over fixed input bytes that keeps what the server writes."""

    def __init__(self, data: bytes) -> None:
        self.reader = io.BufferedReader(io.BytesIO(data))
        self.written = bytearray()

    def write_chunks(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.written += memoryview(chunk).cast("B")

    def peer_failure(self, detail: str) -> TransportError:
        return TransportError(detail)

    def close(self) -> None:
        pass
