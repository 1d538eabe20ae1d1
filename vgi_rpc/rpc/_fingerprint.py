"""``protocol_hash`` of the second protocol generation (wire spec section 14).

A fingerprint of a protocol's wire surface defined over what Arrow decodes
to: sha256 over a domain tag and the RFC 8785 (JCS) form of a preimage made
only of objects, arrays, strings and booleans, every Arrow type written as
a lowercase token.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import pyarrow as pa

from vgi_rpc._methods import RpcMethodInfo

DOMAIN_TAG = b"vgi_rpc.protocol_hash.v1|"

_SIMPLE = {
    pa.null(): "null",
    pa.bool_(): "bool",
    pa.int8(): "int8",
    pa.int16(): "int16",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.uint8(): "uint8",
    pa.uint16(): "uint16",
    pa.uint32(): "uint32",
    pa.uint64(): "uint64",
    pa.float16(): "float16",
    pa.float32(): "float32",
    pa.float64(): "float64",
    pa.utf8(): "utf8",
    pa.large_utf8(): "large_utf8",
    pa.string_view(): "utf8_view",
    pa.binary(): "binary",
    pa.large_binary(): "large_binary",
    pa.binary_view(): "binary_view",
    pa.date32(): "date32",
    pa.date64(): "date64",
    pa.month_day_nano_interval(): "interval_month_day_nano",
}


def _child(name: str, field: pa.Field[pa.DataType]) -> str:
    return f"{name}{'?' if field.nullable else ''}:{type_token(field.type)}"


def type_token(t: pa.DataType) -> str:  # noqa: C901  (one branch per Arrow type family)
    """The canonical token of an Arrow type.

    Raises:
        TypeError: The type has no token (the spec forbids falling back to ``str(t)``).
    """
    simple = _SIMPLE.get(t)
    if simple is not None:
        return simple
    if isinstance(t, pa.Decimal128Type | pa.Decimal256Type):
        width = 128 if isinstance(t, pa.Decimal128Type) else 256
        return f"decimal{width}({t.precision},{t.scale})"
    if isinstance(t, pa.FixedSizeBinaryType):
        return f"fixed_size_binary({t.byte_width})"
    if isinstance(t, pa.Time32Type | pa.Time64Type):
        return f"time{t.bit_width}({t.unit})"
    if isinstance(t, pa.TimestampType):
        return f"timestamp({t.unit})" if t.tz is None else f"timestamp({t.unit},tz={t.tz})"
    if isinstance(t, pa.DurationType):
        return f"duration({t.unit})"
    if isinstance(t, pa.FixedSizeListType):
        return f"fixed_size_list({t.list_size})<{_child('item', t.value_field)}>"
    if isinstance(t, pa.MapType):
        inner = f"{_child('key', t.key_field)},{_child('value', t.item_field)}"
        return f"map<{inner}{',keys_sorted' if t.keys_sorted else ''}>"
    lists: list[tuple[type, str]] = [
        (pa.LargeListType, "large_list"),
        (pa.ListType, "list"),
        (pa.LargeListViewType, "large_list_view"),
        (pa.ListViewType, "list_view"),
    ]
    for kind, label in lists:
        if isinstance(t, kind):
            return f"{label}<{_child('item', t.value_field)}>"  # type: ignore[attr-defined]  # every list type has value_field
    if isinstance(t, pa.StructType):
        return f"struct<{','.join(_child(f.name, f) for f in t)}>"
    if isinstance(t, pa.DictionaryType):
        ordered = ",ordered" if t.ordered else ""
        return f"dictionary<index:{type_token(t.index_type)},value:{type_token(t.value_type)}{ordered}>"
    if isinstance(t, pa.UnionType):
        union = "dense_union" if t.mode == "dense" else "sparse_union"
        children = ",".join(
            f"{code}={_child(t.field(i).name, t.field(i))}" for i, code in enumerate(t.type_codes)
        )
        return f"{union}<{children}>"
    if isinstance(t, pa.RunEndEncodedType):
        return f"run_end_encoded<run_ends:{type_token(t.run_end_type)},values:{type_token(t.value_type)}>"
    if isinstance(t, pa.ExtensionType):
        return f"extension({t.extension_name})<{type_token(t.storage_type)}>"
    if t == pa.month_day_nano_interval():
        return "interval_month_day_nano"
    raise TypeError(f"Arrow type {t} has no protocol_hash token")


def _fields(schema: pa.Schema) -> list[dict[str, object]]:
    return [{"name": f.name, "nullable": f.nullable, "type": type_token(f.type)} for f in schema]


def result_schema(info: RpcMethodInfo) -> pa.Schema:
    """The result schema as the second generation declares it.

    The first generation declares every dataclass result nullable; the second
    keeps the annotation's own nullability (``-> Point`` is ``binary not null``).
    """
    codec = info.result_codec
    schema = info.result_schema
    if codec is None or not len(schema) or schema.field(0).nullable == codec.nullable:
        return schema
    return pa.schema([schema.field(0).with_nullable(codec.nullable)])


def preimage(protocol: str, methods: Mapping[str, RpcMethodInfo]) -> dict[str, object]:
    """The structure the hash is taken over (methods sorted by name)."""
    entries: list[dict[str, object]] = []
    for name in sorted(methods):
        info = methods[name]
        entry: dict[str, object] = {
            "name": name,
            "type": info.method_type.value,
            "has_return": info.has_return,
            "has_header": info.header_type is not None,
            "params": _fields(info.params_schema),
        }
        if info.has_return:
            entry["result"] = _fields(result_schema(info))
        if info.header_type is not None:
            entry["header"] = _fields(info.header_type.ARROW_SCHEMA)  # type: ignore[attr-defined]  # header types are ArrowSerializableDataclass
        entries.append(entry)
    return {"protocol": protocol, "methods": entries}


def canonical_json(value: object) -> bytes:
    """RFC 8785 for a structure without numbers: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def protocol_hash_v1(protocol: str, methods: Mapping[str, RpcMethodInfo]) -> str:
    """64 lowercase hex digits fingerprinting the protocol's wire surface."""
    return hashlib.sha256(DOMAIN_TAG + canonical_json(preimage(protocol, methods))).hexdigest()


__all__ = [
    "DOMAIN_TAG",
    "canonical_json",
    "preimage",
    "protocol_hash_v1",
    "result_schema",
    "type_token",
]
