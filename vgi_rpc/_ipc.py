"""Arrow IPC streams over byte channels: the only place that calls ``pyarrow.ipc``.

Owns stream encoding to buffers, stream reading from file-likes, IPC
validation levels, and the short-count / INT_MAX-safe read and write loops
for file descriptors. Knows nothing about metadata keys or methods.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from vgi_rpc._ipc_reader import EOS_MARKER, IpcValidation, has_dictionary, validate_batch

# Linux moves at most 0x7ffff000 bytes per read/write; other kernels refuse
# counts above INT_MAX. 1 GiB per syscall stays clear of both.
MAX_IO_CHUNK = 1 << 30

_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression=None)


Metadata = dict[bytes, bytes]  # received custom metadata, decoded from the message
BatchWithMetadata = tuple[pa.RecordBatch, Metadata | None]


def encode_stream(schema: pa.Schema, batches: Iterable[BatchWithMetadata]) -> pa.Buffer:
    """Encode a whole IPC stream (schema, batches, EOS) into one buffer."""
    sink = pa.BufferOutputStream()
    writer = pa.ipc.RecordBatchStreamWriter(sink, schema, options=_WRITE_OPTIONS)
    for batch, metadata in batches:
        if metadata:
            writer.write_batch(batch, custom_metadata=metadata)
        else:
            writer.write_batch(batch)
    writer.close()
    return sink.getvalue()


Chunk = bytes | pa.Buffer | memoryview


# For type checkers only: a Protocol class costs a worker's start-up about 0.2 M instructions.
if TYPE_CHECKING:

    class ByteSink(Protocol):
        """The write side of a channel: takes a list of chunks and sends them all, in order."""

        def write_chunks(self, chunks: Sequence[Chunk]) -> None:
            """Send every byte of every chunk."""
            ...


class _ChunkCollector(io.RawIOBase):
    """File-like target for pyarrow's writer that keeps chunks by reference.

    pyarrow hands record-batch bodies over as ``pa.Buffer`` views of the
    batch's own memory, so gathering them and sending with one vectored
    write avoids copying large payloads into an intermediate buffer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[Chunk] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Chunk) -> int:  # type: ignore[override]  # keeps pyarrow's buffer by reference
        self.chunks.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> list[Chunk]:
        chunks, self.chunks = self.chunks, []
        return chunks


def zero_rows(schema: pa.Schema) -> pa.RecordBatch:
    """A batch of ``schema`` with no rows, built without converting Python values.

    (pyarrow imports pandas, when installed, on its first conversion of Python
    values: a fraction of a second on a process's first call.)
    """
    return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


