"""Introspection: describe a Protocol locally, or ask a running server (``__describe__``).

``describe_rpc(Proto)`` renders a Protocol's methods as text;
``introspect(proxy)`` asks a server started with ``enable_describe=True``;
``json_schema(arrow_type)`` turns an Arrow type into a JSON Schema fragment
(used by ``vgi-rpc describe --format json``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Protocol, cast

import pyarrow as pa

from vgi_rpc._errors import ProtocolError
from vgi_rpc._ipc import IpcValidation
from vgi_rpc._methods import rpc_methods
from vgi_rpc.rpc import (
    DESCRIBE_SCHEMA,
    DESCRIBE_VERSION,
    ONE_EMPTY_ROW,
    REFLECTION,
    Channel,
    MethodDescription,
    ProtocolList,
    RpcConnection,
    ServiceDescription,
    build_describe_batch,
    connection_of,
    owner_of,
    parse_describe_batch,
    protocol_hash,
)
from vgi_rpc.wire import keys


def describe_rpc(protocol: type) -> str:
    """Human-readable description of every method of ``protocol`` (signature, kind, docstring)."""
    lines = [f"{protocol.__name__}: {inspect.getdoc(protocol) or ''}".rstrip(": ")]
    for name, info in sorted(rpc_methods(protocol).items()):
        params = ", ".join(
            f"{p.name}: {p.field.type}{'' if p.field.nullable is False else ' | None'}"
            + (f" = {p.default!r}" if p.has_default else "")
            for p in info.params
        )
        if info.is_stream:
            kind = {True: "exchange stream", False: "producer stream", None: "stream"}[
                info.is_exchange
            ]
            header = f", header {info.header_type.__name__}" if info.header_type else ""
            returns = f"{kind}{header}"
        else:
            returns = str(info.result_schema.field(0).type) if info.has_return else "None"
        lines.append(f"  {name}({params}) -> {returns}")
        if info.doc:
            lines.extend(f"      {line}" for line in info.doc.splitlines())
    return "\n".join(lines)


def local_description(protocol: type, server_id: str = "") -> ServiceDescription:
    """The description a server for ``protocol`` would return, computed locally."""
    batch, metadata = build_describe_batch(protocol.__name__, rpc_methods(protocol), server_id)
    return parse_describe_batch(batch, metadata)


class _AnyService(Protocol):
    """Placeholder: introspection needs no methods of its own."""


def introspect(
    transport: object, ipc_validation: IpcValidation = IpcValidation.FULL
) -> ServiceDescription:
    """Ask the server at the other end of ``transport`` for its ``__describe__`` payload.

    ``transport`` is a proxy, its channel (``introspect(proxy._transport)``), any
    other open channel (a pipe from ``make_pipe_pair``, a ``ShmPipeTransport``
    ...), or an ``RpcConnection``. ``ipc_validation`` applies to a channel no
    connection was made over yet.

    Raises:
        RpcError: The server does not answer ``__describe__`` (start it with
            ``enable_describe=True``).
        TypeError: ``transport`` is none of those.
    """
    target = transport
    if isinstance(target, RpcConnection):
        return target.describe()
    if hasattr(target, "_vgi_connection"):
        return connection_of(target).describe()
    owner = owner_of(target)
    if owner is not None:
        return owner.describe()
    if not all(hasattr(target, name) for name in ("reader", "write_chunks", "peer_failure")):
        raise TypeError(f"introspect() needs a proxy or a channel, got {type(target).__name__}")
    # A bare channel: a connection over it for this one request (the channel stays open).
    channel = cast(Channel, target)
    return RpcConnection(_AnyService, channel, ipc_validation=ipc_validation).describe()


def list_protocols(proxy: object) -> ProtocolList:
    """Every protocol the server behind ``proxy`` hosts (``vgi_rpc.Reflection.v1``).

    Raises:
        RpcError: The server does not host reflection (``protocol_not_supported``).
    """
    conn = proxy if isinstance(proxy, RpcConnection) else connection_of(proxy)
    method = "list_protocols"
    conn.send_request(method, ONE_EMPTY_ROW, extra={keys.PROTOCOL_KEY: REFLECTION.encode()})
    batch, error = conn.read_response_stream(method)
    if error is not None:
        raise error
    if batch is None or batch.num_rows != 1:
        raise ProtocolError("list_protocols answered without its one result row")
    return ProtocolList.deserialize_from_bytes(batch.column(0)[0].as_py())


_PLAIN: list[tuple[Callable[[pa.DataType], bool], dict[str, object]]] = [
    (pa.types.is_boolean, {"type": "boolean"}),
    (pa.types.is_floating, {"type": "number"}),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), {"type": "string"}),
    (pa.types.is_date, {"type": "string", "format": "date"}),
    (pa.types.is_time, {"type": "string", "format": "time"}),
]
# Types JSON can only carry as text; the Arrow type rides along as x-arrow-type.
_TAGGED: list[tuple[Callable[[pa.DataType], bool], dict[str, object]]] = [
    (pa.types.is_decimal, {"type": "string", "format": "decimal"}),
    (
        lambda t: (
            pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
        ),
        {"type": "string", "contentEncoding": "base64"},
    ),
    (pa.types.is_timestamp, {"type": "string", "format": "date-time"}),
    (pa.types.is_duration, {"type": "string", "format": "duration"}),
]


def json_schema(arrow_type: pa.DataType) -> dict[str, object]:
    """A JSON Schema fragment for values of ``arrow_type`` as JSON would carry them."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        return json_schema(t.value_type)
    if pa.types.is_integer(t):
        bits = t.bit_width
        if pa.types.is_unsigned_integer(t):
            return {"type": "integer", "minimum": 0, "maximum": 2**bits - 1}
        return {"type": "integer", "minimum": -(2 ** (bits - 1)), "maximum": 2 ** (bits - 1) - 1}
    for matches, plain in _PLAIN:
        if matches(t):
            return dict(plain)
    for matches, tagged in _TAGGED:
        if matches(t):
            return {**tagged, "x-arrow-type": str(t)}
    if pa.types.is_map(t):
        return {
            "type": "object",
            "additionalProperties": json_schema(t.item_type),
            "x-arrow-type": str(t),
        }
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return {"type": "array", "items": json_schema(t.value_type)}
    if pa.types.is_struct(t):
        return schema_object([t.field(i) for i in range(t.num_fields)])
    return {"x-arrow-type": str(t)}


def schema_object(fields: list[pa.Field[pa.DataType]] | pa.Schema) -> dict[str, object]:
    """A JSON Schema object with one property per Arrow field (required unless nullable)."""
    properties: dict[str, object] = {}
    required = []
    for f in fields:
        prop = json_schema(f.type)
        if f.nullable:
            prop = {"anyOf": [prop, {"type": "null"}]}
        else:
            required.append(f.name)
        properties[f.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


__all__ = [
    "DESCRIBE_SCHEMA",
    "DESCRIBE_VERSION",
    "MethodDescription",
    "ServiceDescription",
    "build_describe_batch",
    "describe_rpc",
    "introspect",
    "json_schema",
    "list_protocols",
    "local_description",
    "parse_describe_batch",
    "protocol_hash",
    "schema_object",
]
