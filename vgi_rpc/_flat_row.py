"""One-row batches of flat columns as Arrow IPC messages, written and read with ``struct``.

A request and a unary result are one-row batches. When every column is a
fixed-width number, a boolean, a string or a binary (nullable or not), the
flatbuffer header of such a message has the same shape whatever the
values: only null counts, buffer offsets and lengths, and the body length
change. So the writer fills a header template that pyarrow made once per
schema and custom metadata, and packs the body from Python values; the
bytes are exactly pyarrow's (``tests/test_flat_row.py`` compares them).

The reader takes peer bytes. It checks every offset and length of the
header against the message, accepts only the canonical one-row form and
returns plain Python values. Anything else, or anything it cannot prove
well formed, gives ``None``: the caller then takes the pyarrow path, which
accepts or refuses exactly as it always did.
"""

from __future__ import annotations

import struct
import threading
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa

from vgi_rpc._errors import IPCError
from vgi_rpc._flatbuf import BatchHeader, FlatbufferError, batch_header
from vgi_rpc._record import tuple_fields

_FIXED, _BOOL, _UTF8, _BINARY = range(4)
_PACKED = -1  # a plan step reading every value with one struct
STRUCT_FORMATS: dict[pa.DataType, str] = {  # fixed-width Arrow types -> struct format
    pa.int8(): "<b",
    pa.int16(): "<h",
    pa.int32(): "<i",
    pa.int64(): "<q",
    pa.uint8(): "<B",
    pa.uint16(): "<H",
    pa.uint32(): "<I",
    pa.uint64(): "<Q",
    pa.float32(): "<f",
    pa.float64(): "<d",
}
_OFFSETS = struct.Struct("<ii")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_ZEROS = bytes(8)
_PAD = [b"\0" * ((8 - n % 8) % 8) for n in range(9)]
_CONTINUATION = b"\xff\xff\xff\xff"
EOS = _CONTINUATION + b"\0\0\0\0"
_V5 = 4  # MetadataVersion.V5, what pyarrow writes
# Bounds on what peers can make these caches hold (each entry is at most about
# _MAX_HEADER bytes): per layout plans, writers and metadata seen once; layouts in all.
_MAX_HEADER = 1024
_MAX_PLANS = 32
_MAX_WRITERS = 8
_MAX_LAYOUTS = 256
_MAX_COLUMNS = 64
# Rows beyond this size go through pyarrow (and its zero-copy writer).
MAX_ROW_BYTES = 32 << 10


if TYPE_CHECKING:  # at run time without eval: see Header in _flatbuf

    class _Column(NamedTuple):
        kind: int
        fixed: struct.Struct | None

else:
    _Column = tuple_fields("_Column", ("kind", "fixed"), __name__)


def _column(t: pa.DataType) -> _Column | None:
    fmt = STRUCT_FORMATS.get(t)
    if fmt is not None:
        return _Column(_FIXED, struct.Struct(fmt))
    if t == pa.bool_():
        return _Column(_BOOL, None)
    if t == pa.utf8():
        return _Column(_UTF8, None)
    if t == pa.binary():
        return _Column(_BINARY, None)
    return None


