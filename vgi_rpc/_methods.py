"""A Protocol class -> its table of RPC methods (kinds, schemas, codecs, defaults, docs).

Pure inspection at load time; knows nothing about bytes or I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import typing
from typing import get_args, get_origin, get_type_hints

import pyarrow as pa

from vgi_rpc._arrow_types import (
    ArrayBuilder,
    Codec,
    arrow_field,
    is_arrow_dataclass,
    single_value_builder,
)
from vgi_rpc._errors import SchemaError

_SEMVER_PATTERN = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$"
_semver: re.Pattern[str] | None = None  # compiled on first use: most protocols declare no version


def _semver_match(text: str) -> re.Match[str] | None:
    global _semver
    if _semver is None:
        _semver = re.compile(_SEMVER_PATTERN)
    return _semver.match(text)


class MethodType(enum.Enum):
    """Whether a method answers once (unary) or opens a stream."""

    UNARY = "unary"
    STREAM = "stream"


_NO_DEFAULT = inspect.Parameter.empty


@dataclasses.dataclass(frozen=True, slots=True)
class ParamInfo:
    """One parameter of an RPC method."""

    name: str
    annotation: object
    codec: Codec
    field: pa.Field[pa.DataType]
    build: ArrayBuilder
    default: object = _NO_DEFAULT

    @property
    def has_default(self) -> bool:
        """Whether the Protocol gives this parameter a default."""
        return self.default is not _NO_DEFAULT


@dataclasses.dataclass(frozen=True, slots=True)
class RpcMethodInfo:
    """Everything the framework knows about one method of a Protocol."""

    name: str
    method_type: MethodType
    params: tuple[ParamInfo, ...]
    params_schema: pa.Schema
    result_schema: pa.Schema
    result_codec: Codec | None
    result_build: ArrayBuilder | None
    header_type: type | None
    is_exchange: bool | None
    doc: str
    signature: inspect.Signature

    @property
    def has_return(self) -> bool:
        """Whether a unary method returns a value (``-> None`` does not)."""
        return self.result_codec is not None

    @property
    def is_stream(self) -> bool:
        """Whether the method opens a stream."""
        return self.method_type is MethodType.STREAM


def is_stream_annotation(annotation: object) -> bool:
    """Whether a return annotation is ``Stream[...]``."""
    origin = get_origin(annotation) or annotation
    return getattr(origin, "__vgi_stream__", False) is True


def _result(name: str, annotation: object) -> tuple[pa.Schema, Codec | None]:
    if annotation is None or annotation is type(None):
        return pa.schema([]), None
    field, codec = arrow_field("result", annotation)
    if is_arrow_dataclass(getattr(codec, "cls", None)):
        # The reference declares dataclass results nullable; matching it keeps
        # describe payloads (and their protocol_hash) identical across ports.
        field = field.with_nullable(True)
    return pa.schema([field]), codec


def _stream_header(annotation: object) -> type | None:
    args = get_args(annotation)
    if len(args) < 2 or args[1] is None or args[1] is type(None):
        return None
    header = args[1]
    if not is_arrow_dataclass(header):
        raise SchemaError(f"a stream header must be an ArrowSerializableDataclass, got {header!r}")
    assert isinstance(header, type)
    return header


def stream_kind(annotation: object) -> bool | None:
    """True for ``Stream[SomeExchangeState]``, False for a producer state, None when unknown."""
    args = get_args(annotation)
    kind = getattr(args[0], "__vgi_stream_kind__", None) if args else None
    return None if kind is None else kind == "exchange"


def _method_info(name: str, func: typing.Callable[..., object]) -> RpcMethodInfo:
    try:
        hints = get_type_hints(func, include_extras=True)
    except (NameError, TypeError) as exc:
        raise SchemaError(f"cannot resolve the annotations of {name}(): {exc}") from exc
    signature = inspect.signature(func)
    params: list[ParamInfo] = []
    for param in list(signature.parameters.values())[1:]:  # skip self
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise SchemaError(f"{name}(): *args and **kwargs cannot be RPC parameters")
        if param.name not in hints:
            raise SchemaError(f"{name}(): parameter {param.name!r} has no type annotation")
        try:
            field, codec = arrow_field(param.name, hints[param.name])
        except SchemaError as exc:
            raise SchemaError(f"{name}(), parameter {param.name!r}: {exc}") from exc
        params.append(
            ParamInfo(
                param.name,
                hints[param.name],
                codec,
                field,
                single_value_builder(field.type),
                param.default,
            )
        )
    if "return" not in hints:
        raise SchemaError(f"{name}() has no return annotation (use -> None for no result)")
    returns = hints["return"]
    header_type: type | None = None
    try:
        if is_stream_annotation(returns):
            method_type = MethodType.STREAM
            result_schema, result_codec = pa.schema([]), None
            header_type = _stream_header(returns)
        else:
            method_type = MethodType.UNARY
            result_schema, result_codec = _result(name, returns)
    except SchemaError as exc:
        raise SchemaError(f"{name}(), return type: {exc}") from exc
    return RpcMethodInfo(
        name=name,
        method_type=method_type,
        params=tuple(params),
        params_schema=pa.schema([p.field for p in params]),
        result_schema=result_schema,
        result_codec=result_codec,
        result_build=single_value_builder(result_schema.field(0).type) if result_codec else None,
        header_type=header_type,
        is_exchange=stream_kind(returns) if method_type is MethodType.STREAM else None,
        doc=inspect.getdoc(func) or "",
        signature=signature.replace(parameters=list(signature.parameters.values())[1:]),
    )


_CACHE: dict[type, dict[str, RpcMethodInfo]] = {}


def rpc_methods(protocol: type) -> dict[str, RpcMethodInfo]:
    """Return the RPC methods a Protocol class declares, by name (cached).

    Raises:
        SchemaError: A method has an annotation with no Arrow mapping.
    """
    cached = _CACHE.get(protocol)
    if cached is not None:
        return cached
    methods: dict[str, RpcMethodInfo] = {}
    for klass in reversed(protocol.__mro__):
        if klass is object or klass is typing.Protocol or klass.__name__ == "Generic":
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or not inspect.isfunction(member):
                continue
            methods[name] = _method_info(name, member)
    _CACHE[protocol] = methods
    return methods


def protocol_version_of(protocol: type) -> str | None:
    """The ``protocol_version`` a Protocol declares, validated as MAJOR.MINOR.PATCH."""
    version = getattr(protocol, "protocol_version", None)
    if version is None:
        return None
    if not isinstance(version, str) or not _semver_match(version):
        raise SchemaError(
            f"{protocol.__name__}.protocol_version must be MAJOR.MINOR.PATCH, got {version!r}"
        )
    return version


_MAX_SEMVER_CHARS = 64


def parse_semver(text: str) -> tuple[int, int, int] | None:
    """Parse canonical semver; ``None`` when malformed (or absurdly long: it may come off the wire)."""
    if len(text) > _MAX_SEMVER_CHARS:
        return None
    match = _semver_match(text)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch)


__all__ = [
    "MethodType",
    "ParamInfo",
    "RpcMethodInfo",
    "is_stream_annotation",
    "parse_semver",
    "protocol_version_of",
    "rpc_methods",
]
