"""Values <-> Arrow record batches, exactly and without pickle.

Every value becomes one Arrow IPC stream whose schema metadata says how to
rebuild it (``vgi_objectstore.kind``). Arrow data keeps its schema; numpy
arrays travel as one typed column plus dtype, shape and order; plain Python
values (str, bytes, int, float, bool, None, list, tuple, dict) as a preorder
table of tagged nodes. Decoding from a buffer is zero-copy for Arrow and numpy.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal, overload

import numpy as np
import pyarrow as pa

from vgi_rpc import IpcValidation, ResourceLimits, read_ipc_stream
from vgi_rpc.services.objectstore._layout import Layout, layout
from vgi_rpc.services.objectstore._scalars import Scalars

KIND_KEY = b"vgi_objectstore.kind"
_META_KEY = b"vgi_objectstore.meta"
_MAX_DEPTH = 200
_NUMERIC_KINDS = frozenset("biufc")
# A value's stream from a peer is read like a request (bounded headers, full validation),
# with room for wide tables: a schema's size is bounded by the object's own bytes anyway.
VALUE_LIMITS = ResourceLimits(max_request_bytes=None, max_columns=100_000)


@dataclasses.dataclass(frozen=True, slots=True)
class Encoded:
    """A value as Arrow: its type name, schema (with our metadata) and batches."""

    typename: str
    schema: pa.Schema
    batches: Sequence[pa.RecordBatch]
    plain: bool = False  # the node table of a plain Python value (no dictionaries)
    body: memoryview | None = None  # a large array's bytes, the stream's one data buffer

    def layout(self) -> Layout | None:
        """The stream around ``body`` (see ``_layout``), for a large numpy array."""
        if self.body is None:
            return None
        return layout(self.schema, self.body.nbytes, self.write_to)

    def data_size(self) -> int:
        """Bytes of the batches' buffers: a lower bound of ``ipc_size``, with no IPC written."""
        if self.body is not None:
            return self.body.nbytes
        return sum(batch.nbytes for batch in self.batches)

    def ipc_size(self) -> int:
        """Bytes of the IPC stream ``write_to`` produces (measured, nothing copied)."""
        found = self.layout()
        if found is not None and self.body is not None:
            return found.size(self.body.nbytes)
        sink = pa.MockOutputStream()
        self.write_to(sink)
        return int(sink.size())

    def write_to(self, sink: pa.NativeFile) -> None:
        """Write the IPC stream (schema, batches, end of stream) to ``sink``."""
        with pa.ipc.new_stream(sink, self.schema) as writer:
            for batch in self.batches:
                writer.write_batch(batch)

    def to_bytes(self) -> bytes:
        """The IPC stream as bytes (for plain Python values the schema message is cached)."""
        if not self.plain:  # dictionaries need the writer: it sends them before the batches
            sink = pa.BufferOutputStream()
            self.write_to(sink)
            return sink.getvalue().to_pybytes()
        schema = _schema_message(self.schema)
        return b"".join([schema, *(b.serialize().to_pybytes() for b in self.batches), _EOS])

    def to_buffer(self) -> pa.Buffer:
        """The IPC stream in one new buffer."""
        return pa.py_buffer(self.to_bytes())


_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_SCHEMA_MESSAGES: dict[int, tuple[pa.Schema, bytes]] = {}


def _schema_message(schema: pa.Schema) -> bytes:
    """``schema.serialize()``, kept for the schemas of plain Python values (one per type)."""
    entry = _SCHEMA_MESSAGES.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = (schema, schema.serialize().to_pybytes())
        if len(_SCHEMA_MESSAGES) < 64:
            _SCHEMA_MESSAGES[id(schema)] = entry  # keeps the schema alive: its id stays unique
    return entry[1]


def _tag(
    schema: pa.Schema, kind: str, typename: str, extra: dict[str, object] | None = None
) -> pa.Schema:
    metadata = dict(schema.metadata or {})
    metadata[KIND_KEY] = kind.encode()
    metadata[_META_KEY] = json.dumps({"typename": typename, **(extra or {})}).encode()
    return schema.with_metadata(metadata)


