"""Single Python scalars (None, bool, int64 ints, floats) as prebuilt IPC streams.

Their streams are the ones ``_codec`` writes, byte for byte, but built once
per process by pyarrow and then only patched: an int or a float differs from
its template in the 8 bytes of its value and nowhere else. Encoding one costs
a slice and a ``struct.pack``; recognising one costs a few byte comparisons,
and a stream equal to a template outside its value slot is exactly as
well-formed as the template (any 8 bytes are a valid int64 or float64), so
the server may accept it without parsing it again.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable

_INT = struct.Struct("<q")
_FLOAT = struct.Struct("<d")


@dataclasses.dataclass(frozen=True, slots=True)
class _Template:
    """A stream with (or without) one 8-byte value slot at ``offset``."""

    typename: str
    data: bytes
    offset: int  # -1: no slot, the stream is fixed
    unpack: Callable[[bytes], object]

    def matches(self, data: bytes) -> bool:
        if len(data) != len(self.data):
            return False
        if self.offset < 0:
            return data == self.data
        end = self.offset + 8
        return data[: self.offset] == self.data[: self.offset] and data[end:] == self.data[end:]


def _slot(first: bytes, second: bytes) -> int:
    """Where two streams differ: one run of exactly 8 bytes (-1 when it is not so)."""
    if len(first) != len(second):
        return -1
    diff = [i for i in range(len(first)) if first[i] != second[i]]
    if len(diff) != 8 or diff[-1] - diff[0] != 7:
        return -1
    return diff[0]


def _constant(value: object) -> Callable[[bytes], object]:
    return lambda _: value


class Scalars:
    """The templates, built from ``write(value) -> stream bytes`` (the general encoder)."""

    def __init__(self, write: Callable[[object], bytes]) -> None:
        self._fixed: dict[object, bytes] = {}
        self._templates: list[_Template] = []
        for value in (None, True, False):
            data = write(value)
            self._fixed[value] = data
            typename = f"py.{type(value).__name__}"
            self._templates.append(_Template(typename, data, -1, _constant(value)))
        # values whose 8 bytes all differ, so the slot is found exactly
        a, b = 0x0102030405060708, 0xF1F2F3F4F5F6F7F8
        ints = (a, b - (1 << 64))
        floats = (_FLOAT.unpack(_INT.pack(ints[0]))[0], _FLOAT.unpack(_INT.pack(ints[1]))[0])
        self._int = self._build("py.int", ints, _INT, lambda s: _INT.unpack(s)[0], write)
        self._float = self._build("py.float", floats, _FLOAT, lambda s: _FLOAT.unpack(s)[0], write)

    def _build(
        self,
        typename: str,
        samples: tuple[object, object],
        packer: struct.Struct,
        unpack: Callable[[bytes], object],
        write: Callable[[object], bytes],
    ) -> _Template | None:
        first, second = write(samples[0]), write(samples[1])
        offset = _slot(first, second)
        if offset < 0 or first[offset : offset + 8] != packer.pack(samples[0]):
            return None  # a layout we did not expect: always use the general encoder
        template = _Template(typename, first, offset, unpack)
        self._templates.append(template)
        return template

    def encode(self, value: object) -> tuple[str, bytes] | None:
        """``(typename, stream)`` for a scalar with a template; ``None`` for anything else."""
        kind = type(value)
        if kind is int:
            template = self._int
            if template is None or not -(1 << 63) <= value < (1 << 63):  # type: ignore[operator]
                return None
            packed = _INT.pack(value)
        elif kind is float:
            template = self._float
            if template is None:
                return None
            packed = _FLOAT.pack(value)
        elif value is None or kind is bool:
            return f"py.{kind.__name__}", self._fixed[value]
        else:
            return None
        data = template.data
        return template.typename, data[: template.offset] + packed + data[template.offset + 8 :]

    def match(self, data: bytes) -> _Template | None:
        """The template ``data`` is an instance of, else ``None``."""
        for template in self._templates:
            if template.matches(data):
                return template
        return None

    def decode(self, data: bytes) -> tuple[bool, object]:
        """``(True, value)`` when ``data`` is a templated scalar's stream, else ``(False, None)``."""
        template = self.match(data)
        if template is None:
            return False, None
        if template.offset < 0:
            return True, template.unpack(b"")
        return True, template.unpack(data[template.offset : template.offset + 8])


__all__ = ["Scalars"]