class FlatLayout:
    """The columns of a flat schema and how a one-row batch of it is laid out.

    ``signature`` identifies the column names and types: two layouts with
    the same signature read and write the same values.
    """

    __slots__ = (
        "_lock",
        "_plans",
        "_seen",
        "_writers",
        "buffer_count",
        "columns",
        "packed",
        "schema",
        "signature",
    )

    def __init__(self, schema: pa.Schema, columns: list[_Column]) -> None:
        self.schema = schema
        self.columns = tuple(columns)
        self.signature = tuple(
            (field.name, c.kind, c.fixed.format if c.fixed else "")
            for field, c in zip(schema, columns, strict=True)
        )
        self.buffer_count = sum(3 if c.kind >= _UTF8 else 2 for c in columns)
        # All fixed-width: a row without nulls is one struct, each value in an 8-byte slot.
        self.packed = (
            struct.Struct(
                "<"
                + "".join(f"{c.fixed.format[1:]}{8 - c.fixed.size}x" for c in columns if c.fixed)
            )
            if all(c.kind == _FIXED and c.fixed is not None for c in columns)
            else None
        )
        self._plans: dict[bytes, tuple[tuple[Any, ...], ...] | None] = {}
        self._seen: set[tuple[tuple[bytes, bytes], ...]] = set()
        self._writers: dict[tuple[tuple[bytes, bytes], ...] | None, RowWriter | None] = {}
        self._lock = threading.Lock()

    # -- writing ----------------------------------------------------------------

    def writer(self, metadata: dict[bytes, bytes] | None = None) -> RowWriter | None:
        """The writer of rows carrying ``metadata`` (built once per metadata)."""
        key = tuple(metadata.items()) if metadata else None
        found = self._writers.get(key, _MISSING)
        if found is not _MISSING:
            assert found is None or isinstance(found, RowWriter)
            return found
        writer = RowWriter.build(self, metadata)
        with self._lock:
            if len(self._writers) >= _MAX_WRITERS:
                self._writers.clear()
            self._writers[key] = writer
        return writer

    def body(
        self, values: list[object] | tuple[object, ...]
    ) -> tuple[list[bytes], list[int]] | None:
        """The body parts and the (length, null_count, offset, length ...) numbers of a row.

        ``None`` when a value does not fit its column (the pyarrow path then
        reports it as it always did).
        """
        parts: list[bytes] = []
        nodes: list[int] = []
        buffers: list[int] = []
        offset = 0
        try:
            for column, value in zip(self.columns, values, strict=True):
                kind = column.kind
                if value is None:
                    nodes += (1, 1)
                    parts.append(_ZEROS)
                    buffers += (offset, 1)
                    offset += 8
                    if kind == _FIXED:
                        assert column.fixed is not None
                        size = column.fixed.size
                        parts.append(_ZEROS)
                        buffers += (offset, size)
                        offset += 8
                    elif kind == _BOOL:
                        parts.append(_ZEROS)
                        buffers += (offset, 1)
                        offset += 8
                    else:
                        parts.append(_ZEROS)
                        buffers += (offset, 8, offset + 8, 0)
                        offset += 8
                    continue
                nodes += (1, 0)
                buffers += (offset, 0)
                if kind == _FIXED:
                    assert column.fixed is not None
                    data = column.fixed.pack(value)
                    parts.append(data + _PAD[len(data)])
                    buffers += (offset, len(data))
                    offset += 8
                elif kind == _BOOL:
                    parts.append(b"\x01\0\0\0\0\0\0\0" if value else _ZEROS)
                    buffers += (offset, 1)
                    offset += 8
                else:
                    if kind == _UTF8:
                        if type(value) is not str:
                            return None
                        data = value.encode()
                    elif type(value) is bytes:
                        data = value
                    else:
                        return None
                    size = len(data)
                    parts.append(_OFFSETS.pack(0, size))
                    parts.append(data)
                    parts.append(_PAD[size % 8])
                    padded = (size + 7) & ~7
                    buffers += (offset, 8, offset + 8, size)
                    offset += 8 + padded
        except (struct.error, OverflowError, TypeError, UnicodeEncodeError):
            return None
        if offset > MAX_ROW_BYTES:
            return None
        nodes += buffers
        nodes.append(offset)
        return parts, nodes

    # -- reading ----------------------------------------------------------------

    def plan(
        self, meta: bytes, metadata: dict[bytes, bytes] | None
    ) -> tuple[tuple[Any, ...], ...] | None:
        """How to read the values of a message with header ``meta``; ``None``: not canonical.

        Positions in the plan are absolute in the whole message (prefix,
        header, body), so one plan serves every message with this header.
        """
        found = self._plans.get(meta, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[no-any-return]  # a plan or None
        if len(meta) > _MAX_HEADER:
            return None  # not a small call's header: pyarrow reads it
        writer = self._known_writer(metadata)
        if writer is None:
            return None  # first sight of this metadata: pyarrow reads it (a peer's unique ids stay cheap)
        plan = self._make_plan(meta, writer)
        with self._lock:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            self._plans[meta] = plan
        return plan

    def _known_writer(self, metadata: dict[bytes, bytes] | None) -> RowWriter | None:
        """The writer for ``metadata`` once it has been seen twice (no metadata: at once)."""
        key = tuple(metadata.items()) if metadata else None
        if key is not None and key not in self._writers and key not in self._seen:
            with self._lock:
                if len(self._seen) >= _MAX_WRITERS:
                    self._seen.clear()
                self._seen.add(key)
            return None
        return self.writer(metadata)

    def _header(self, meta: bytes) -> BatchHeader | None:
        """The header's sizes when it describes one row of this layout, uncompressed."""
        try:
            head = batch_header(meta)
        except FlatbufferError:
            return None
        if (
            head.version != _V5
            or not head.plain
            or head.length != 1
            or head.node_count != len(self.columns)
            or head.buffer_count != self.buffer_count
            or head.body_length <= 0
        ):
            return None
        return head

    def _make_plan(self, meta: bytes, writer: RowWriter) -> tuple[tuple[Any, ...], ...] | None:
        head = self._header(meta)
        if head is None:
            return None
        body_length = head.body_length
        buffers = _buffers(meta, head.buffers_at, head.buffer_count, body_length)
        if buffers is None:
            return None
        steps: list[tuple[Any, ...]] = []
        index = 0
        for i, column in enumerate(self.columns):
            rows, nulls = struct.unpack_from("<qq", meta, head.nodes_at + 16 * i)
            if rows != 1 or nulls not in (0, 1):
                return None
            (valid_at, valid_len), (values_at, values_len) = buffers[index : index + 2]
            if nulls and valid_len < 1:
                return None
            kind = column.kind
            if kind == _FIXED:
                assert column.fixed is not None
                if values_len < column.fixed.size:
                    return None
                steps.append((kind, nulls, valid_at, column.fixed.unpack_from, values_at, 0, 0))
                index += 2
            elif kind == _BOOL:
                if values_len < 1:
                    return None
                steps.append((kind, nulls, valid_at, None, values_at, 0, 0))
                index += 2
            else:
                data_at, data_len = buffers[index + 2]
                if values_len < 8:
                    return None
                steps.append((kind, nulls, valid_at, None, values_at, data_at, data_len))
                index += 3
        # Only a header byte for byte as pyarrow writes it is read here: the flatbuffer
        # verifier then has nothing to object to, whatever a lenient parse accepted.
        if not _canonical(meta, head.nodes_at, buffers, body_length, writer):
            return None
        steps = self._packed(steps, 8 + len(meta), body_length)
        steps.append((8 + len(meta) + body_length,))  # the whole message's size, checked last
        return tuple(steps)

    def _packed(
        self, steps: list[tuple[Any, ...]], body_at: int, body_length: int
    ) -> list[tuple[Any, ...]]:
        """One step reading every value at once, for fixed-width columns without nulls in consecutive slots.

        The struct reads each slot's padding too, so the body must hold all of
        it (a peer may declare a body that ends right after the last value).
        """
        if (
            self.packed is None
            or body_length < self.packed.size
            or any(step[1] != 0 or step[4] != body_at + 8 * i for i, step in enumerate(steps))
        ):
            return steps
        return [(_PACKED, 0, 0, self.packed.unpack_from, body_at, 0, 0)]

    def packed_numbers(self) -> list[int]:
        """The header numbers (see ``body``) of a ``packed`` row: no nulls, one 8-byte slot each."""
        numbers = [n for _ in self.columns for n in (1, 0)]
        for i, column in enumerate(self.columns):
            assert column.fixed is not None
            numbers += (8 * i, 0, 8 * i, column.fixed.size)
        numbers.append(8 * len(self.columns))
        return numbers

    def decode(
        self, meta: bytes, data: bytes, metadata: dict[bytes, bytes] | None = None
    ) -> tuple[object, ...] | None:
        """The values of the one-row batch in ``data`` (the whole message); ``None``: use pyarrow.

        ``metadata`` is the custom metadata the header carries (as framing decoded it).
        """
        plan = self.plan(meta, metadata)
        if plan is None or len(data) != plan[-1][0]:
            return None
        first = plan[0]
        if first[0] == _PACKED:
            return first[3](data, first[4])  # type: ignore[no-any-return]  # a tuple of values
        values: list[object] = []
        for kind, nulls, valid_at, unpack, values_at, data_at, data_len in plan[:-1]:
            if nulls and data[valid_at] & 1:
                return None  # the bitmap disagrees with the null count
            if kind == _FIXED:
                values.append(None if nulls else unpack(data, values_at)[0])
            elif kind == _BOOL:
                values.append(None if nulls else bool(data[values_at] & 1))
            else:
                first, last = _OFFSETS.unpack_from(data, values_at)
                if not 0 <= first <= last <= data_len:
                    return None
                if nulls:
                    values.append(None)
                    continue
                raw = data[data_at + first : data_at + last]
                if kind == _UTF8:
                    try:
                        values.append(raw.decode())
                    except UnicodeDecodeError:
                        return None
                else:
                    values.append(raw)
        return tuple(values)


_MISSING: Any = object()


def _canonical(
    meta: bytes, nodes_at: int, buffers: list[tuple[int, int]], body_length: int, writer: RowWriter
) -> bool:
    """Whether ``meta`` is byte for byte the header pyarrow writes for these sizes."""
    numbers: list[int] = []
    for i in range(len(writer.layout.columns)):
        numbers += (1, struct.unpack_from("<q", meta, nodes_at + 16 * i + 8)[0])
    start = 8 + len(meta)
    numbers += [n for at, length in buffers for n in (at - start, length)]
    numbers.append(body_length)
    return writer.header(numbers, keep=False)[8:] == meta


def _buffers(meta: bytes, at: int, count: int, body_length: int) -> list[tuple[int, int]] | None:
    """(absolute position, length) of each buffer; ``None`` unless all are aligned and in the body."""
    start = 8 + len(meta)
    buffers = []
    for i in range(count):
        offset, length = struct.unpack_from("<qq", meta, at + 16 * i)
        if offset < 0 or length < 0 or offset % 8 or offset + length > body_length:
            return None
        buffers.append((start + offset, length))
    return buffers


class RowWriter:
    """Writes one-row batches of a layout, with fixed custom metadata, as pyarrow would."""

    __slots__ = (
        "body_length_at",
        "buffers",
        "heads",
        "layout",
        "nodes",
        "plain",
        "schema_message",
        "template",
    )

    def __init__(
        self,
        layout: FlatLayout,
        template: bytes,
        schema_message: bytes,
        nodes_at: int,
        buffers_at: int,
        body_length_at: int,
    ) -> None:
        self.layout = layout
        self.template = template
        self.schema_message = schema_message
        count = len(layout.columns)
        # Node and buffer structs are adjacent in pyarrow's headers only by accident of
        # its builder; each vector is patched on its own.
        self.nodes = (struct.Struct("<" + "q" * 2 * count), nodes_at)
        self.buffers = (struct.Struct("<" + "q" * 2 * layout.buffer_count), buffers_at)
        self.body_length_at = body_length_at
        self.heads: dict[tuple[int, ...], bytes] = {}
        self.plain: bytes | None = None  # schema and header of a packed row (see ``stream``)

    @classmethod
    def build(cls, layout: FlatLayout, metadata: dict[bytes, bytes] | None) -> RowWriter | None:
        """A writer whose header template comes from pyarrow itself."""
        sample = _zero_row(layout)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, layout.schema) as stream:
            if metadata:
                stream.write_batch(sample, custom_metadata=metadata)
            else:
                stream.write_batch(sample)
        whole = sink.getvalue().to_pybytes()
        schema_length = _I32.unpack_from(whole, 4)[0]
        schema_message = whole[: 8 + schema_length]
        meta_length = _I32.unpack_from(whole, len(schema_message) + 4)[0]
        start = len(schema_message) + 8
        meta = whole[start : start + meta_length]
        try:
            head = batch_header(meta)
        except FlatbufferError:
            return None
        if head.node_count != len(layout.columns) or head.buffer_count != layout.buffer_count:
            return None
        template = whole[len(schema_message) : start + meta_length]
        return cls(
            layout,
            template,
            schema_message,
            8 + head.nodes_at,
            8 + head.buffers_at,
            8 + head.body_length_at,
        )

    def message(self, values: list[object] | tuple[object, ...]) -> list[bytes] | None:
        """The encapsulated message of one row as chunks; ``None`` when a value does not fit."""
        encoded = self.layout.body(values)
        if encoded is None:
            return None
        parts, numbers = encoded
        return [self.header(numbers), *parts]

    def header(self, numbers: list[int], *, keep: bool = True) -> bytes:
        """Prefix and header of a row: node (length, null count) pairs, buffer (offset, length) pairs, body length."""
        shape = tuple(numbers)  # fixed-width rows without nulls always have the same header
        known = self.heads.get(shape)
        if known is not None:
            return known
        head = bytearray(self.template)
        node_struct, nodes_at = self.nodes
        node_count = len(self.layout.columns) * 2
        node_struct.pack_into(head, nodes_at, *numbers[:node_count])
        buffer_struct, buffers_at = self.buffers
        buffer_struct.pack_into(head, buffers_at, *numbers[node_count:-1])
        _I64.pack_into(head, self.body_length_at, numbers[-1])
        whole = bytes(head)
        if keep and len(self.heads) < 16:
            self.heads[shape] = whole
        return whole

    def stream(self, values: list[object] | tuple[object, ...]) -> bytes | None:
        """A whole IPC stream (schema, the row, end of stream) in one buffer."""
        packed = self.layout.packed
        if packed is not None and None not in values:
            try:
                body = packed.pack(*values)
            except (struct.error, OverflowError, TypeError):
                return None
            if self.plain is None:
                self.plain = self.schema_message + self.header(self.layout.packed_numbers())
            return b"".join((self.plain, body, EOS))
        chunks = self.message(values)
        if chunks is None:
            return None
        return b"".join((self.schema_message, *chunks, EOS))


