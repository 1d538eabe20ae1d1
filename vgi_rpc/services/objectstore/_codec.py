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
import sys
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

KIND_KEY = b"vgi_objectstore.kind"
_META_KEY = b"vgi_objectstore.meta"
_MAX_DEPTH = 200
_NUMERIC_KINDS = frozenset("biufc")


@dataclasses.dataclass(frozen=True, slots=True)
class Encoded:
    """A value as Arrow: its type name, schema (with our metadata) and batches."""

    typename: str
    schema: pa.Schema
    batches: Sequence[pa.RecordBatch]

    def ipc_size(self) -> int:
        """Bytes of the IPC stream ``write_to`` produces (measured, nothing copied)."""
        sink = pa.MockOutputStream()
        self.write_to(sink)
        return int(sink.size())

    def write_to(self, sink: pa.NativeFile) -> None:
        """Write the IPC stream (schema, batches, end of stream) to ``sink``."""
        with pa.ipc.new_stream(sink, self.schema) as writer:
            for batch in self.batches:
                writer.write_batch(batch)

    def to_buffer(self) -> pa.Buffer:
        """The IPC stream in one new buffer."""
        sink = pa.BufferOutputStream()
        self.write_to(sink)
        return sink.getvalue()


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
    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    if order == "C" and not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    flat = array.ravel(order=order)  # a view: the array is contiguous in this order
    data = pa.py_buffer(flat.view(np.uint8)) if flat.size else pa.py_buffer(b"")
    native = dtype.byteorder in "=|" and dtype.kind in "iuf" and dtype.itemsize <= 8
    arrow_type = pa.from_numpy_dtype(dtype) if native else pa.uint8()
    length = flat.size if native else array.nbytes
    column = pa.Array.from_buffers(arrow_type, length, [None, data])
    extra = {"dtype": dtype.str, "shape": list(array.shape), "order": order}
    schema = _tag(pa.schema([pa.field("data", arrow_type, nullable=False)]), kind, typename, extra)
    return Encoded(typename, schema, [pa.record_batch([column], schema=schema)])


# Tags of the Python value node table.
_NONE, _BOOL, _INT, _BIGINT, _FLOAT, _STR, _BYTES, _LIST, _TUPLE, _DICT = range(10)
_NODE_SCHEMA = pa.schema(
    [
        pa.field("tag", pa.int8(), nullable=False),
        pa.field("int", pa.int64()),
        pa.field("float", pa.float64()),
        pa.field("text", pa.large_string()),
        pa.field("bytes", pa.large_binary()),
    ]
)


