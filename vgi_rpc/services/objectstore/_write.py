"""Writing a value's IPC stream into the file of a local put (or a mapping of it).

A large numpy array is written as ``prefix + data + suffix`` (see
``_layout``): one ``pwritev``, or two slice copies into a mapping. Anything
else goes through pyarrow's stream writer.
"""

from __future__ import annotations

import io
import os

import pyarrow as pa
from typing_extensions import Buffer

from vgi_rpc.services.objectstore._codec import Encoded


class _FileWriter(io.RawIOBase):
    """Writes an existing file from its start with ``pwrite`` (no truncation, no mapping)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_WRONLY)
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            written = os.pwrite(self._fd, view, self._position)
            view, self._position = view[written:], self._position + written
        return size

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def write_into(encoded: Encoded, target: pa.Buffer) -> None:
    """Write the stream at the start of ``target`` (a mutable buffer of at least its size)."""
    found = encoded.layout()
    if found is None or encoded.body is None:
        with pa.FixedSizeBufferWriter(target) as sink:
            encoded.write_to(sink)
        return
    view = memoryview(target).cast("B")
    start, end = len(found.prefix), len(found.prefix) + encoded.body.nbytes
    view[:start] = found.prefix
    view[start:end] = encoded.body
    view[end : end + len(found.suffix)] = found.suffix
    view.release()


def write_file(encoded: Encoded, path: str) -> None:
    """Write the stream into the existing file ``path`` from its start.

    ``write(2)`` rather than a fresh mapping (cheaper than faulting its pages
    in), and no ``O_TRUNC``, so a warm file's pages are overwritten, not freed.
    """
    found = encoded.layout()
    if found is None or encoded.body is None:
        with pa.PythonFile(_FileWriter(path), mode="w") as sink:
            encoded.write_to(sink)
        return
    fd = os.open(path, os.O_WRONLY)
    try:
        parts = [memoryview(found.prefix), encoded.body, memoryview(found.suffix)]
        position = 0
        while parts:
            written = os.pwritev(fd, parts, position)
            position += written
            while parts and written >= parts[0].nbytes:
                written -= parts.pop(0).nbytes
            if parts and written:
                parts[0] = parts[0][written:]
    finally:
        os.close(fd)


__all__ = ["write_file", "write_into"]