def _zero_row(layout: FlatLayout) -> pa.RecordBatch:
    """One row of zeros, ``False``, ``""`` and ``b""``, built from buffers.

    Not from Python values: pyarrow imports pandas (when installed) on its
    first conversion of Python values, a fraction of a second on a first call.
    """
    arrays = []
    for field, column in zip(layout.schema, layout.columns, strict=True):
        if column.fixed is not None:
            buffers = [None, pa.py_buffer(bytes(column.fixed.size))]
        elif column.kind == _BOOL:
            buffers = [None, pa.py_buffer(b"\0")]
        else:  # utf8 or binary: two int32 offsets, no data
            buffers = [None, pa.py_buffer(bytes(8)), pa.py_buffer(b"")]
        arrays.append(pa.Array.from_buffers(field.type, 1, buffers))
    return pa.RecordBatch.from_arrays(arrays, schema=layout.schema)


_LAYOUTS: dict[int, tuple[pa.Schema, FlatLayout | None]] = {}
_LAYOUTS_LOCK = threading.Lock()


def flat_layout(schema: pa.Schema) -> FlatLayout | None:
    """The layout of ``schema`` when every column is flat, else ``None`` (cached by identity)."""
    if len(schema) > _MAX_COLUMNS:
        return None  # not a small call's row (and not worth keeping alive here)
    entry = _LAYOUTS.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    columns = [_column(field.type) for field in schema]
    layout = None
    if columns and None not in columns:
        try:
            layout = FlatLayout(schema, [c for c in columns if c is not None])
        except UnicodeDecodeError:  # a peer's field name that is not UTF-8: pyarrow's path
            layout = None
    with _LAYOUTS_LOCK:
        if len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.clear()
        _LAYOUTS[id(schema)] = (schema, layout)  # keeps the schema alive: its id stays unique
    return layout