def _encode_python(value: object) -> Encoded:
    tags: list[int] = []
    ints: list[int | None] = []
    floats: list[float | None] = []
    texts: list[str | None] = []
    blobs: list[bytes | None] = []

    def node(
        tag: int,
        i: int | None = None,
        f: float | None = None,
        s: str | None = None,
        b: bytes | None = None,
    ) -> None:
        tags.append(tag)
        ints.append(i)
        floats.append(f)
        texts.append(s)
        blobs.append(b)

    def walk(v: object, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise TypeError(f"value nested deeper than {_MAX_DEPTH} levels")
        if v is None:
            node(_NONE)
        elif isinstance(v, bool):
            node(_BOOL, i=int(v))
        elif type(v) is int:
            if -(1 << 63) <= v < (1 << 63):
                node(_INT, i=v)
            else:
                node(_BIGINT, s=str(v))
        elif type(v) is float:
            node(_FLOAT, f=v)
        elif type(v) is str:
            node(_STR, s=v)
        elif type(v) is bytes:
            node(_BYTES, b=v)
        elif type(v) in (list, tuple):
            assert isinstance(v, list | tuple)
            node(_LIST if type(v) is list else _TUPLE, i=len(v))
            for item in v:
                walk(item, depth + 1)
        elif type(v) is dict:
            assert isinstance(v, dict)
            node(_DICT, i=len(v))
            for key, item in v.items():
                walk(key, depth + 1)
                walk(item, depth + 1)
        else:
            raise TypeError(
                f"the object store cannot hold a {type(v).__module__}.{type(v).__qualname__}"
            )

    walk(value, 0)
    typename = f"py.{type(value).__name__}"
    schema = _tag(_NODE_SCHEMA, "python", typename)
    columns = [
        pa.array(tags, pa.int8()),
        pa.array(ints, pa.int64()),
        pa.array(floats, pa.float64()),
        pa.array(texts, pa.large_string()),
        pa.array(blobs, pa.large_binary()),
    ]
    return Encoded(typename, schema, [pa.record_batch(columns, schema=schema)])


def kind_of(schema: pa.Schema) -> str:
    """The value kind recorded in ``schema`` (``ValueError`` when absent)."""
    raw = (schema.metadata or {}).get(KIND_KEY)
    if raw is None:
        raise ValueError("not an object store stream: the schema has no vgi_objectstore.kind")
    return raw.decode()


def _strip(schema: pa.Schema) -> pa.Schema:
    metadata = {k: v for k, v in (schema.metadata or {}).items() if k not in (KIND_KEY, _META_KEY)}
    return schema.with_metadata(metadata) if metadata else schema.remove_metadata()


def _info(schema: pa.Schema) -> dict[str, object]:
    info = json.loads((schema.metadata or {}).get(_META_KEY, b"{}"))
    if not isinstance(info, dict):
        raise ValueError("malformed vgi_objectstore.meta")
    return info


def decode(buffer: pa.Buffer) -> object:
    """Rebuild the value from its IPC stream in ``buffer`` (zero-copy for Arrow and numpy)."""
    reader = pa.ipc.open_stream(buffer)
    batches = list(reader)
    return decode_batches(reader.schema, batches)


def decode_batches(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> object:
    """Rebuild the value from its schema and batches."""
    kind = kind_of(schema)
    batches = list(batches)
    plain = _strip(schema)
    if kind == "table":
        return pa.Table.from_batches(
            [b.replace_schema_metadata(plain.metadata) for b in batches], schema=plain
        )
    if kind == "record_batch":
        (batch,) = batches
        return batch.replace_schema_metadata(plain.metadata)
    if kind == "chunked_array":
        return pa.chunked_array([b.column(0) for b in batches], type=schema.field(0).type)
    if kind == "array":
        (batch,) = batches
        return batch.column(0)
    if kind in ("ndarray", "numpy_scalar"):
        array = _decode_ndarray(_info(schema), batches)
        return array[()] if kind == "numpy_scalar" else array
    if kind == "dataframe":
        table = pa.Table.from_batches(
            [b.replace_schema_metadata(plain.metadata) for b in batches], schema=plain
        )
        return table.to_pandas()
    if kind == "python":
        return _decode_python(batches)
    raise ValueError(f"unknown value kind {kind!r}")


def _decode_ndarray(info: dict[str, object], batches: list[pa.RecordBatch]) -> np.ndarray:
    dtype = np.dtype(str(info["dtype"]))
    shape_raw = info["shape"]
    if not isinstance(shape_raw, list) or not all(isinstance(n, int) and n >= 0 for n in shape_raw):
        raise ValueError("malformed ndarray shape")
    shape = tuple(int(n) for n in shape_raw)
    order = "F" if info.get("order") == "F" else "C"
    (batch,) = batches
    column = batch.column(0)
    count = int(np.prod(shape, dtype=np.int64))
    data = column.buffers()[1]
    if count == 0 or data is None:
        return np.empty(shape, dtype=dtype, order=order)
    start = column.offset * column.type.bit_width // 8
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=start)
    return flat.reshape(shape, order=order)


def _decode_python(batches: list[pa.RecordBatch]) -> object:
    (batch,) = batches
    tags = batch.column(0).to_pylist()
    ints = batch.column(1).to_pylist()
    floats = batch.column(2).to_pylist()
    texts = batch.column(3).to_pylist()
    blobs = batch.column(4).to_pylist()
    position = 0

    def read(depth: int) -> object:
        nonlocal position
        if depth > _MAX_DEPTH or position >= len(tags):
            raise ValueError("malformed python value table")
        tag, i = tags[position], ints[position]
        f, s, b = floats[position], texts[position], blobs[position]
        position += 1
        if tag == _NONE:
            return None
        if tag == _BOOL:
            return bool(i)
        if tag == _INT:
            return i
        if tag == _BIGINT:
            return int(s)
        if tag == _FLOAT:
            return f
        if tag == _STR:
            return s
        if tag == _BYTES:
            return b
        if tag in (_LIST, _TUPLE):
            items = [read(depth + 1) for _ in range(i or 0)]
            return items if tag == _LIST else tuple(items)
        if tag == _DICT:
            out: dict[object, object] = {}
            for _ in range(i or 0):
                key = read(depth + 1)
                out[key] = read(depth + 1)
            return out
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


__all__ = ["KIND_KEY", "Encoded", "decode", "decode_batches", "encode", "kind_of"]