def _pandas_frame_type() -> type | None:
    module = sys.modules.get("pandas")
    frame = getattr(module, "DataFrame", None)
    return frame if isinstance(frame, type) else None


_SCALARS: Scalars | None = None


def scalars() -> Scalars:
    """The prebuilt streams of single scalars (built on first use)."""
    global _SCALARS
    if _SCALARS is None:
        _SCALARS = Scalars(lambda v: _encode_python(v).to_bytes())
    return _SCALARS


def encode_small(value: object) -> tuple[str, bytes] | None:
    """``(typename, stream)`` of a None, bool, int64 or float without building Arrow arrays."""
    return scalars().encode(value)


def encode(value: object) -> Encoded:
    """The Arrow form of ``value``.

    Raises:
        TypeError: A value (or a nested one) of a type the store does not hold.
    """
    if isinstance(value, pa.Table):
        schema = _tag(value.schema, "table", "pyarrow.Table")
        return Encoded(
            "pyarrow.Table",
            schema,
            [b.replace_schema_metadata(schema.metadata) for b in value.to_batches()],
        )
    if isinstance(value, pa.RecordBatch):
        schema = _tag(value.schema, "record_batch", "pyarrow.RecordBatch")
        return Encoded(
            "pyarrow.RecordBatch", schema, [value.replace_schema_metadata(schema.metadata)]
        )
    if isinstance(value, pa.ChunkedArray):
        schema = _tag(
            pa.schema([pa.field("values", value.type)]), "chunked_array", "pyarrow.ChunkedArray"
        )
        return Encoded(
            "pyarrow.ChunkedArray",
            schema,
            [pa.record_batch([c], schema=schema) for c in value.chunks],
        )
    if isinstance(value, pa.Array):
        schema = _tag(pa.schema([pa.field("values", value.type)]), "array", "pyarrow.Array")
        return Encoded("pyarrow.Array", schema, [pa.record_batch([value], schema=schema)])
    if isinstance(value, np.ndarray):
        return _encode_ndarray(value, "ndarray", "numpy.ndarray")
    if isinstance(value, np.generic):
        return _encode_ndarray(np.asarray(value), "numpy_scalar", f"numpy.{type(value).__name__}")
    frame = _pandas_frame_type()
    if frame is not None and isinstance(value, frame):
        table = pa.Table.from_pandas(value)
        schema = _tag(table.schema, "dataframe", "pandas.DataFrame")
        return Encoded(
            "pandas.DataFrame",
            schema,
            [b.replace_schema_metadata(schema.metadata) for b in table.to_batches()],
        )
    return _encode_python(value)


