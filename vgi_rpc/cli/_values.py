"""Command-line values to Arrow and back: ``key=value`` and ``--json`` parameters, JSON rows out.

Values are parsed by the parameter's Arrow type: numbers, ``true``/``false``,
ISO dates and times, ``0x`` hex for binary, JSON for lists, maps and
structs, anything else as a string.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from collections.abc import Callable, Iterable, Sequence

import pyarrow as pa

from vgi_rpc._errors import IPCError
from vgi_rpc._ipc_embedded import read_ipc_stream
from vgi_rpc.introspect import MethodDescription
from vgi_rpc.rpc import ONE_EMPTY_ROW


class UsageError(Exception):
    """A mistake on the command line (exit status 2)."""


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("expected true or false")
    return lowered in ("true", "1", "yes")


def _parse_bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:]) if text.startswith("0x") else text.encode()


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


_PARSERS: list[tuple[Callable[[pa.DataType], bool], Callable[[str], object]]] = [
    (pa.types.is_integer, lambda text: int(text, 0)),
    (pa.types.is_floating, float),
    (pa.types.is_boolean, _parse_bool),
    (pa.types.is_decimal, decimal.Decimal),
    (pa.types.is_timestamp, dt.datetime.fromisoformat),
    (pa.types.is_date, dt.date.fromisoformat),
    (pa.types.is_time, dt.time.fromisoformat),
    (_is_binary, _parse_bytes),
    (_is_text, str),
]


def _value_type(field: pa.Field[pa.DataType]) -> pa.DataType:
    return field.type.value_type if pa.types.is_dictionary(field.type) else field.type


def parse_text(text: str, field: pa.Field[pa.DataType]) -> object:
    """Parse one ``key=value`` value as the parameter's Arrow type (JSON for nested types)."""
    if text.lower() in ("null", "none") and field.nullable:
        return None
    t = _value_type(field)
    try:
        for matches, parse in _PARSERS:
            if matches(t):
                return parse(text)
        value = json.loads(text)
    except (ValueError, decimal.InvalidOperation) as exc:
        raise UsageError(f"{field.name}={text!r}: not a valid {field.type} ({exc})") from None
    return _from_json(value, t)


def _from_json(value: object, t: pa.DataType) -> object:
    """A JSON value as pyarrow takes it for ``t`` (maps become key/value pairs)."""
    if pa.types.is_map(t) and isinstance(value, dict):
        return list(value.items())
    return value


def _parse_json_value(value: object, field: pa.Field[pa.DataType]) -> object:
    """A ``--json`` value: strings go through the text parsers of non-text types."""
    t = _value_type(field)
    if isinstance(value, str) and not _is_text(t):
        return parse_text(value, field)
    return _from_json(value, t)


def _batch(
    method: MethodDescription,
    given: dict[str, object],
    defaults: dict[str, object],
    shown: Callable[[str], object],
) -> pa.RecordBatch:
    schema = method.params_schema
    missing = [
        f.name for f in schema if f.name not in given and f.name not in defaults and not f.nullable
    ]
    if missing:
        raise UsageError(f"{method.name}() needs {', '.join(m + '=...' for m in missing)}")
    if not len(schema):
        return ONE_EMPTY_ROW
    arrays = []
    for field in schema:
        value = given[field.name] if field.name in given else defaults.get(field.name)
        try:
            arrays.append(pa.array([value], type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise UsageError(
                f"{field.name}: {shown(field.name)!r} does not fit {field.type}: {exc}"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _check_name(method: MethodDescription, key: str) -> None:
    if method.params_schema.get_field_index(key) < 0:
        raise UsageError(
            f"{method.name}() has no parameter {key!r}; parameters: {method.params_schema.names}"
        )


def build_request(
    method: MethodDescription, assignments: Sequence[str], defaults: dict[str, object] | None = None
) -> pa.RecordBatch:
    """The request batch for ``METHOD key=value ...``, typed by the described parameter schema.

    Parameters left out take the server's advertised defaults (our describe
    extension), else null when nullable; anything else is a usage error.
    """
    texts: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"argument {item!r} is not key=value")
        _check_name(method, key)
        texts[key] = value
    schema = method.params_schema
    given = {key: parse_text(text, schema.field(key)) for key, text in texts.items()}
    return _batch(method, given, defaults or {}, texts.get)


def build_json_request(
    method: MethodDescription, text: str, defaults: dict[str, object] | None = None
) -> pa.RecordBatch:
    """The request batch for ``METHOD --json '{"a": 1}'``."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--json: not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise UsageError("--json takes a JSON object of parameter names and values")
    for key in document:
        _check_name(method, key)
    schema = method.params_schema
    given = {key: _parse_json_value(v, schema.field(key)) for key, v in document.items()}
    return _batch(method, given, defaults or {}, document.get)


def json_row_batches(lines: Iterable[str]) -> Iterable[pa.RecordBatch]:
    """Exchange input given as JSON lines: one object per line, one one-row batch each.

    The lines are read first so that every batch gets the same schema (types
    unified over all rows: ``1`` and ``1.5`` make a double column).
    """
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"input line {number}: not valid JSON ({exc})") from None
        if not isinstance(row, dict):
            raise UsageError(f"input line {number}: expected a JSON object (one row)")
        records.append(row)
    if not records:
        return
    try:
        table = pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise UsageError(f"input rows do not share one set of column types: {exc}") from None
    for i in range(table.num_rows):
        yield table.slice(i, 1).combine_chunks().to_batches()[0]


def plain(value: object) -> object:
    """Make decoded values JSON-friendly; nested IPC payloads (dataclasses) are opened."""
    if isinstance(value, bytes):
        if value[:4] == b"\xff\xff\xff\xff":
            try:  # the server's bytes: bounded and validated before anything reads them
                _, batches = read_ipc_stream(value)
                rows = [row for batch in batches for row in batch.to_pylist()]
                return plain(rows[0] if len(rows) == 1 else rows)
            except (IPCError, ValueError, OverflowError):
                pass
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): plain(v) for k, v in value}  # a map column: key/value pairs
        return [plain(v) for v in value]
    if isinstance(value, dt.date | dt.time | dt.timedelta | decimal.Decimal):
        return str(value)
    return value


def rows(batch: pa.RecordBatch) -> list[dict[str, object]]:
    """The rows of ``batch`` as JSON-friendly objects."""
    return [{str(k): plain(v) for k, v in row.items()} for row in batch.to_pylist()]


__all__ = [
    "UsageError",
    "build_json_request",
    "build_request",
    "json_row_batches",
    "parse_text",
    "plain",
    "rows",
]