class _BatchEncoder:
    """A long-lived pyarrow writer for one schema that yields each batch's message chunks.

    Creating a writer per stream costs more than writing a small batch, so
    streams without dictionary columns share one per schema; the schema
    message and end-of-stream marker are written from cached bytes.
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.schema_message = schema.serialize()
        self._collector = _ChunkCollector()
        self._writer = pa.ipc.RecordBatchStreamWriter(
            self._collector, schema, options=_WRITE_OPTIONS
        )
        self._writer.write_batch(zero_rows(schema))
        self._collector.take()
        self._lock = threading.Lock()

    def encode(
        self, batch: pa.RecordBatch, metadata: Metadata | pa.KeyValueMetadata | None
    ) -> list[Chunk]:
        with self._lock:
            if metadata:
                self._writer.write_batch(batch, custom_metadata=metadata)
            else:
                self._writer.write_batch(batch)
            return self._collector.take()


# Below this, serializing a metadata-free batch into one buffer beats the writer's
# zero-copy chunks; above it the copy costs more than the writer's overhead.
_SERIALIZE_LIMIT = 64 << 10
# Batches smaller than this (``get_total_buffer_size``) leave as one serialized buffer.
SMALL_BATCH_BYTES = _SERIALIZE_LIMIT

_ENCODERS: OrderedDict[int, tuple[pa.Schema, _BatchEncoder | None]] = OrderedDict()
_BY_CONTENT: OrderedDict[pa.Schema, _BatchEncoder | None] = OrderedDict()
_UNKNOWN = object()
_ENCODERS_LOCK = threading.Lock()
_MAX_ENCODERS = 256


def _encoder(schema: pa.Schema) -> _BatchEncoder | None:
    # First by identity (hashing a pa.Schema costs microseconds; the entry keeps the
    # schema alive, so its id cannot be reused while cached), then by content, since
    # pyarrow hands out a fresh Schema object for every batch built on the same schema.
    key = id(schema)
    with _ENCODERS_LOCK:
        entry = _ENCODERS.get(key)
    if entry is not None and entry[0] is schema:
        return entry[1]
    with _ENCODERS_LOCK:
        found = _BY_CONTENT.get(schema, _UNKNOWN)
    encoder = found if isinstance(found, _BatchEncoder) else None
    stale = encoder is not None and not encoder.schema.equals(schema, check_metadata=True)
    if found is _UNKNOWN or stale:
        encoder = None if has_dictionary(schema) else _BatchEncoder(schema)
    with _ENCODERS_LOCK:
        _ENCODERS[key] = (schema, encoder)
        _BY_CONTENT[schema] = encoder
        while len(_ENCODERS) > _MAX_ENCODERS:
            _ENCODERS.popitem(last=False)
        while len(_BY_CONTENT) > _MAX_ENCODERS:
            _BY_CONTENT.popitem(last=False)
    return encoder


_ZERO_ROWS: dict[int, tuple[pa.RecordBatch, pa.Buffer]] = {}


def _serialized(batch: pa.RecordBatch) -> pa.Buffer:
    """``batch.serialize()``, kept for zero-row batches (void results and log carriers are reused)."""
    if batch.num_rows:
        return batch.serialize()
    entry = _ZERO_ROWS.get(id(batch))
    if entry is not None and entry[0] is batch:
        return entry[1]
    message = batch.serialize()
    if len(_ZERO_ROWS) >= 256:
        _ZERO_ROWS.clear()
    _ZERO_ROWS[id(batch)] = (batch, message)  # keeps the batch alive: its id stays unique
    return message


# Custom metadata as given to a writer: a dict, or one converted once and reused.
WriteMetadata = Metadata | pa.KeyValueMetadata


class StreamWriter:
    """An IPC stream written to a channel batch by batch."""

    __slots__ = ("_collector", "_encoder", "_joinable", "_pending", "_sink", "_writer")

    def __init__(self, sink: ByteSink, schema: pa.Schema) -> None:
        self._sink = sink
        self._encoder = _encoder(schema)
        self._pending: list[Chunk] = []
        self._collector: _ChunkCollector | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        # Every pending chunk is a small message: joined, they leave in one plain write.
        self._joinable = True
        if self._encoder is not None:
            self._pending.append(self._encoder.schema_message)
        else:
            self._collector = _ChunkCollector()
            self._writer = pa.ipc.RecordBatchStreamWriter(
                self._collector, schema, options=_WRITE_OPTIONS
            )

    def write(
        self, batch: pa.RecordBatch, metadata: WriteMetadata | None = None, *, flush: bool = False
    ) -> None:
        """Append one batch; with ``flush`` it is sent immediately."""
        if self._encoder is not None:
            if not metadata and batch.get_total_buffer_size() < _SERIALIZE_LIMIT:
                # Same bytes as the writer produces, at a fraction of the cost for small batches.
                self._pending.append(_serialized(batch))
            else:
                self._joinable = False
                self._pending.extend(self._encoder.encode(batch, metadata))
        else:
            assert self._writer is not None
            self._joinable = False
            if metadata:
                self._writer.write_batch(batch, custom_metadata=metadata)
            else:
                self._writer.write_batch(batch)
        if flush:
            self.flush()

    def send(self, batch: pa.RecordBatch, size: int | None = None) -> None:
        """Write one batch without custom metadata and send it with everything pending.

        The same as ``write(batch, flush=True)``; a small batch after the first
        one of its stream leaves as one buffer, in one write. ``size``: the
        batch's ``get_total_buffer_size()``, when the caller has it.
        """
        if size is None:
            size = batch.get_total_buffer_size()
        if self._encoder is not None and not self._pending and size < _SERIALIZE_LIMIT:
            self._sink.write_chunks((batch.serialize() if batch.num_rows else _serialized(batch),))
            return
        self.write(batch, None, flush=True)

    def flush(self) -> None:
        """Send everything written so far in one write."""
        chunks = self._pending
        if self._collector is not None:
            chunks.extend(self._collector.take())
        if chunks:
            self._pending = []
            if self._joinable and len(chunks) > 1:
                chunks = [b"".join(chunks)]  # small: a copy costs less than a vectored write
            self._joinable = True
            self._sink.write_chunks(chunks)

    def close(self) -> None:
        """Write end-of-stream and send everything still pending."""
        if self._writer is not None:
            self._writer.close()
        else:
            self._pending.append(EOS_MARKER)
        self.flush()


def buffered_reader(fd: int, buffer_size: int = 1 << 16) -> io.BufferedReader:
    """A buffered reader on ``fd``; ``read(n)`` loops until ``n`` bytes or EOF.

    ``io.FileIO`` retries interrupted reads and clamps each read below INT_MAX
    where the OS requires it; the fd stays owned by the caller.
    """
    return io.BufferedReader(io.FileIO(fd, "rb", closefd=False), buffer_size=buffer_size)


def write_chunks_vectored(send: Callable[[list[memoryview]], int], chunks: Sequence[Chunk]) -> None:
    """Send every chunk through a vectored ``send`` (``writev``/``sendmsg``), resuming after short sends.

    Each call carries at most 512 chunks and 1 GiB, below IOV_MAX and INT_MAX.
    """
    views = [view for view in (memoryview(c).cast("B") for c in chunks) if len(view)]
    first = 0
    while first < len(views):
        batch: list[memoryview] = []
        size = 0
        for view in views[first : first + 512]:
            if size + len(view) > MAX_IO_CHUNK:
                batch.append(view[: MAX_IO_CHUNK - size])
                break
            batch.append(view)
            size += len(view)
        written = send(batch)
        while written:
            head = views[first]
            if written >= len(head):
                written -= len(head)
                first += 1
            else:
                views[first] = head[written:]
                written = 0


def write_chunks_to_fd(fd: int, chunks: Sequence[Chunk]) -> None:
    """Write every chunk to ``fd`` (``writev`` for several), resuming after short writes."""
    if len(chunks) == 1:
        # One buffer: a plain write loop is cheaper than building an iovec.
        chunk = chunks[0]
        if type(chunk) is not memoryview and len(chunk) <= MAX_IO_CHUNK:
            # bytes or a pa.Buffer: len() counts bytes, and one write usually takes it all
            written = os.write(fd, chunk)
            if written == len(chunk):
                return
        else:
            written = 0
        view = memoryview(chunk).cast("B")
        offset, total = written, len(view)
        while offset < total:
            offset += os.write(fd, view[offset : offset + MAX_IO_CHUNK])
        return
    write_chunks_vectored(lambda batch: os.writev(fd, batch), chunks)


__all__ = [
    "MAX_IO_CHUNK",
    "SMALL_BATCH_BYTES",
    "BatchWithMetadata",
    "Chunk",
    "IpcValidation",
    "Metadata",
    "StreamWriter",
    "WriteMetadata",
    "buffered_reader",
    "encode_stream",
    "validate_batch",
    "write_chunks_to_fd",
    "write_chunks_vectored",
]
