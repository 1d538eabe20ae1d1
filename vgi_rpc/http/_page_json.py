"""JSON values <-> Arrow values for the service page, typed by a method's Arrow schemas.

The page's call form sends parameters as a JSON object; this module turns
them into the method's one-row request batch (checking every value against
its parameter's Arrow type, with an error that names the parameter) and
turns a result batch back into JSON. Conventions, both ways: dates, times
and timestamps are ISO strings, durations are seconds, decimals are strings
(numbers are accepted), bytes are UTF-8 text or ``"base64:..."``, maps are
objects (or ``[key, value]`` pairs when the keys are not strings), integers
beyond JavaScript's exact range are strings, NaN and infinities are the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``. A dataclass parameter
or result is a JSON object of its fields; a ``pa.RecordBatch`` one is an array
of row objects (or ``"base64:..."`` of its IPC stream).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import math
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from vgi_rpc._arrow_codecs import DataclassCodec, IpcBytesCodec
from vgi_rpc._arrow_types import Codec, OptionalCodec
from vgi_rpc._errors import IPCError
from vgi_rpc._http_errors import JsonArgumentError
from vgi_rpc._ipc_embedded import read_embedded_batch, read_embedded_schema
from vgi_rpc._methods import ParamInfo, RpcMethodInfo
from vgi_rpc.rpc import ONE_EMPTY_ROW

BASE64_PREFIX = "base64:"
MAX_EXACT_INT = (1 << 53) - 1  # larger integers lose precision in JavaScript numbers
_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
MISSING = object()


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(path: str, expected: str, value: object) -> JsonArgumentError:
    return JsonArgumentError(f"{path}: expected {expected}, got {_describe(value)}")


# -- readable types -------------------------------------------------------------


def readable_type(t: pa.DataType) -> str:
    """A short, readable name of an Arrow type (``list<string>``, ``map<string, int64>``)."""
    if isinstance(t, pa.FixedSizeListType):
        return f"fixed_size_list<{readable_type(t.value_type)}, {t.list_size}>"
    if isinstance(t, pa.LargeListType):
        return f"large_list<{readable_type(t.value_type)}>"
    if isinstance(t, pa.ListType):
        return f"list<{readable_type(t.value_type)}>"
    if isinstance(t, pa.MapType):
        return f"map<{readable_type(t.key_type)}, {readable_type(t.item_type)}>"
    if isinstance(t, pa.StructType):
        inner = ", ".join(f"{f.name}: {readable_type(f.type)}" for f in t)
        return f"struct<{inner}>"
    if isinstance(t, pa.DictionaryType):
        return f"dictionary<{readable_type(t.value_type)}, indices={t.index_type}>"
    return str(t)


def ipc_class(codec: Codec) -> type | None:
    """The dataclass a ``binary`` parameter or result carries as IPC, if it is one."""
    inner = codec.inner if isinstance(codec, OptionalCodec) else codec
    if isinstance(inner, DataclassCodec) and inner.as_binary:
        return inner.cls
    return None


def ipc_kind(codec: Codec) -> type | None:
    """``pa.RecordBatch`` or ``pa.Schema`` when the value travels as serialized IPC."""
    inner = codec.inner if isinstance(codec, OptionalCodec) else codec
    return inner.kind if isinstance(inner, IpcBytesCodec) else None


def dataclass_schema(cls: type) -> pa.Schema:
    """The Arrow schema of an ``ArrowSerializableDataclass``."""
    schema: pa.Schema = cls.ARROW_SCHEMA  # type: ignore[attr-defined]  # checked by DataclassCodec
    return schema


# -- JSON -> Arrow ----------------------------------------------------------------


def _integer(value: object, t: pa.DataType, path: str) -> object:
    if isinstance(value, str):
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise _fail(path, f"an integer ({t})", value) from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"an integer ({t})", value)
    bits = t.bit_width
    low, high = (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        if pa.types.is_signed_integer(t)
        else (0, (1 << bits) - 1)
    )
    if not low <= value <= high:
        raise JsonArgumentError(f"{path}: {value} is out of range for {t} ({low}..{high})")
    return value


def _floating(value: object, t: pa.DataType, path: str) -> object:
    if isinstance(value, str) and value in _FLOAT_WORDS:
        return _FLOAT_WORDS[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, 'a number (or "NaN", "Infinity", "-Infinity")', value)
    return float(value)


def _boolean(value: object, t: pa.DataType, path: str) -> object:
    if not isinstance(value, bool):
        raise _fail(path, "true or false", value)
    return value


def _text(value: object, t: pa.DataType, path: str) -> object:
    if not isinstance(value, str):
        raise _fail(path, "a string", value)
    return value


def _binary(value: object, t: pa.DataType, path: str) -> object:
    if not isinstance(value, str):
        raise _fail(path, f'a string (UTF-8 text, or "{BASE64_PREFIX}..." for raw bytes)', value)
    if value.startswith(BASE64_PREFIX):
        try:
            data = base64.b64decode(value[len(BASE64_PREFIX) :], validate=True)
        except binascii.Error as exc:
            raise JsonArgumentError(f"{path}: not valid base64 ({exc})") from None
    else:
        data = value.encode()
    if isinstance(t, pa.FixedSizeBinaryType) and len(data) != t.byte_width:
        raise JsonArgumentError(f"{path}: {t} takes exactly {t.byte_width} bytes, got {len(data)}")
    return data


def _decimal(value: object, t: pa.DataType, path: str) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(path, f"a decimal number or numeric string ({t})", value)
    try:
        number = decimal.Decimal(str(value))
    except decimal.InvalidOperation:
        raise _fail(path, f"a decimal number or numeric string ({t})", value) from None
    if not number.is_finite():
        raise _fail(path, f"a finite decimal ({t})", value)
    return number


def _iso(
    parse: Callable[[str], object], example: str
) -> Callable[[object, pa.DataType, str], object]:
    def convert(value: object, t: pa.DataType, path: str) -> object:
        if not isinstance(value, str):
            raise _fail(path, f"an ISO string like {example!r}", value)
        try:
            return parse(value)
        except ValueError:
            raise _fail(path, f"an ISO string like {example!r}", value) from None

    return convert


def _duration(value: object, t: pa.DataType, path: str) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(path, "a number of seconds", value)
    try:
        return dt.timedelta(seconds=value)
    except OverflowError:
        raise JsonArgumentError(f"{path}: {value} seconds is out of range") from None


_SCALARS: list[
    tuple[Callable[[pa.DataType], bool], Callable[[object, pa.DataType, str], object]]
] = [
    (pa.types.is_integer, _integer),
    (pa.types.is_floating, _floating),
    (pa.types.is_boolean, _boolean),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), _text),
    (
        lambda t: (
            pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
        ),
        _binary,
    ),
    (pa.types.is_decimal, _decimal),
    (pa.types.is_timestamp, _iso(dt.datetime.fromisoformat, "2024-05-17T12:30:00")),
    (pa.types.is_date, _iso(dt.date.fromisoformat, "2024-05-17")),
    (pa.types.is_time, _iso(dt.time.fromisoformat, "12:30:00")),
    (pa.types.is_duration, _duration),
]


def to_arrow(value: object, field: pa.Field[pa.DataType], path: str) -> object:
    """Check a JSON value against ``field`` and return what ``pa.array`` takes for it.

    Raises:
        JsonArgumentError: The value does not fit (the message names ``path``).
    """
    if value is None:
        if not field.nullable:
            raise JsonArgumentError(f"{path}: null is not allowed here ({field.type} is required)")
        return None
    t = field.type
    if isinstance(t, pa.DictionaryType):
        return to_arrow(value, pa.field(field.name, t.value_type), path)
    for matches, convert in _SCALARS:
        if matches(t):
            return convert(value, t, path)
    if isinstance(t, pa.ListType | pa.LargeListType | pa.FixedSizeListType):
        return _list(value, t, path)
    if isinstance(t, pa.MapType):
        return _map(value, t, path)
    if isinstance(t, pa.StructType):
        return struct_row(value, list(t), path)
    return value  # any other type: pyarrow checks it when the batch is built


def _list(
    value: object,
    t: pa.ListType[Any] | pa.LargeListType[Any] | pa.FixedSizeListType[Any],
    path: str,
) -> object:
    if not isinstance(value, list):
        raise _fail(path, f"a JSON array ({readable_type(t)})", value)
    if isinstance(t, pa.FixedSizeListType) and len(value) != t.list_size:
        raise JsonArgumentError(f"{path}: expected exactly {t.list_size} items, got {len(value)}")
    item = t.value_field
    return [to_arrow(v, item, f"{path}[{i}]") for i, v in enumerate(value)]


def _map(value: object, t: pa.MapType[Any, Any], path: str) -> object:
    if isinstance(value, dict):
        pairs = list(value.items())
        if not pa.types.is_string(t.key_type) and not pa.types.is_large_string(t.key_type):
            # JSON object keys are strings: read them as the map's key type.
            pairs = [(_object_key(k, t.key_type, path), v) for k, v in pairs]
    elif isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        pairs = [(p[0], p[1]) for p in value]
    else:
        raise _fail(
            path, f"a JSON object or a list of [key, value] pairs ({readable_type(t)})", value
        )
    key_field = t.key_field
    item_field = t.item_field
    return [
        (to_arrow(k, key_field, f"{path} key {k!r}"), to_arrow(v, item_field, f"{path}[{k!r}]"))
        for k, v in pairs
    ]


def _object_key(key: str, t: pa.DataType, path: str) -> object:
    if pa.types.is_integer(t):
        return key  # _integer parses numeric strings
    if pa.types.is_floating(t):
        try:
            return float(key)
        except ValueError:
            raise _fail(f"{path} key", f"a number ({t})", key) from None
    if pa.types.is_boolean(t) and key in ("true", "false"):
        return key == "true"
    return key


def struct_row(value: object, fields: list[pa.Field[pa.DataType]], path: str) -> dict[str, object]:
    """A JSON object checked field by field (unknown keys refused, absent fields null)."""
    if not isinstance(value, dict):
        names = ", ".join(f.name for f in fields)
        raise _fail(path, f"a JSON object with fields {names}", value)
    known = {f.name for f in fields}
    unknown = [key for key in value if key not in known]
    if unknown:
        raise JsonArgumentError(
            f"{path}: unknown field(s) {', '.join(map(repr, unknown))}; fields: "
            f"{', '.join(f.name for f in fields)}"
        )
    out: dict[str, object] = {}
    for f in fields:
        if f.name not in value and not f.nullable:
            raise JsonArgumentError(
                f"{path}: field {f.name!r} ({readable_type(f.type)}) is missing"
            )
        out[f.name] = to_arrow(value.get(f.name), f, f"{path}.{f.name}")
    return out


def _column(py: object, t: pa.DataType, path: str) -> pa.Array[Any]:
    try:
        return pa.array([py], type=t)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as exc:
        raise JsonArgumentError(f"{path}: does not fit {readable_type(t)}: {exc}") from None


def ipc_stream(batch: pa.RecordBatch) -> bytes:
    """One batch as a whole IPC stream (how dataclasses and batch values travel)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _ipc_value(value: object, cls: type, path: str) -> bytes:
    """A dataclass argument: a JSON object of its fields, as the IPC stream it travels as."""
    schema = dataclass_schema(cls)
    row = struct_row(value, list(schema), path)
    arrays = [_column(row[f.name], f.type, f"{path}.{f.name}") for f in schema]
    return ipc_stream(pa.RecordBatch.from_arrays(arrays, schema=schema))


