"""A Protocol class -> its table of RPC methods (kinds, schemas, codecs, defaults, docs).

Pure inspection at load time; knows nothing about bytes or I/O.
"""

from __future__ import annotations

import builtins
import enum
import re
import types
import typing
from typing import TYPE_CHECKING, Any, get_args, get_origin, get_type_hints

import pyarrow as pa

from vgi_rpc._arrow_types import (
    ArrayBuilder,
    Codec,
    arrow_field,
    is_arrow_dataclass,
    single_value_builder,
)
from vgi_rpc._errors import SchemaError
from vgi_rpc._record import record

if TYPE_CHECKING:
    import inspect

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


class _NoDefault:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<no default>"


_NO_DEFAULT: Any = _NoDefault()
_LATER: Any = object()  # a field of RpcMethodInfo computed on first access


@record(frozen=True)
class ParamInfo:
    """One parameter of an RPC method."""

    __slots__ = ("annotation", "build", "codec", "default", "field", "name")

    name: str
    annotation: object
    codec: Codec
    field: pa.Field[pa.DataType]
    build: ArrayBuilder
    default: object

    def __init__(
        self,
        name: str,
        annotation: object,
        codec: Codec,
        field: pa.Field[pa.DataType],
        build: ArrayBuilder,
        default: object = _NO_DEFAULT,
    ) -> None:
        init = object.__setattr__
        init(self, "name", name)
        init(self, "annotation", annotation)
        init(self, "codec", codec)
        init(self, "field", field)
        init(self, "build", build)
        init(self, "default", default)

    @property
    def has_default(self) -> bool:
        """Whether the Protocol gives this parameter a default."""
        return self.default is not _NO_DEFAULT


@record(frozen=True)
class RpcMethodInfo:
    """Everything the framework knows about one method of a Protocol."""

    __slots__ = (
        "_doc",
        "_signature",
        "_source",
        "header_type",
        "is_exchange",
        "method_type",
        "name",
        "params",
        "params_schema",
        "result_build",
        "result_codec",
        "result_schema",
    )

    name: str
    method_type: MethodType
    params: tuple[ParamInfo, ...]
    params_schema: pa.Schema
    result_schema: pa.Schema
    result_codec: Codec | None
    result_build: ArrayBuilder | None
    header_type: type | None
    is_exchange: bool | None
    _doc: Any
    _signature: Any
    _source: Any

    def __init__(
        self,
        name: str,
        method_type: MethodType,
        params: tuple[ParamInfo, ...],
        params_schema: pa.Schema,
        result_schema: pa.Schema,
        result_codec: Codec | None,
        result_build: ArrayBuilder | None,
        header_type: type | None,
        is_exchange: bool | None,
        doc: str,
        signature: inspect.Signature,
    ) -> None:
        init = object.__setattr__
        init(self, "name", name)
        init(self, "method_type", method_type)
        init(self, "params", params)
        init(self, "params_schema", params_schema)
        init(self, "result_schema", result_schema)
        init(self, "result_codec", result_codec)
        init(self, "result_build", result_build)
        init(self, "header_type", header_type)
        init(self, "is_exchange", is_exchange)
        init(self, "_doc", doc)
        init(self, "_signature", signature)
        init(self, "_source", None)

    @property
    def doc(self) -> str:
        """The method's cleaned docstring (``""`` when it has none)."""
        if self._doc is _LATER:
            import inspect  # docs and signatures are read by describe and clients, not to serve

            object.__setattr__(self, "_doc", inspect.getdoc(self._source) or "")
        return self._doc  # type: ignore[no-any-return]  # a str once computed

    @property
    def signature(self) -> inspect.Signature:
        """The method's signature without ``self``, as a client proxy shows it."""
        if self._signature is _LATER:
            import inspect

            whole = inspect.signature(self._source)
            parameters = list(whole.parameters.values())[1:]
            object.__setattr__(self, "_signature", whole.replace(parameters=parameters))
        return self._signature  # type: ignore[no-any-return]  # a Signature once computed

    @property
    def has_return(self) -> bool:
        """Whether a unary method returns a value (``-> None`` does not)."""
        return self.result_codec is not None

    @property
    def is_stream(self) -> bool:
        """Whether the method opens a stream."""
        return self.method_type is MethodType.STREAM

    def __setstate__(self, state: list[Any]) -> None:
        RpcMethodInfo.__init__(self, *state)  # doc and signature are properties, not slots

    def with_exchange(self, is_exchange: bool) -> RpcMethodInfo:
        """This method with ``is_exchange`` set (what ``dataclasses.replace`` does, lazily)."""
        copy = object.__new__(RpcMethodInfo)
        for name in RpcMethodInfo.__slots__:
            object.__setattr__(copy, name, getattr(self, name))
        object.__setattr__(copy, "is_exchange", is_exchange)
        return copy

    @classmethod
    def _of_function(cls, func: typing.Callable[..., object], **fields: Any) -> RpcMethodInfo:
        info = cls(**fields, doc=_LATER, signature=_LATER)
        object.__setattr__(info, "_source", func)
        return info


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


