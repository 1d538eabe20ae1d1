"""The ``__describe__`` payload (wire spec section 14): build it, hash it, parse it.

Pure data transformation; the server answers with it and ``introspect``
reads it back. Format version "4".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping

import pyarrow as pa

from vgi_rpc._errors import IPCError, ProtocolError
from vgi_rpc._ipc import Metadata
from vgi_rpc._ipc_embedded import read_embedded_schema
from vgi_rpc._methods import MethodType, RpcMethodInfo
from vgi_rpc.wire import keys as k

DESCRIBE_VERSION = "4"

_DESCRIBE_FIELDS: list[pa.Field[pa.DataType]] = [
    pa.field("name", pa.utf8()),
    pa.field("method_type", pa.utf8()),
    pa.field("has_return", pa.bool_()),
    pa.field("params_schema_ipc", pa.binary()),
    pa.field("result_schema_ipc", pa.binary()),
    pa.field("has_header", pa.bool_()),
    pa.field("header_schema_ipc", pa.binary()),
    pa.field("is_exchange", pa.bool_()),
]
DESCRIBE_SCHEMA = pa.schema(_DESCRIBE_FIELDS)


@dataclasses.dataclass(frozen=True, slots=True)
class MethodDescription:
    """One method as a server describes it (the same type over every transport)."""

    name: str
    method_type: MethodType
    has_return: bool
    params_schema: pa.Schema
    result_schema: pa.Schema
    header_schema: pa.Schema | None
    is_exchange: bool | None

    @property
    def has_header(self) -> bool:
        """Whether the stream declares a header."""
        return self.header_schema is not None


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceDescription:
    """What ``__describe__`` reports about a service."""

    protocol_name: str
    request_version: str
    describe_version: str
    protocol_hash: str
    server_id: str
    protocol_version: str | None
    methods: dict[str, MethodDescription]
    docs: dict[str, str] = dataclasses.field(default_factory=dict)
    defaults: dict[str, dict[str, object]] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        lines = [
            f"{self.protocol_name} (describe v{self.describe_version}, hash {self.protocol_hash[:16]}…)"
        ]
        for m in self.methods.values():
            params = ", ".join(f"{f.name}: {f.type}" for f in m.params_schema)
            kind = (
                m.method_type.value
                if m.is_exchange is None
                else ("exchange" if m.is_exchange else "producer")
            )
            result = ", ".join(str(f.type) for f in m.result_schema) or "None"
            returns = {"unary": result, "stream": "stream"}.get(kind, f"{kind} stream")
            lines.append(f"  {m.name}({params}) -> {returns}")
            lines.extend(f"      {line}" for line in self.docs.get(m.name, "").splitlines())
        return "\n".join(lines)


def build_describe_batch(
    protocol_name: str,
    methods: Mapping[str, RpcMethodInfo],
    server_id: str,
    protocol_version: str | None = None,
    protocol_doc: str = "",
) -> tuple[pa.RecordBatch, Metadata]:
    """One row per method (sorted by name) plus the section 14 metadata keys."""
    rows = [methods[name] for name in sorted(methods)]
    batch = pa.RecordBatch.from_pydict(
        {
            "name": [m.name for m in rows],
            "method_type": [m.method_type.value for m in rows],
            "has_return": [m.has_return for m in rows],
            "params_schema_ipc": [m.params_schema.serialize().to_pybytes() for m in rows],
            "result_schema_ipc": [m.result_schema.serialize().to_pybytes() for m in rows],
            "has_header": [m.header_type is not None for m in rows],
            "header_schema_ipc": [_header_schema_bytes(m.header_type) for m in rows],
            "is_exchange": [m.is_exchange for m in rows],
        },
        schema=DESCRIBE_SCHEMA,
    )
    metadata: Metadata = {
        k.PROTOCOL_NAME_KEY: protocol_name.encode(),
        k.REQUEST_VERSION_KEY: k.REQUEST_VERSION,
        k.DESCRIBE_VERSION_KEY: DESCRIBE_VERSION.encode(),
        k.PROTOCOL_HASH_KEY: protocol_hash(protocol_name, batch).encode(),
        k.SERVER_ID_KEY: server_id.encode(),
    }
    if protocol_version is not None:
        metadata[k.PROTOCOL_VERSION_KEY] = protocol_version.encode()
    extension = {
        "docs": {"": protocol_doc} | {m.name: m.doc for m in rows if m.doc},
        "defaults": {
            m.name: _json_defaults(m) for m in rows if any(p.has_default for p in m.params)
        },
    }
    metadata[k.DESCRIBE_DOCS_KEY] = json.dumps(extension).encode()
    return batch, metadata


def _json_defaults(method: RpcMethodInfo) -> dict[str, object]:
    """Parameter defaults that JSON can carry (others are left out)."""
    out: dict[str, object] = {}
    for param in method.params:
        if param.has_default:
            try:
                json.dumps(param.default)
            except (TypeError, ValueError):
                continue
            out[param.name] = param.default
    return out


def _header_schema_bytes(header_type: type | None) -> bytes | None:
    if header_type is None:
        return None
    schema: pa.Schema = header_type.ARROW_SCHEMA  # type: ignore[attr-defined]  # header types are ArrowSerializableDataclass
    return schema.serialize().to_pybytes()


def protocol_hash(protocol_name: str, batch: pa.RecordBatch) -> str:
    """SHA-256 over the language-neutral describe fields, as the reference defines it.

    Prefix ``vgi_rpc.describe.v4|1|<name>|``, then per row ``0x1f`` and the
    fields name, method_type, has_return, has_header, is_exchange, params,
    result and header schema bytes separated by ``0x1e``.
    """
    h = hashlib.sha256()
    h.update(b"vgi_rpc.describe.v" + DESCRIBE_VERSION.encode() + b"|")
    h.update(k.REQUEST_VERSION + b"|" + protocol_name.encode() + b"|")
    columns = batch.to_pydict()
    for i in range(batch.num_rows):
        exchange = columns["is_exchange"][i]
        fields = [
            columns["name"][i].encode(),
            columns["method_type"][i].encode(),
            b"1" if columns["has_return"][i] else b"0",
            b"1" if columns["has_header"][i] else b"0",
            b"-" if exchange is None else (b"1" if exchange else b"0"),
            columns["params_schema_ipc"][i],
            columns["result_schema_ipc"][i],
            columns["header_schema_ipc"][i] or b"",
        ]
        h.update(b"\x1f" + b"\x1e".join(fields))
    return h.hexdigest()


def _method_type(text: object) -> MethodType:
    try:
        return MethodType(text)
    except ValueError:
        raise ProtocolError(
            f"__describe__ names an unknown method_type {str(text)[:40]!r}; "
            "expected 'unary' or 'stream'"
        ) from None


def _schema(data: object, method: object, which: str) -> pa.Schema:
    """A schema the peer describes, read as bounded untrusted bytes."""
    if not isinstance(data, bytes):
        raise TypeError(f"{method}: the {which} schema is {type(data).__name__}, not bytes")
    try:
        return read_embedded_schema(data, "its bytes")
    except IPCError as exc:
        raise ProtocolError(
            f"malformed __describe__ response: the {which} schema of {method}: {exc}"
        ) from None


def parse_describe_batch(batch: pa.RecordBatch, metadata: Metadata | None) -> ServiceDescription:
    """Read a ``__describe__`` response (ours or another implementation's)."""
    md = metadata or {}
    columns = batch.to_pydict()
    methods: dict[str, MethodDescription] = {}
    try:
        for i in range(batch.num_rows):
            name = columns["name"][i]
            header = columns.get("header_schema_ipc", [None] * batch.num_rows)[i]
            methods[name] = MethodDescription(
                name=name,
                method_type=_method_type(columns["method_type"][i]),
                has_return=bool(columns["has_return"][i]),
                params_schema=_schema(columns["params_schema_ipc"][i], name, "params"),
                result_schema=_schema(columns["result_schema_ipc"][i], name, "result"),
                header_schema=_schema(header, name, "header") if header else None,
                is_exchange=columns.get("is_exchange", [None] * batch.num_rows)[i],
            )
    except (KeyError, TypeError) as exc:
        raise ProtocolError(
            f"malformed __describe__ response: {type(exc).__name__}: {exc}"
        ) from None
    version = md.get(k.PROTOCOL_VERSION_KEY)
    try:
        extension = json.loads(md.get(k.DESCRIBE_DOCS_KEY, b"{}"))
    except ValueError:
        extension = {}
    if not isinstance(extension, dict):
        extension = {}
    docs = extension.get("docs")
    docs = docs if isinstance(docs, dict) else {}
    defaults = extension.get("defaults")
    defaults = defaults if isinstance(defaults, dict) else {}
    return ServiceDescription(
        protocol_name=md.get(k.PROTOCOL_NAME_KEY, b"").decode(),
        request_version=md.get(k.REQUEST_VERSION_KEY, b"").decode(),
        describe_version=md.get(k.DESCRIBE_VERSION_KEY, b"").decode(),
        protocol_hash=md.get(k.PROTOCOL_HASH_KEY, b"").decode(),
        server_id=md.get(k.SERVER_ID_KEY, b"").decode(),
        protocol_version=version.decode() if version is not None else None,
        methods=methods,
        docs={str(key): str(value) for key, value in docs.items()},
        defaults={
            str(key): dict(value) for key, value in defaults.items() if isinstance(value, dict)
        },
    )


__all__ = [
    "DESCRIBE_SCHEMA",
    "DESCRIBE_VERSION",
    "MethodDescription",
    "ServiceDescription",
    "build_describe_batch",
    "parse_describe_batch",
    "protocol_hash",
]