def _batch_value(value: list[object], path: str) -> bytes:
    """A ``pa.RecordBatch`` argument given as a JSON array of row objects (types inferred)."""
    if not all(isinstance(row, dict) for row in value):
        raise _fail(path, "a JSON array of row objects", value)
    try:
        batch = pa.RecordBatch.from_pylist(value)  # type: ignore[arg-type]  # checked: dicts
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise JsonArgumentError(f"{path}: the rows do not make one Arrow batch: {exc}") from None
    return ipc_stream(batch)


def _argument(param: ParamInfo, value: object, method: str) -> pa.Array[Any]:
    path = f"{method}(): parameter {param.name!r}"
    cls = ipc_class(param.codec)
    if value is MISSING:
        # Absent: the Protocol's default, encoded as the Python client would send it.
        py = None if param.default is None else param.codec.to_arrow(param.default, path)
        return _column(py, param.field.type, path)
    if cls is not None and value is not None:
        return _column(_ipc_value(value, cls, path), param.field.type, path)
    if ipc_kind(param.codec) is pa.RecordBatch and isinstance(value, list):
        return _column(_batch_value(value, path), param.field.type, path)
    return _column(to_arrow(value, param.field, path), param.field.type, path)


def arguments_batch(info: RpcMethodInfo, given: dict[str, object]) -> pa.RecordBatch:
    """The one-row request batch for a method called with JSON arguments.

    Raises:
        JsonArgumentError: An unknown or missing parameter, or a value that does not fit.
    """
    names = [p.name for p in info.params]
    unknown = [key for key in given if key not in names]
    if unknown:
        listed = ", ".join(names) if names else "none"
        raise JsonArgumentError(
            f"{info.name}() has no parameter {', '.join(map(repr, unknown))}; parameters: {listed}"
        )
    missing = [
        p.name
        for p in info.params
        if p.name not in given and not p.has_default and not p.field.nullable
    ]
    if missing:
        raise JsonArgumentError(f"{info.name}() needs {', '.join(map(repr, missing))}")
    if not info.params:
        return ONE_EMPTY_ROW
    arrays = [
        _argument(p, given.get(p.name, MISSING if p.has_default else None), info.name)
        for p in info.params
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=info.params_schema)