_VARARGS, _VARKEYWORDS = 0x04, 0x08  # code flags of *args, **kwargs (inspect.CO_*)


def _parameters(func: typing.Callable[..., object]) -> list[tuple[str, bool, object]]:
    """``(name, is_var, default)`` of each parameter after ``self``, in signature order.

    Read from the function's code object as ``inspect.signature`` would, without
    importing ``inspect`` (with ``ast``, ``dis``, ``tokenize``: about 10 ms of a worker's
    start-up); a function that is wrapped or declares its own signature goes through
    ``inspect`` itself.
    """
    own = getattr(func, "__dict__", {})
    if type(func) is not types.FunctionType or "__wrapped__" in own or "__signature__" in own:
        import inspect

        parameters = list(inspect.signature(func).parameters.values())[1:]
        var = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        return [
            (p.name, p.kind in var, _NO_DEFAULT if p.default is p.empty else p.default)
            for p in parameters
        ]
    code = func.__code__
    positional = code.co_varnames[: code.co_argcount]
    keyword_only = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    rest = iter(code.co_varnames[code.co_argcount + code.co_kwonlyargcount :])
    defaults = func.__defaults__ or ()
    first_default = len(positional) - len(defaults)
    found = [
        (name, False, defaults[i - first_default] if i >= first_default else _NO_DEFAULT)
        for i, name in enumerate(positional)
    ]
    if code.co_flags & _VARARGS:
        found.append((next(rest), True, _NO_DEFAULT))
    keyword_defaults = func.__kwdefaults__ or {}
    found.extend((name, False, keyword_defaults.get(name, _NO_DEFAULT)) for name in keyword_only)
    if code.co_flags & _VARKEYWORDS:
        found.append((next(rest), True, _NO_DEFAULT))
    return found[1:]  # skip self


def _plain_hints(func: typing.Callable[..., object]) -> dict[str, Any] | None:
    """``get_type_hints(func)`` when every annotation is a class or names one; else ``None``.

    A string annotation (``from __future__ import annotations``) that is a plain or
    dotted name is looked up as ``get_type_hints`` would evaluate it (the function's
    globals, then builtins) without ``compile()``: a process's first ``compile()``
    costs about 3 ms (it builds the ``ast`` node types), and the method tables
    of most Protocols need nothing else. Anything else goes through ``typing``.
    """
    if type(func) is not types.FunctionType or "__wrapped__" in func.__dict__:
        return None
    namespace = func.__globals__
    hints: dict[str, Any] = {}
    for name, annotation in func.__annotations__.items():
        value = annotation
        if isinstance(annotation, str):
            head, *rest = annotation.split(".")
            if annotation == "None":
                value = None
            elif not all(part.isidentifier() for part in (head, *rest)):
                return None
            elif head in namespace:
                value = namespace[head]
            elif head in vars(builtins):
                value = vars(builtins)[head]
            else:
                return None  # get_type_hints raises the NameError
            for part in rest:
                value = getattr(value, part, _NO_DEFAULT)
        if value is None:
            value = type(None)
        if not isinstance(value, type):
            return None  # aliases, Annotated, unions, typing forms: typing's rules
        hints[name] = value
    return hints


def _method_info(name: str, func: typing.Callable[..., object]) -> RpcMethodInfo:
    try:
        hints = _plain_hints(func) or get_type_hints(func, include_extras=True)
    except (NameError, TypeError) as exc:
        raise SchemaError(f"cannot resolve the annotations of {name}(): {exc}") from exc
    params: list[ParamInfo] = []
    for param_name, is_var, default in _parameters(func):
        if is_var:
            raise SchemaError(f"{name}(): *args and **kwargs cannot be RPC parameters")
        if param_name not in hints:
            raise SchemaError(f"{name}(): parameter {param_name!r} has no type annotation")
        try:
            field, codec = arrow_field(param_name, hints[param_name])
        except SchemaError as exc:
            raise SchemaError(f"{name}(), parameter {param_name!r}: {exc}") from exc
        params.append(
            ParamInfo(
                param_name,
                hints[param_name],
                codec,
                field,
                single_value_builder(field.type),
                default,
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
    return RpcMethodInfo._of_function(
        func,
        name=name,
        method_type=method_type,
        params=tuple(params),
        params_schema=pa.schema([p.field for p in params]),
        result_schema=result_schema,
        result_codec=result_codec,
        result_build=single_value_builder(result_schema.field(0).type) if result_codec else None,
        header_type=header_type,
        is_exchange=stream_kind(returns) if method_type is MethodType.STREAM else None,
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
            if name.startswith("_") or not isinstance(member, types.FunctionType):
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
