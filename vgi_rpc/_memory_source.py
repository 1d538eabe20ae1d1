"""A buffered-reader look-alike over bytes already in memory (an HTTP body, an embedded value).

Messages framed from it are slices of those bytes, not copies: the IPC
reader asks for them with ``take_back``.
"""

from __future__ import annotations

import io
from typing import Any, cast

import pyarrow as pa

from vgi_rpc._errors import TransportError


class MemorySource(io.BufferedIOBase):
    """A reader over bytes already in memory (an HTTP body, an embedded value).

    Messages read from it are slices of those bytes, not copies (``take_back``).
    """

    def __init__(self, data: bytes | bytearray | memoryview | pa.Buffer) -> None:
        super().__init__()
        self._data = data  # keeps the memory alive for the slices handed out
        self._view = memoryview(data).cast("B")
        self._position = 0

    def readable(self) -> bool:
        return True

    def peek(self, size: int = 0) -> bytes:
        return bytes(self._view[self._position : self._position + max(size, 1)])

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else self._position + size
        chunk = bytes(self._view[self._position : end])
        self._position += len(chunk)
        return chunk

    read1 = read

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        end = min(self._position + len(target), len(self._view))
        count = end - self._position
        target[:count] = self._view[self._position : end]
        self._position = end
        return count

    def take_back(self, behind: int, ahead: int) -> pa.Buffer | None:
        """The ``behind`` bytes just read and the ``ahead`` next ones, in place; ``None`` if misaligned.

        Arrow wants its buffers 8-byte aligned; a slice that is not is copied by the caller.
        """
        start = self._position - behind
        end = self._position + ahead
        if start < 0 or end > len(self._view):
            raise TransportError("the body ends in the middle of an IPC message")
        whole = pa.py_buffer(self._view[start:end])
        if whole.address % 8:
            return None
        self._position = end
        return whole


def memory_source(data: bytes | bytearray | memoryview | pa.Buffer) -> io.BufferedReader:
    """A reader over bytes already in memory; messages read from it are not copied."""
    return cast(io.BufferedReader, MemorySource(data))


__all__ = ["MemorySource", "memory_source"]