# -- Arrow -> JSON ----------------------------------------------------------------


def _bytes_json(value: bytes) -> str:
    try:
        text = value.decode()
    except UnicodeDecodeError:
        text = None
    if text is None or text.startswith(BASE64_PREFIX):
        return BASE64_PREFIX + base64.b64encode(value).decode()
    return text


def _number_json(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -MAX_EXACT_INT <= value <= MAX_EXACT_INT else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def to_json(value: object, t: pa.DataType) -> object:
    """A value decoded from an Arrow column (``as_py()``) as JSON, by its Arrow type."""
    if value is None:
        return None
    if isinstance(t, pa.DictionaryType):
        return to_json(value, t.value_type)
    if isinstance(t, pa.ListType | pa.LargeListType | pa.FixedSizeListType):
        assert isinstance(value, list)
        return [to_json(v, t.value_type) for v in value]
    if isinstance(t, pa.MapType):
        return _map_json(value, t)
    if isinstance(t, pa.StructType):
        assert isinstance(value, dict)
        return {f.name: to_json(value.get(f.name), f.type) for f in t}
    if isinstance(value, bytes):
        return _bytes_json(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dt.date | dt.time):  # datetimes included
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, str | int | float | bool):
        return _number_json(value)
    return str(value)


def _map_json(value: object, t: pa.MapType[Any, Any]) -> object:
    pairs = list(value.items()) if isinstance(value, dict) else list(value)  # type: ignore[call-overload]  # as_py() of a map: a list of pairs
    converted = [(to_json(k, t.key_type), to_json(v, t.item_type)) for k, v in pairs]
    if all(isinstance(k, str) for k, _ in converted):
        return dict(converted)
    return [[k, v] for k, v in converted]


