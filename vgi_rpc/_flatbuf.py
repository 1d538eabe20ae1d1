"""Just enough of the Arrow IPC ``Message`` flatbuffer to frame and bound untrusted input.

Reads the message type, body length and custom metadata (what framing and
dispatch need), and the width and depth of a schema (what must be bounded
before pyarrow parses it). Every offset is checked against the buffer, so a
malformed header raises ``FlatbufferError`` and nothing else.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, NamedTuple

from vgi_rpc._errors import FlatbufferError
from vgi_rpc._record import tuple_fields

_U16 = struct.Struct("<H")
_I16 = struct.Struct("<h")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")

Metadata = dict[bytes, bytes]


# Named tuples are declared as ``NamedTuple`` for type checkers only: at run time
# ``tuple_fields`` builds them without the ``eval`` of ``collections.namedtuple``.
if TYPE_CHECKING:

    class _HeaderFields(NamedTuple):
        header_type: int
        body_length: int
        custom_metadata: dict[bytes, bytes] | None

    class _BatchHeaderFields(NamedTuple):
        version: int
        body_length: int
        body_length_at: int
        length: int
        nodes_at: int  # first FieldNode struct (length, null_count: two int64)
        node_count: int
        buffers_at: int  # first Buffer struct (offset, length: two int64)
        buffer_count: int
        plain: bool  # no compression, no variadic buffer counts

else:
    _HeaderFields = tuple_fields(
        "Header", ("header_type", "body_length", "custom_metadata"), __name__
    )
    _BatchHeaderFields = tuple_fields(
        "BatchHeader",
        (
            "version",
            "body_length",
            "body_length_at",
            "length",
            "nodes_at",
            "node_count",
            "buffers_at",
            "buffer_count",
            "plain",
        ),
        __name__,
    )


class Header(_HeaderFields):
    """The fields of an IPC ``Message`` that framing and dispatch need."""

    __slots__ = ()


class _Buf:
    """Bounds-checked little-endian reads of flatbuffer tables, vectors and strings."""

    __slots__ = ("data", "size")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def _at(self, pos: int, width: int) -> int:
        if pos < 0 or pos + width > self.size:
            raise FlatbufferError(f"offset {pos} is outside the {self.size}-byte header")
        return pos

    def u16(self, pos: int) -> int:
        return int(_U16.unpack_from(self.data, self._at(pos, 2))[0])

    def u32(self, pos: int) -> int:
        return int(_U32.unpack_from(self.data, self._at(pos, 4))[0])

    def i64(self, pos: int) -> int:
        return int(_I64.unpack_from(self.data, self._at(pos, 8))[0])

    def byte(self, pos: int) -> int:
        return self.data[self._at(pos, 1)]

    def field(self, table: int, index: int) -> int:
        """Absolute position of field ``index`` of ``table``, or 0 when it is absent."""
        vtable = table - int(_I32.unpack_from(self.data, self._at(table, 4))[0])
        slot = 4 + 2 * index
        if slot >= self.u16(vtable):
            return 0
        offset = self.u16(vtable + slot)
        return table + offset if offset else 0

    def indirect(self, pos: int) -> int:
        """Follow the offset stored at ``pos`` (to a table, vector or string)."""
        return pos + self.u32(pos)

    def vector(self, pos: int, element: int = 4) -> range:
        """Positions of the elements of the vector whose offset is at ``pos``."""
        start = self.indirect(pos)
        count = self.u32(start)
        if start + 4 + count * element > self.size:
            raise FlatbufferError(f"a vector of {count} elements runs past the header")
        return range(start + 4, start + 4 + count * element, element)

    def string(self, pos: int) -> bytes:
        start = self.indirect(pos)
        length = self.u32(start)
        if start + 4 + length > self.size:
            raise FlatbufferError(f"a string of {length} bytes runs past the header")
        return self.data[start + 4 : start + 4 + length]


def decode_header(meta: bytes) -> Header:
    """Message.header_type (field 1), bodyLength (3) and custom_metadata (4).

    Raises:
        FlatbufferError: An offset points outside ``meta`` or the body length is negative.
    """
    buf = _Buf(meta)
    table = buf.u32(0)
    type_at, length_at, custom_at = (buf.field(table, i) for i in (1, 3, 4))
    header_type = buf.byte(type_at) if type_at else 0
    body_length = buf.i64(length_at) if length_at else 0
    if body_length < 0:
        raise FlatbufferError(f"negative body length {body_length}")
    if not custom_at:
        return Header(header_type, body_length, None)
    custom: Metadata = {}
    for entry in buf.vector(custom_at):
        kv = buf.indirect(entry)
        key_at, value_at = buf.field(kv, 0), buf.field(kv, 1)
        custom[buf.string(key_at) if key_at else b""] = buf.string(value_at) if value_at else b""
    return Header(header_type, body_length, custom)


class BatchHeader(_BatchHeaderFields):
    """Where a RecordBatch message keeps its sizes (positions are offsets into the header)."""

    __slots__ = ()


def batch_header(meta: bytes) -> BatchHeader:
    """The layout fields of a RecordBatch message header, every offset checked.

    Raises:
        FlatbufferError: An offset points outside ``meta``, a field is missing,
            or the message is not a record batch.
    """
    buf = _Buf(meta)
    table = buf.u32(0)
    version_at, type_at, header_at, length_at = (buf.field(table, i) for i in range(4))
    if not type_at or buf.byte(type_at) != 3 or not header_at or not length_at:
        raise FlatbufferError("not a record batch message")
    version = int(_I16.unpack_from(meta, buf._at(version_at, 2))[0]) if version_at else 0
    batch = buf.indirect(header_at)
    rows_at, nodes_field, buffers_field = (buf.field(batch, i) for i in range(3))
    if not nodes_field or not buffers_field:
        raise FlatbufferError("record batch without nodes or buffers")
    nodes = buf.vector(nodes_field, 16)
    buffers = buf.vector(buffers_field, 16)
    compression, variadic = buf.field(batch, 3), buf.field(batch, 4)
    return BatchHeader(
        version,
        buf.i64(length_at),
        length_at,
        buf.i64(rows_at) if rows_at else 0,
        nodes.start,
        len(nodes),
        buffers.start,
        len(buffers),
        not compression and not variadic,
    )


def schema_shape(meta: bytes, max_columns: int, max_depth: int) -> tuple[int, int]:
    """``(fields, depth)`` of the schema a Schema message declares, nested fields included.

    Stops counting past ``max_columns`` fields or ``max_depth`` levels (the
    caller refuses such a schema), so a cyclic or huge header costs at most
    that much work.

    Raises:
        FlatbufferError: The header is malformed or carries no schema.
    """
    buf = _Buf(meta)
    table = buf.u32(0)
    header_at = buf.field(table, 2)
    if not header_at:
        raise FlatbufferError("schema message has no header")
    schema = buf.indirect(header_at)
    fields_at = buf.field(schema, 1)
    if not fields_at:
        return 0, 0
    top = buf.vector(fields_at)
    if len(top) > max_columns:
        return len(top), 1
    pending = [(position, 1) for position in top]
    count = deepest = 0
    while pending and deepest <= max_depth:
        position, depth = pending.pop()
        count += 1
        deepest = max(deepest, depth)
        children_at = buf.field(buf.indirect(position), 5)
        if not children_at:
            continue
        children = buf.vector(children_at)
        if count + len(pending) + len(children) > max_columns:
            return count + len(pending) + len(children), deepest
        pending.extend((child, depth + 1) for child in children)
    return count + len(pending), deepest


__all__ = [
    "BatchHeader",
    "FlatbufferError",
    "Header",
    "Metadata",
    "batch_header",
    "decode_header",
    "schema_shape",
]
