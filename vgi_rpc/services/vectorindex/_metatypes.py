"""Metadata value types: which ones a namespace accepts, and what a row of them costs.

Metadata is concatenated across upserts (a field missing from a batch is
null-filled, a field seen with two types is widened), so only types whose
null-fill is narrow and whose widening Arrow really performs are accepted:
null, bool, signed and unsigned integers, float32/64, string, binary (and
their large forms), timestamp, date, time and duration, lists of those, and
structs of all of these. Imports nothing from the rest of the service but its
errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from vgi_rpc.services.vectorindex._errors import InvalidArgumentError

MAX_DEPTH = 16  # struct nesting, as for filters
NULL_FILL_BYTES = 9  # what a null-filled field costs per row at most (8-byte offset + validity)
I64 = npt.NDArray[np.int64]


_SCALAR_TYPES = (
    pa.types.is_null,
    pa.types.is_boolean,
    pa.types.is_integer,
    pa.types.is_float32,
    pa.types.is_float64,
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_binary,
    pa.types.is_large_binary,
    pa.types.is_timestamp,
    pa.types.is_date,
    pa.types.is_time,
    pa.types.is_duration,
)


def _scalar(t: Any) -> bool:
    return any(is_type(t) for is_type in _SCALAR_TYPES)


def _is_list(t: Any) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t))


def check_type(t: Any, name: str = "", depth: int = 0) -> int:
    """Refuse a metadata type outside the accepted set; return how many fields it has."""
    if pa.types.is_struct(t):
        if depth > MAX_DEPTH:
            raise InvalidArgumentError(f"metadata nests deeper than {MAX_DEPTH} levels at {name}")
        prefix = f"{name}." if name else ""
        return sum(1 + check_type(f.type, prefix + f.name, depth + 1) for f in t)
    if _scalar(t) or (_is_list(t) and _scalar(t.value_type)):
        return 0
    raise InvalidArgumentError(
        f"metadata field {name} has type {t}; metadata values must be null, bool, integers, "
        "float32/64, strings, binary, timestamps, dates, times, durations, lists of those "
        "or structs (send decimals as float or string)"
    )


def count_fields(t: Any) -> int:
    """Fields of a struct type, nested ones included."""
    return sum(1 + count_fields(f.type) for f in t) if pa.types.is_struct(t) else 0


def leaves(t: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every non-struct field of a struct type, by path."""
    for f in t:
        if pa.types.is_struct(f.type):
            yield from leaves(f.type, (*path, f.name))
        else:
            yield (*path, f.name), f.type


def field_at(t: Any, path: tuple[str, ...]) -> Any:
    """The type at ``path`` in a struct type, or None."""
    for name in path:
        if not pa.types.is_struct(t) or t.get_field_index(name) < 0:
            return None
        t = t.field(name).type
    return t


def child(array: pa.Array[Any], path: tuple[str, ...]) -> pa.Array[Any]:
    """The values at ``path`` of a struct array (a null parent makes them null)."""
    for name in path:
        array = pc.struct_field(array, [array.type.get_field_index(name)])
    return array


def _width(t: Any) -> int:
    """Bytes per row a value of ``t`` takes before its variable part (offsets for lists, strings)."""
    if pa.types.is_struct(t):
        return sum(_width(f.type) for f in t)
    if pa.types.is_null(t):
        return 0
    if pa.types.is_boolean(t):
        return 1
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t) or pa.types.is_large_list(t):
        return 8
    if pa.types.is_string(t) or pa.types.is_binary(t) or _is_list(t):
        return 4
    try:
        return max(1, int(t.bit_width) // 8)
    except ValueError:  # a type no longer accepted, in an old log or snapshot
        return 8


def null_fill_bytes(t: Any) -> int:
    """Bytes a field of type ``t`` costs per row when null-filled (validity bits included)."""
    return _width(t) + count_fields(t) + 1


def fixed_bytes(t: Any) -> int:
    """Bytes every row of a metadata struct type takes whatever its values."""
    return _width(t)


def variable_bytes(array: pa.Array[Any]) -> I64:
    """Per row, the bytes of its variable-width values (string and list contents)."""
    n = len(array)
    t = array.type
    if pa.types.is_struct(t):
        total = np.zeros(n, np.int64)
        for i in range(t.num_fields):
            if _has_variable(t.field(i).type):
                total += variable_bytes(pc.struct_field(array, [i]))
        return total
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return byte_lengths(array)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return byte_lengths(array)
    if _is_list(t):
        lists: Any = array
        offsets = lists.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        values = lists.values
        per_value = np.full(len(values), _width(values.type), np.int64)
        if _has_variable(values.type):
            per_value += variable_bytes(values)
        cumulative = np.concatenate([[0], np.cumsum(per_value)])
        sizes: I64 = cumulative[offsets[1:]] - cumulative[offsets[:-1]]
        return sizes
    return np.zeros(n, np.int64)


def _has_variable(t: Any) -> bool:
    if pa.types.is_struct(t):
        return any(_has_variable(f.type) for f in t)
    return bool(
        _is_list(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    )


def byte_lengths(array: pa.Array[Any]) -> I64:
    """Bytes of each string or binary value (null: 0)."""
    compute: Any = pc
    lengths = compute.binary_length(array).fill_null(0)
    result: I64 = lengths.to_numpy(zero_copy_only=False).astype(np.int64)
    return result
