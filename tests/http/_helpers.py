"""Raw-HTTP helpers for the HTTP transport tests: build request bodies, read answers."""

from __future__ import annotations

import io

import pyarrow as pa

from vgi_rpc.http import ARROW_CONTENT_TYPE
from vgi_rpc.rpc._request import ONE_EMPTY_ROW
from vgi_rpc.wire import keys as k

ARROW = {"Content-Type": ARROW_CONTENT_TYPE}


def request_body(method: str, columns: dict[str, list[object]] | None = None) -> bytes:
    """One request stream for ``method`` with the given parameter columns."""
    batch = pa.RecordBatch.from_pydict(columns) if columns else ONE_EMPTY_ROW
    metadata = {k.METHOD_KEY: method.encode(), k.REQUEST_VERSION_KEY: b"1"}
    return stream_body(batch, metadata)


def stream_body(batch: pa.RecordBatch, metadata: dict[bytes, bytes] | None = None) -> bytes:
    """One IPC stream holding ``batch`` with ``metadata``."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch, custom_metadata=metadata)
    return sink.getvalue()


def read_batches(body: bytes) -> list[tuple[pa.RecordBatch, dict[bytes, bytes]]]:
    """Every batch of every IPC stream in ``body``, with its metadata."""
    source = pa.BufferReader(body)
    out: list[tuple[pa.RecordBatch, dict[bytes, bytes]]] = []
    while source.tell() < len(body):
        reader = pa.ipc.open_stream(source)
        while True:
            try:
                batch, metadata = reader.read_next_batch_with_custom_metadata()
            except StopIteration:
                break
            out.append((batch, dict(metadata or {})))
    return out


def error_message(body: bytes) -> str:
    """The EXCEPTION message carried by an Arrow error body."""
    for _, metadata in read_batches(body):
        if metadata.get(k.LOG_LEVEL_KEY) == b"EXCEPTION":
            return metadata[k.LOG_MESSAGE_KEY].decode()
    raise AssertionError("no error batch in the body")


def tokens(body: bytes) -> dict[bytes, bytes]:
    """The state tokens a stream response carries."""
    found: dict[bytes, bytes] = {}
    for _, metadata in read_batches(body):
        for key in (k.STREAM_STATE_KEY, k.CALL_STATE_KEY):
            if key in metadata:
                found[key] = metadata[key]
    return found