def batch_rows(batch: pa.RecordBatch) -> list[dict[str, object]]:
    """Every row of a batch as a JSON object."""
    types = {f.name: f.type for f in batch.schema}
    return [{name: to_json(v, types[name]) for name, v in row.items()} for row in batch.to_pylist()]


def result_json(info: RpcMethodInfo, batch: pa.RecordBatch) -> object:
    """A unary result batch as JSON (``None`` for a method without a result)."""
    if info.result_codec is None or batch.num_columns == 0 or batch.num_rows == 0:
        return None
    field = batch.schema.field(0)
    value = batch.column(0)[0].as_py()
    if value is None:
        return None
    cls = ipc_class(info.result_codec)
    kind = ipc_kind(info.result_codec)
    try:
        if cls is not None and isinstance(value, bytes):
            rows = batch_rows(read_embedded_batch(value, f"{info.name}() result"))
            return rows[0] if len(rows) == 1 else rows
        if kind is pa.RecordBatch and isinstance(value, bytes):
            return batch_rows(read_embedded_batch(value, f"{info.name}() result"))
        if kind is pa.Schema and isinstance(value, bytes):
            return str(read_embedded_schema(value, f"{info.name}() result"))
    except IPCError as exc:
        return {"undecodable": str(exc), "bytes": _bytes_json(value)}
    return to_json(value, field.type)


__all__ = [
    "BASE64_PREFIX",
    "JsonArgumentError",
    "arguments_batch",
    "batch_rows",
    "dataclass_schema",
    "ipc_class",
    "ipc_kind",
    "ipc_stream",
    "readable_type",
    "result_json",
    "struct_row",
    "to_arrow",
    "to_json",
]
