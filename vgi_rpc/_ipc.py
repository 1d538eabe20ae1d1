"""Arrow IPC streams over byte channels: the only place that calls ``pyarrow.ipc``.

Owns stream encoding to buffers, stream reading from file-likes, IPC
validation levels, and the short-count / INT_MAX-safe read and write loops
for file descriptors. Knows nothing about metadata keys or methods.
"""

from __future__ import annotations

import enum
import io
import os
from collections.abc import Iterable, Sequence
from typing import Protocol

import pyarrow as pa

from vgi_rpc._errors import IPCError, TransportError

# Linux moves at most 0x7ffff000 bytes per read/write; other kernels refuse
# counts above INT_MAX. 1 GiB per syscall stays clear of both.
MAX_IO_CHUNK = 1 << 30

_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression=None)


class IpcValidation(enum.Enum):
    """How thoroughly received batches are checked before use.

    NONE trusts the peer; STANDARD checks structure (offsets, lengths);
    FULL also checks data buffers (e.g. UTF-8 validity). FULL is the default.
    """

    NONE = "none"
    STANDARD = "standard"
    FULL = "full"


def validate_batch(batch: pa.RecordBatch, level: IpcValidation) -> None:
    """Validate ``batch`` at ``level``; raise ``IPCError`` if it is malformed."""
    if level is IpcValidation.NONE:
        return
    try:
        batch.validate(full=level is IpcValidation.FULL)
    except pa.ArrowInvalid as exc:
        raise IPCError(f"received batch failed {level.name} validation: {exc}") from exc


Metadata = dict[bytes, bytes]
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


class StreamWriter:
    """An IPC stream written to a channel batch by batch."""

    __slots__ = ("_collector", "_sink", "_writer")

    def __init__(self, sink: ByteSink, schema: pa.Schema) -> None:
        self._sink = sink
        self._collector = _ChunkCollector()
        self._writer = pa.ipc.RecordBatchStreamWriter(
            self._collector, schema, options=_WRITE_OPTIONS
        )

    def write(
        self, batch: pa.RecordBatch, metadata: Metadata | None = None, *, flush: bool = False
    ) -> None:
        """Append one batch; with ``flush`` it is sent immediately."""
        if metadata:
            self._writer.write_batch(batch, custom_metadata=metadata)
        else:
            self._writer.write_batch(batch)
        if flush:
            self.flush()

    def flush(self) -> None:
        """Send everything written so far in one vectored write."""
        chunks = self._collector.take()
        if chunks:
            self._sink.write_chunks(chunks)

    def close(self) -> None:
        """Write end-of-stream and send everything still pending."""
        self._writer.close()
        self.flush()


_CONTINUATION = b"\xff\xff\xff\xff"
MAX_METADATA_BYTES = 64 << 20


def _check_message_start(source: io.BufferedReader) -> None:
    """Refuse bytes that cannot start an IPC message before pyarrow blocks on them.

    Spec section 2: every message starts with the 0xFFFFFFFF continuation
    marker. Without this check, text such as ``GET /`` reads as a legacy
    length prefix of ~540 MB and the reader would wait for bytes forever.
    """
    head = source.peek(8)[:8]
    if len(head) >= 4 and head[:4] != _CONTINUATION:
        raise IPCError(
            f"not an Arrow IPC stream: a message must start with the 0xFFFFFFFF marker, got {head[:4]!r}"
        )
    if len(head) == 8:
        length = int.from_bytes(head[4:], "little", signed=True)
        if length < 0 or length > MAX_METADATA_BYTES:
            raise IPCError(f"not an Arrow IPC stream: implausible message metadata length {length}")


def _read_failure(source: io.BufferedReader, exc: Exception, what: str) -> Exception:
    # pyarrow reports undecodable flatbuffers as a bare OSError, so the only
    # reliable way to tell "peer vanished" from "peer sent garbage" is whether
    # the channel is at end of file.
    if _is_eof(source):
        return TransportError(f"peer closed the channel in the middle of an IPC stream: {exc}")
    return IPCError(f"malformed Arrow IPC {what}: {exc}")


def read_stream_start(source: io.BufferedReader) -> pa.ipc.RecordBatchStreamReader | None:
    """Open the next IPC stream on ``source``; ``None`` on a clean end of file."""
    try:
        if not source.peek(1):
            return None
        _check_message_start(source)
        return pa.ipc.open_stream(source)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _read_failure(source, exc, "stream") from exc


def _is_eof(source: io.BufferedReader) -> bool:
    try:
        return not source.peek(1)
    except (OSError, ValueError):
        return True


def read_next(
    reader: pa.ipc.RecordBatchStreamReader, source: io.BufferedReader, validation: IpcValidation
) -> BatchWithMetadata | None:
    """Read the next batch of an open stream; ``None`` at its EOS marker."""
    try:
        _check_message_start(source)
        batch, metadata = reader.read_next_batch_with_custom_metadata()
    except StopIteration:
        return None
    except (pa.ArrowInvalid, OSError) as exc:
        raise _read_failure(source, exc, "batch") from exc
    validate_batch(batch, validation)
    received: pa.KeyValueMetadata | None = metadata  # None when the batch carries no metadata
    return batch, (dict(received) if received is not None else None)


class FdRawReader(io.RawIOBase):
    """Unbuffered reads from a file descriptor, clamped per call, EINTR-safe."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def readable(self) -> bool:
        """Always true."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]  # RawIOBase types buffer loosely
        """Read up to ``len(buffer)`` bytes (at most 1 GiB) into ``buffer``."""
        view = memoryview(buffer).cast("B")
        n = min(len(view), MAX_IO_CHUNK)
        return os.readv(self._fd, [view[:n]])

    def fileno(self) -> int:
        """The descriptor read from."""
        return self._fd


def buffered_reader(fd: int, buffer_size: int = 1 << 16) -> io.BufferedReader:
    """A buffered reader on ``fd``; ``read(n)`` loops until ``n`` bytes or EOF."""
    return io.BufferedReader(FdRawReader(fd), buffer_size=buffer_size)


def write_chunks_to_fd(fd: int, chunks: Sequence[Chunk]) -> None:
    """Write every chunk to ``fd`` with vectored writes, resuming after short writes.

    Each syscall carries at most 512 chunks and 1 GiB, below IOV_MAX and INT_MAX.
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
        written = os.writev(fd, batch)
        while written:
            head = views[first]
            if written >= len(head):
                written -= len(head)
                first += 1
            else:
                views[first] = head[written:]
                written = 0


__all__ = [
    "MAX_IO_CHUNK",
    "BatchWithMetadata",
    "ByteSink",
    "Chunk",
    "IpcValidation",
    "Metadata",
    "StreamWriter",
    "buffered_reader",
    "encode_stream",
    "read_next",
    "read_stream_start",
    "validate_batch",
    "write_chunks_to_fd",
]
