"""Request and response bodies without extra copies.

A request body of known length is read straight into a buffer from Arrow's
memory pool, which reuses freed pages (a fresh ``bytes`` of the same size
faults every page in). A response body made of Arrow buffers is readable as a
seekable file: handed to the WSGI server's ``wsgi.file_wrapper``, waitress sends
it straight from the file instead of first copying it into its output buffer,
and gunicorn reads it in blocks of the size we ask for.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from vgi_rpc._ipc import Chunk
from vgi_rpc.http._refusal import RequestRefusedError

FILE_BLOCK = 1 << 20  # block size asked of a file wrapper that iterates
_GATHER_BELOW = 64 * 1024  # chunks smaller than this are copied together into one read


def read_into_pool(source: Any, length: int) -> tuple[pa.Buffer, int]:
    """Up to ``length`` bytes of ``source`` (anything with ``readinto``) in a pooled buffer.

    Returns the buffer and how many bytes were filled before ``source`` ended.
    """
    body = pa.allocate_buffer(length)
    view = memoryview(body).cast("B")
    filled = 0
    while filled < length:
        count = source.readinto(view[filled:])
        if not count:
            break
        filled += count
    return body, filled


def read_body_into_pool(source: Any, length: int) -> pa.Buffer:
    """Exactly ``length`` bytes of ``source`` (a ``wsgi.input`` with ``readinto``).

    The caller has checked ``length`` against the request cap.

    Raises:
        RequestRefusedError: 400 when the body ends before ``length`` bytes.
    """
    body, filled = read_into_pool(source, length)
    if filled < length:
        raise RequestRefusedError(
            400, f"request body ended after {filled} of its {length} bytes (Content-Length)"
        )
    return body


class ChunkFile(io.RawIOBase):
    """Read-only, seekable view of a sequence of byte chunks.

    With ``views=True``, a ``read`` within one chunk returns a view of it rather
    than a copy (for a reader that only ``len()``s and sends what it reads).
    """

    def __init__(self, chunks: Sequence[Chunk], *, views: bool = False) -> None:
        self._read_views = views
        self._views = [memoryview(c).cast("B") for c in chunks if memoryview(c).nbytes]
        self._starts: list[int] = []
        total = 0
        for view in self._views:
            self._starts.append(total)
            total += view.nbytes
        self._size = total
        self._position = 0
        self._index = 0  # the chunk that holds _position (or len(_views) at the end)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        position = base + offset
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = min(position, self._size)
        index = 0
        while (
            index < len(self._views)
            and self._starts[index] + self._views[index].nbytes <= self._position
        ):
            index += 1
        self._index = index
        return self._position

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        target = memoryview(buffer).cast("B")
        written = 0
        while written < target.nbytes and self._index < len(self._views):
            view = self._views[self._index]
            offset = self._position - self._starts[self._index]
            count = min(view.nbytes - offset, target.nbytes - written)
            target[written : written + count] = view[offset : offset + count]
            written += count
            self._position += count
            if offset + count == view.nbytes:
                self._index += 1
        return written

    def read(self, size: int | None = -1) -> bytes | memoryview:
        """Up to ``size`` bytes, possibly fewer (a raw read).

        A large chunk is never copied together with its neighbours: a read that
        reaches one stops at its start, and a read that starts in one returns the
        rest of that chunk only (a view of it when ``views`` was asked for).
        Small chunks (IPC message headers) are gathered into one ``bytes``.
        """
        remaining = self._size - self._position
        count = remaining if size is None or size < 0 else min(size, remaining)
        if count == 0 or self._index >= len(self._views):
            return b""
        view = self._views[self._index]
        offset = self._position - self._starts[self._index]
        available = view.nbytes - offset
        if available >= min(count, _GATHER_BELOW):
            count = min(count, available)
            piece = view[offset : offset + count]
            self._advance(count)
            return piece if self._read_views else bytes(piece)
        gathered = bytearray()
        while len(gathered) < count and self._index < len(self._views):
            view = self._views[self._index]
            offset = self._position - self._starts[self._index]
            available = view.nbytes - offset
            if gathered and available >= _GATHER_BELOW:
                break  # a large chunk: left for the next read
            take = min(available, count - len(gathered))
            gathered += view[offset : offset + take]
            self._advance(take)
        return bytes(gathered)

    def _advance(self, count: int) -> None:
        self._position += count
        if self._position == self._starts[self._index] + self._views[self._index].nbytes:
            self._index += 1


__all__ = ["FILE_BLOCK", "ChunkFile", "read_body_into_pool", "read_into_pool"]
