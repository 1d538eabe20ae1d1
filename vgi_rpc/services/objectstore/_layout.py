"""The IPC bytes around a single data buffer, captured once per schema and size.

A numpy array travels as a stream of one batch of one column with no nulls:
schema message, batch header, the array's bytes, padding, end of stream.
Everything but the array's bytes depends only on the schema (dtype, shape,
order) and the size, so pyarrow writes it once and later puts of that shape
write ``prefix + data + suffix`` themselves: no writer, no pyarrow calls,
and one ``pwritev`` or two slice copies. The bytes are pyarrow's own; a
layout whose capture looks any different is not used.
"""

from __future__ import annotations

import dataclasses
import io
import threading
from collections.abc import Callable

import pyarrow as pa
from typing_extensions import Buffer

_MAX_LAYOUTS = 64


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """``prefix`` + the data buffer + ``suffix`` is the whole stream."""

    prefix: bytes
    suffix: bytes

    def size(self, data_size: int) -> int:
        """Bytes of the whole stream."""
        return len(self.prefix) + data_size + len(self.suffix)


class _Capture(io.RawIOBase):
    """Records what a writer writes, with ``None`` for the one write of the data buffer."""

    def __init__(self, data_size: int) -> None:
        super().__init__()
        self.data_size = data_size
        self.parts: list[bytes | None] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:
        view = memoryview(data)
        self.parts.append(None if view.nbytes == self.data_size else view.tobytes())
        return view.nbytes


_LAYOUTS: dict[tuple[int, int], tuple[pa.Schema, Layout | None]] = {}
_LOCK = threading.Lock()


def layout(
    schema: pa.Schema, data_size: int, write_to: Callable[[pa.NativeFile], None]
) -> Layout | None:
    """The layout of ``schema``'s streams whose data buffer is ``data_size`` bytes.

    ``write_to`` writes one such stream (the first of that shape); ``None``
    when the stream does not split into prefix, one data write and suffix.
    """
    key = (id(schema), data_size)
    with _LOCK:
        cached = _LAYOUTS.get(key)
    if cached is not None and cached[0] is schema:
        return cached[1]
    capture = _Capture(data_size)
    with pa.PythonFile(capture, mode="w") as sink:
        write_to(sink)
    found: Layout | None = None
    if capture.parts.count(None) == 1:
        at = capture.parts.index(None)
        before, after = capture.parts[:at], capture.parts[at + 1 :]
        found = Layout(b"".join(p for p in before if p), b"".join(p for p in after if p))
    with _LOCK:
        if len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.clear()
        _LAYOUTS[key] = (schema, found)  # keeps the schema alive: its id stays unique
    return found


__all__ = ["Layout", "layout"]
