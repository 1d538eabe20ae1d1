"""``vgi_rpc.Reflection.v1``: introspection as an ordinary hosted protocol (wire spec section 14).

``list_protocols()`` says what a server hosts (names, versions, hashes);
``describe(protocol)`` gives one protocol's methods with their schemas as
Arrow IPC bytes. Both answer with dataclasses, which travel as IPC streams
in a binary ``result`` column like any other dataclass result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

import pyarrow as pa

from vgi_rpc._dataclasses import ArrowSerializableDataclass
from vgi_rpc._errors import ProtocolNotSupportedError
from vgi_rpc._methods import RpcMethodInfo
from vgi_rpc.rpc._fingerprint import protocol_hash_v1, result_schema
from vgi_rpc.rpc._hosting import Hosted

REFLECTION = "vgi_rpc.Reflection.v1"


@dataclass(frozen=True)
class MethodSummary(ArrowSerializableDataclass):
    """One method's wire surface; absent schemas are empty bytes."""

    name: str
    method_type: str
    has_return: bool
    has_header: bool
    stream_kind: str
    params_schema_ipc: bytes
    result_schema_ipc: bytes
    header_schema_ipc: bytes
    idempotency: str = "unknown"
    deprecated: bool = False
    deprecation_message: str = ""


@dataclass(frozen=True)
class ProtocolDescription(ArrowSerializableDataclass):
    """One protocol's full description (no server identity: it describes the protocol)."""

    protocol: str
    protocol_version: str
    protocol_hash: str
    deprecated: bool
    deprecation_message: str
    features: list[str]
    methods: list[MethodSummary]


@dataclass(frozen=True)
class ProtocolSummary(ArrowSerializableDataclass):
    """One hosted protocol, as ``list_protocols`` reports it."""

    protocol: str
    protocol_version: str
    protocol_hash: str
    deprecated: bool
    deprecation_message: str
    features: list[str]


@dataclass(frozen=True)
class ProtocolList(ArrowSerializableDataclass):
    """What a server hosts, reflection included."""

    server_id: str
    server_version: str
    request_version: str
    protocols: list[ProtocolSummary]


class Reflection(Protocol):
    """Discovery of the protocols a server hosts."""

    protocol_name: ClassVar[str] = REFLECTION

    def list_protocols(self) -> ProtocolList:
        """Every hosted protocol with its version and hash."""
        ...

    def describe(self, protocol: str) -> ProtocolDescription:
        """One hosted protocol's methods and schemas."""
        ...


def _ipc(schema: pa.Schema | None) -> bytes:
    return b"" if schema is None else schema.serialize().to_pybytes()


def _stream_kind(info: RpcMethodInfo) -> str:
    if not info.is_stream:
        return ""
    if info.is_exchange is None:
        return "unknown"
    return "exchange" if info.is_exchange else "producer"


def _method(info: RpcMethodInfo) -> MethodSummary:
    header = info.header_type
    return MethodSummary(
        name=info.name,
        method_type=info.method_type.value,
        has_return=info.has_return,
        has_header=header is not None,
        stream_kind=_stream_kind(info),
        params_schema_ipc=_ipc(info.params_schema),
        result_schema_ipc=_ipc(result_schema(info) if info.has_return else None),
        header_schema_ipc=_ipc(header.ARROW_SCHEMA if header is not None else None),  # type: ignore[attr-defined]  # header types are ArrowSerializableDataclass
    )


class ReflectionImpl:
    """Answers ``vgi_rpc.Reflection.v1`` for a server's hosted table."""

    def __init__(
        self,
        hosted: Callable[[], Mapping[str, Hosted]],
        server_id: str,
        server_version: str,
        request_version: str,
    ) -> None:
        self._hosted = hosted
        self._server_id = server_id
        self._server_version = server_version
        self._request_version = request_version
        self._hashes: dict[str, str] = {}
        self._descriptions: dict[str, ProtocolDescription] = {}

    def hash_of(self, hosted: Hosted) -> str:
        """The protocol's ``protocol_hash`` (computed once)."""
        found = self._hashes.get(hosted.name)
        if found is None:
            found = self._hashes[hosted.name] = protocol_hash_v1(hosted.name, hosted.methods)
        return found

    def list_protocols(self) -> ProtocolList:
        """See ``Reflection.list_protocols``."""
        return ProtocolList(
            server_id=self._server_id,
            server_version=self._server_version,
            request_version=self._request_version,
            protocols=[
                ProtocolSummary(
                    protocol=hosted.name,
                    protocol_version=hosted.version or "",
                    protocol_hash=self.hash_of(hosted),
                    deprecated=False,
                    deprecation_message="",
                    features=[],
                )
                for hosted in self._hosted().values()
            ],
        )

    def describe(self, protocol: str) -> ProtocolDescription:
        """See ``Reflection.describe``."""
        cached = self._descriptions.get(protocol)
        if cached is not None:
            return cached
        table = self._hosted()
        hosted = table.get(protocol)
        if hosted is None:
            raise ProtocolNotSupportedError(
                f"this server does not host protocol {protocol!r}; it hosts {list(table)}"
            )
        methods = hosted.methods
        description = ProtocolDescription(
            protocol=hosted.name,
            protocol_version=hosted.version or "",
            protocol_hash=self.hash_of(hosted),
            deprecated=False,
            deprecation_message="",
            features=[],
            methods=[_method(methods[name]) for name in sorted(methods)],
        )
        self._descriptions[protocol] = description
        return description


__all__ = [
    "REFLECTION",
    "MethodSummary",
    "ProtocolDescription",
    "ProtocolList",
    "ProtocolSummary",
    "Reflection",
    "ReflectionImpl",
]