def _encode_ndarray(array: np.ndarray, kind: str, typename: str) -> Encoded:
    dtype = array.dtype
    if dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"numpy dtype {dtype} is not numeric or bool; the store holds those only")
    order: Literal["C", "F"] = (
        "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    )
    if order == "C" and not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    flat = array.ravel(order=order)  # a view: the array is contiguous in this order
    native = dtype.byteorder in "=|" and dtype.kind in "iuf" and dtype.itemsize <= 8
    arrow_type = pa.from_numpy_dtype(dtype) if native else pa.uint8()
    key = (kind, typename, dtype.str, array.shape, order)
    schema = _NDARRAY_SCHEMAS.get(key)
    if schema is None:
        extra: dict[str, object] = {"dtype": dtype.str, "shape": list(array.shape), "order": order}
        field = pa.field("data", arrow_type, nullable=False)
        schema = _tag(pa.schema([field]), kind, typename, extra)
        if len(_NDARRAY_SCHEMAS) >= 64:
            _NDARRAY_SCHEMAS.clear()
        _NDARRAY_SCHEMAS[key] = schema
    raw = flat.view(np.uint8).data if flat.size else memoryview(b"")
    length = flat.size if native else array.nbytes

    def batches() -> list[pa.RecordBatch]:
        column = pa.Array.from_buffers(arrow_type, length, [None, pa.py_buffer(raw)])
        return [pa.record_batch([column], schema=schema)]

    body = raw.cast("B") if array.nbytes >= _LAYOUT_SMALLEST else None
    return Encoded(typename, schema, _Lazy(batches), body=body)


class _Lazy(Sequence[pa.RecordBatch]):
    """Batches built on first use (a local put of a large array writes its bytes without them)."""

    def __init__(self, build: Callable[[], list[pa.RecordBatch]]) -> None:
        self._build: Callable[[], list[pa.RecordBatch]] | None = build
        self._batches: list[pa.RecordBatch] = []

    def _get(self) -> list[pa.RecordBatch]:
        if self._build is not None:
            self._batches, self._build = self._build(), None
        return self._batches

    def __len__(self) -> int:
        return len(self._get())

    @overload
    def __getitem__(self, index: int) -> pa.RecordBatch: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[pa.RecordBatch]: ...

    def __getitem__(self, index: int | slice) -> pa.RecordBatch | Sequence[pa.RecordBatch]:
        return self._get()[index]

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return iter(self._get())


# (kind, typename, dtype, shape, order) -> schema: the same object for arrays alike, so
# their stream layout is found by identity (see ``_layout``)
_NDARRAY_SCHEMAS: dict[tuple[str, str, str, tuple[int, ...], str], pa.Schema] = {}
_LAYOUT_SMALLEST = 64 << 10  # below this a value goes inline: no file to write


# Tags of the Python value node table.
_NONE, _BOOL, _INT, _BIGINT, _FLOAT, _STR, _BYTES, _LIST, _TUPLE, _DICT = range(10)
_NODE_FIELDS: list[pa.Field[pa.DataType]] = [
    pa.field("tag", pa.int8(), nullable=False),
    pa.field("int", pa.int64()),
    pa.field("float", pa.float64()),
    pa.field("text", pa.large_string()),
    pa.field("bytes", pa.large_binary()),
]
_NODE_SCHEMA = pa.schema(_NODE_FIELDS)


class _Nodes:
    """Columns of the node table, filled in preorder."""

    def __init__(self) -> None:
        self.tags: list[int] = []
        self.ints: list[int | None] = []
        self.floats: list[float | None] = []
        self.texts: list[str | None] = []
        self.blobs: list[bytes | None] = []

    def add(
        self,
        tag: int,
        i: int | None = None,
        f: float | None = None,
        s: str | None = None,
        b: bytes | None = None,
    ) -> None:
        self.tags.append(tag)
        self.ints.append(i)
        self.floats.append(f)
        self.texts.append(s)
        self.blobs.append(b)

    def scalar(self, v: object) -> bool:
        """Add ``v`` if it is a scalar; ``False`` if it is not one."""
        if v is None:
            self.add(_NONE)
        elif isinstance(v, bool):
            self.add(_BOOL, i=int(v))
        elif type(v) is int:
            if -(1 << 63) <= v < (1 << 63):
                self.add(_INT, i=v)
            else:
                self.add(_BIGINT, s=str(v))
        elif type(v) is float:
            self.add(_FLOAT, f=v)
        elif type(v) is str:
            self.add(_STR, s=v)
        elif type(v) is bytes:
            self.add(_BYTES, b=v)
        else:
            return False
        return True

    def walk(self, v: object, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise TypeError(f"value nested deeper than {_MAX_DEPTH} levels")
        if self.scalar(v):
            return
        if type(v) is list or type(v) is tuple:
            self.add(_LIST if type(v) is list else _TUPLE, i=len(v))
            for item in v:
                self.walk(item, depth + 1)
        elif type(v) is dict:
            self.add(_DICT, i=len(v))
            for key, item in v.items():
                self.walk(key, depth + 1)
                self.walk(item, depth + 1)
        else:
            raise TypeError(
                f"the object store cannot hold a {type(v).__module__}.{type(v).__qualname__}"
            )


_PYTHON_SCHEMAS: dict[str, pa.Schema] = {}  # one per Python type the store holds


def _encode_python(value: object) -> Encoded:
    nodes = _Nodes()
    nodes.walk(value, 0)
    typename = f"py.{type(value).__name__}"
    schema = _PYTHON_SCHEMAS.get(typename)
    if schema is None:
        schema = _PYTHON_SCHEMAS[typename] = _tag(_NODE_SCHEMA, "python", typename)
    columns = [
        pa.array(nodes.tags, pa.int8()),
        pa.array(nodes.ints, pa.int64()),
        pa.array(nodes.floats, pa.float64()),
        pa.array(nodes.texts, pa.large_string()),
        pa.array(nodes.blobs, pa.large_binary()),
    ]
    return Encoded(typename, schema, [pa.record_batch(columns, schema=schema)], plain=True)


def kind_of(schema: pa.Schema) -> str:
    """The value kind recorded in ``schema`` (``ValueError`` when absent)."""
    raw = (schema.metadata or {}).get(KIND_KEY)
    if raw is None:
        raise ValueError("not an object store stream: the schema has no vgi_objectstore.kind")
    return raw.decode()


def typename_of(schema: pa.Schema) -> str:
    """The type name recorded in ``schema`` (``""`` when absent or malformed)."""
    try:
        name = _info(schema).get("typename")
    except ValueError:
        return ""
    return name if isinstance(name, str) else ""


def _strip(schema: pa.Schema) -> pa.Schema:
    metadata = {k: v for k, v in (schema.metadata or {}).items() if k not in (KIND_KEY, _META_KEY)}
    return schema.with_metadata(metadata) if metadata else schema.remove_metadata()


def _info(schema: pa.Schema) -> dict[str, object]:
    info = json.loads((schema.metadata or {}).get(_META_KEY, b"{}"))  # ValueError if malformed
    if not isinstance(info, dict):
        raise ValueError("malformed vgi_objectstore.meta")
    return info


def decode_small(data: bytes) -> tuple[bool, object]:
    """``(True, value)`` when ``data`` is a single scalar's stream (no parsing), else ``(False, None)``."""
    return scalars().decode(data)


def decode(buffer: pa.Buffer, *, validate: bool = True) -> object:
    """Rebuild the value from its IPC stream in ``buffer`` (zero-copy for Arrow and numpy).

    Read as untrusted bytes (``read_ipc_stream``: bounded; raises
    ``IPCError``), validated in full unless ``validate`` is false: only for
    an object the server validated when it was sealed, mapped from the
    server's memory. Both read the bytes the way the server's check did.
    """
    validation = IpcValidation.FULL if validate else IpcValidation.NONE
    schema, batches = read_ipc_stream(buffer, VALUE_LIMITS, validation)
    return decode_batches(schema, batches)


def decode_batches(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> object:
    """Rebuild the value from its schema and batches (``ValueError`` when they do not make one)."""
    kind = kind_of(schema)
    value = _rebuild(kind, schema, list(batches))
    if kind == "dataframe":
        assert isinstance(value, pa.Table)
        return value.to_pandas()
    return value


def check_value(schema: pa.Schema, batches: Sequence[pa.RecordBatch]) -> None:
    """Raise ``ValueError`` unless the (validated) stream rebuilds a value of its kind.

    Costs what a get costs, without pandas: views for Arrow and numpy data,
    the objects for a plain Python value.
    """
    _rebuild(kind_of(schema), schema, batches)


def _rebuild(kind: str, schema: pa.Schema, batches: Sequence[pa.RecordBatch]) -> object:
    """The value, a ``pa.Table`` for a DataFrame."""
    plain = _strip(schema)
    if kind in ("table", "dataframe"):
        return pa.Table.from_batches(
            [b.replace_schema_metadata(plain.metadata) for b in batches], schema=plain
        )
    if kind == "chunked_array":
        _columns(schema, 1)
        return pa.chunked_array([b.column(0) for b in batches], type=schema.field(0).type)
    if kind not in ("record_batch", "array", "ndarray", "numpy_scalar", "python"):
        raise ValueError(f"unknown value kind {kind!r}")
    if len(batches) != 1:
        raise ValueError(f"a stored {kind} is one batch, not {len(batches)}")
    (batch,) = batches
    if kind == "record_batch":
        return batch.replace_schema_metadata(plain.metadata)
    if kind == "python":
        # exactly the node table's types: a dictionary- or run-end-encoded column would
        # be expanded by ``to_pylist`` far past the bytes that carry it
        if [f.type for f in schema] != [f.type for f in _NODE_FIELDS]:
            raise ValueError("malformed python value table: not the node table's column types")
        return _decode_python(batch)
    _columns(schema, 1)
    if kind == "array":
        return batch.column(0)
    array = _decode_ndarray(_info(schema), batch)
    return array[()] if kind == "numpy_scalar" else array


def _columns(schema: pa.Schema, count: int) -> None:
    if len(schema) != count:
        raise ValueError(f"malformed value stream: {len(schema)} columns, not {count}")


def _decode_ndarray(info: dict[str, object], batch: pa.RecordBatch) -> np.ndarray:
    try:
        dtype = np.dtype(str(info["dtype"]))
    except Exception as exc:  # numpy parses odd dtype strings with several exceptions
        raise ValueError(f"malformed ndarray dtype: {type(exc).__name__}: {exc}") from None
    if dtype.kind not in _NUMERIC_KINDS and dtype.kind != "b":
        raise ValueError(f"a stored ndarray has a numeric or bool dtype, not {dtype}")
    shape_raw = info.get("shape")
    if not isinstance(shape_raw, list) or not all(isinstance(n, int) and n >= 0 for n in shape_raw):
        raise ValueError("malformed ndarray shape")
    shape = tuple(int(n) for n in shape_raw)
    order: Literal["C", "F"] = "F" if info.get("order") == "F" else "C"
    column = batch.column(0)
    count = math.prod(shape)
    data = column.buffers()[1] if column.type.num_buffers > 1 else None
    if count == 0:
        empty: np.ndarray = np.empty(shape, dtype=dtype, order=order)
        return empty
    if data is None:
        raise ValueError(f"an ndarray of {count} elements without data")
    start = column.offset * column.type.bit_width // 8
    flat: np.ndarray = np.frombuffer(memoryview(data), dtype=dtype, count=count, offset=start)
    return flat.reshape(shape, order=order)


_SCALAR_READERS: dict[
    int, Callable[[int | None, float | None, str | None, bytes | None], object]
] = {
    _NONE: lambda i, f, s, b: None,
    _BOOL: lambda i, f, s, b: bool(i),
    _INT: lambda i, f, s, b: i,
    _BIGINT: lambda i, f, s, b: int(s or ""),
    _FLOAT: lambda i, f, s, b: f,
    _STR: lambda i, f, s, b: s,
    _BYTES: lambda i, f, s, b: b,
}


def _decode_python(batch: pa.RecordBatch) -> object:
    tags, ints, floats, texts, blobs = (batch.column(n).to_pylist() for n in range(5))
    position = 0

    def read(depth: int) -> object:
        nonlocal position
        if depth > _MAX_DEPTH or position >= len(tags):
            raise ValueError("malformed python value table")
        tag, i = tags[position], ints[position]
        if not isinstance(tag, int):
            raise ValueError("malformed python value table: a null tag")
        scalar = _SCALAR_READERS.get(tag)
        position += 1
        if scalar is not None:
            return scalar(i, floats[position - 1], texts[position - 1], blobs[position - 1])
        if tag in (_LIST, _TUPLE):
            items = [read(depth + 1) for _ in range(i or 0)]
            return items if tag == _LIST else tuple(items)
        if tag == _DICT:
            pairs = [(read(depth + 1), read(depth + 1)) for _ in range(i or 0)]
            return dict(pairs)
        raise ValueError(f"unknown node tag {tag}")

    value = read(0)
    if position != len(tags):
        raise ValueError("malformed python value table: trailing nodes")
    return value


def load_pandas() -> object:
    """Import pandas if it is installed (``None`` otherwise)."""
    try:
        return importlib.import_module("pandas")
    except ImportError:
        return None


__all__ = [
    "KIND_KEY",
    "VALUE_LIMITS",
    "Encoded",
    "check_value",
    "decode",
    "decode_batches",
    "decode_small",
    "encode",
    "encode_small",
    "kind_of",
    "scalars",
    "typename_of",
]