class FlatRow:
    """A received one-row batch decoded to Python values; the pyarrow batch is built on demand."""

    __slots__ = ("_batch", "_data", "layout", "values")
    num_rows = 1

    def __init__(self, values: tuple[object, ...], layout: FlatLayout, data: bytes) -> None:
        self.values = values
        self.layout = layout
        self._data = data
        self._batch: pa.RecordBatch | None = None

    @property
    def num_columns(self) -> int:
        """The number of columns, as ``pa.RecordBatch.num_columns``."""
        return len(self.values)

    def batch(self) -> pa.RecordBatch:
        """The same row as a ``pa.RecordBatch`` (decoded by pyarrow and validated once)."""
        if self._batch is None:
            try:
                message = pa.ipc.read_message(pa.py_buffer(self._data))
                batch = pa.ipc.read_record_batch(message, self.layout.schema)
                batch.validate(full=True)
            except (
                Exception
            ) as exc:  # checked on arrival; pyarrow disagreeing is still the peer's bytes
                raise IPCError(f"malformed Arrow IPC record batch: {exc}") from exc
            self._batch = batch
        return self._batch


__all__ = [
    "EOS",
    "MAX_ROW_BYTES",
    "STRUCT_FORMATS",
    "FlatLayout",
    "FlatRow",
    "RowWriter",
    "flat_layout",
]
