"""Metadata filters: Pinecone/MongoDB-style dicts compiled to pyarrow compute expressions.

Owns parsing, validation and compilation only; evaluation belongs to the caller
(the engine evaluates the expression over its metadata table). Knows nothing of
faiss, the log or the RPC layer.

Grammar::

    filter    := {clause, ...}                     clauses are ANDed
    clause    := "$and": [filter, ...] | "$or": [filter, ...] | FIELD: condition
    condition := literal                           shorthand for {"$eq": literal}
               | {"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte": literal,
                  "$in"|"$nin": [literal, ...], "$exists": bool, ...}   ANDed

A field missing from the metadata matches nothing, except for ``$ne``, ``$nin``
and ``{"$exists": false}``, which match rows without a value (MongoDB's rule).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from vgi_rpc.services.vectorindex._errors import FilterError

MAX_DEPTH = 16
MAX_NODES = 1_000
MAX_IN_VALUES = 10_000
MAX_FILTER_BYTES = 1 << 20

_COMPARE: dict[str, Callable[[pc.Expression, object], pc.Expression]] = {
    "$eq": lambda f, v: f == v,
    "$gt": lambda f, v: f > v,
    "$gte": lambda f, v: f >= v,
    "$lt": lambda f, v: f < v,
    "$lte": lambda f, v: f <= v,
}
OPERATORS = frozenset({*_COMPARE, "$ne", "$in", "$nin", "$exists"})
_LITERALS = (str, int, float, bool)


def parse_filter(text: str | None) -> dict[str, object] | None:
    """Decode a JSON filter as sent on the wire (``None`` or ``""`` means no filter)."""
    if text is None or text == "":
        return None
    if len(text) > MAX_FILTER_BYTES:
        raise FilterError(f"filter is {len(text)} bytes; the limit is {MAX_FILTER_BYTES}")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise FilterError(f"filter is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FilterError(f"a filter must be a JSON object, got {type(value).__name__}")
    return value


class _Compiler:
    def __init__(self, schema: pa.Schema, prefix: tuple[str, ...]) -> None:
        self.schema = schema
        self.prefix = prefix
        self.nodes = 0

    def filter(self, spec: object, depth: int) -> pc.Expression:
        if depth > MAX_DEPTH:
            raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels")
        if not isinstance(spec, dict):
            raise FilterError(f"expected an object, got {_describe(spec)}")
        parts = [self.clause(key, value, depth) for key, value in spec.items()]
        return _all(parts)

    def clause(self, key: object, value: object, depth: int) -> pc.Expression:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FilterError(f"filter has more than {MAX_NODES} clauses")
        if not isinstance(key, str) or not key:
            raise FilterError(f"field names must be non-empty strings, got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{key} takes a non-empty list of filters")
            subs = [self.filter(item, depth + 1) for item in value]
            return _all(subs) if key == "$and" else _any(subs)
        if key.startswith("$"):
            raise FilterError(f"unknown top-level operator {key!r}; use $and or $or")
        field = self.field(key)
        if isinstance(value, dict):
            if not value:
                raise FilterError(f"{key}: empty condition")
            return _all([self.condition(key, field, op, arg) for op, arg in value.items()])
        return self.condition(key, field, "$eq", value)

    def field(self, name: str) -> tuple[pc.Expression, pa.DataType] | None:
        """Resolve a field (dotted names reach into struct columns); None when absent."""
        if self.schema.get_field_index(name) >= 0:
            return pc.field(*self.prefix, name), self.schema.field(name).type
        path = name.split(".")
        if self.schema.get_field_index(path[0]) < 0:
            return None
        dtype: pa.DataType = self.schema.field(path[0]).type
        for part in path[1:]:
            if not isinstance(dtype, pa.StructType) or dtype.get_field_index(part) < 0:
                return None
            dtype = dtype.field(part).type
        return pc.field(*self.prefix, *path), dtype

    def condition(
        self, name: str, field: tuple[pc.Expression, pa.DataType] | None, op: object, arg: object
    ) -> pc.Expression:
        if op not in OPERATORS:
            raise FilterError(f"{name}: unknown operator {op!r}; known: {sorted(OPERATORS)}")
        if op == "$exists":
            if not isinstance(arg, bool):
                raise FilterError(f"{name}: $exists takes true or false, got {_describe(arg)}")
            if field is None:
                return pc.scalar(not arg)
            valid: pc.Expression = pc.is_valid(field[0])
            return valid if arg else field[0].is_null()
        if op in ("$in", "$nin"):
            if not isinstance(arg, list) or len(arg) > MAX_IN_VALUES:
                raise FilterError(f"{name}: {op} takes a list of at most {MAX_IN_VALUES} values")
            for item in arg:
                self.literal(name, op, item, field)
            if field is None:
                return pc.scalar(op == "$nin")
            values = pa.array(arg, type=field[1]) if arg else pa.array([], type=field[1])
            hit = field[0].isin(values)
            return hit if op == "$in" else (~hit | field[0].is_null())
        self.literal(name, str(op), arg, field)
        if field is None:
            return pc.scalar(op == "$ne")
        if op == "$ne":
            return (field[0] != arg) | field[0].is_null()
        return _COMPARE[str(op)](field[0], arg)

    @staticmethod
    def literal(
        name: str, op: str, value: object, field: tuple[pc.Expression, pa.DataType] | None
    ) -> None:
        if not isinstance(value, _LITERALS):
            raise FilterError(
                f"{name}: {op} takes a string, number or boolean, got {_describe(value)}"
            )
        if field is None:
            return
        dtype = field[1]
        ok = (
            (isinstance(value, bool) and pa.types.is_boolean(dtype))
            or (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and (pa.types.is_integer(dtype) or pa.types.is_floating(dtype))
            )
            or (
                isinstance(value, str)
                and (pa.types.is_string(dtype) or pa.types.is_large_string(dtype))
            )
        )
        if not ok:
            raise FilterError(f"{name}: {op} compares a {dtype} field with {_describe(value)}")


def _describe(value: object) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _all(parts: list[pc.Expression]) -> pc.Expression:
    result = parts[0] if parts else pc.scalar(True)
    for part in parts[1:]:
        result = result & part
    return result


def _any(parts: list[pc.Expression]) -> pc.Expression:
    result = parts[0]
    for part in parts[1:]:
        result = result | part
    return result


def compile_filter(
    spec: dict[str, object], schema: pa.Schema, prefix: tuple[str, ...] = ()
) -> pc.Expression:
    """Compile a filter dict against the metadata schema; raise ``FilterError`` if malformed.

    ``prefix`` is the path of the struct column holding the fields, if any.
    """
    return _Compiler(schema, prefix).filter(spec, 0)


def validate_filter(spec: dict[str, object]) -> None:
    """Check a filter's shape without a schema (every field treated as absent)."""
    compile_filter(spec, pa.schema([]))
