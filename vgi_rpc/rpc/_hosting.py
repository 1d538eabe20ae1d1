"""The protocols one server hosts: wire names, method handlers, version gates.

A server hosts one or more Protocols, each under its wire name (a
``protocol_name`` class attribute, else the class name). Second-generation
requests name the protocol; first-generation requests go to the default one.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from vgi_rpc._errors import ProtocolVersionError
from vgi_rpc._ipc import Metadata
from vgi_rpc._logs import service_logger
from vgi_rpc._methods import (
    RpcMethodInfo,
    parse_semver,
    protocol_version_of,
    rpc_methods,
    stream_kind,
)
from vgi_rpc._record import FACTORY, record, tuple_fields
from vgi_rpc.wire import keys as k

if TYPE_CHECKING:
    import logging


_WIRE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
RESERVED_PREFIX = "vgi_rpc."
MAX_NAME_BYTES = 255


def is_wire_name(text: str) -> bool:
    """Whether ``text`` fits the protocol-name grammar (checked before any lookup)."""
    return len(text.encode()) <= MAX_NAME_BYTES and _WIRE_NAME.fullmatch(text) is not None


def wire_name(protocol: type) -> str:
    """The name a Protocol is routed by: its ``protocol_name`` attribute, else its class name.

    Raises:
        ValueError: The name does not fit the grammar.
    """
    declared = protocol.__dict__.get("protocol_name")
    name = declared if isinstance(declared, str) else protocol.__name__
    if not is_wire_name(name):
        raise ValueError(
            f"{protocol.__name__}: protocol name {name!r} must match [A-Za-z_][A-Za-z0-9_.]* "
            f"and be at most {MAX_NAME_BYTES} bytes"
        )
    return name


def _with_stream_kind(info: RpcMethodInfo, call: Callable[..., object]) -> RpcMethodInfo:
    """``info`` with producer/exchange read from the implementation's annotation.

    A Protocol that says only ``Stream[StreamState]`` leaves the kind open;
    introspection can then still tell clients which kind the method is.
    """
    if not info.is_stream or info.is_exchange is not None:
        return info
    try:
        returns = typing.get_type_hints(call).get("return")
    except (NameError, TypeError):  # unresolvable annotations: the kind stays unknown
        return info
    kind = stream_kind(returns)
    return info if kind is None else info.with_exchange(kind)


def _accepts_ctx(call: Callable[..., object]) -> bool:
    func = getattr(call, "__func__", None)
    if (
        type(call) is types.MethodType
        and type(func) is types.FunctionType
        and not {"__wrapped__", "__signature__"} & func.__dict__.keys()
    ):
        # what inspect.signature would list, read from the code object (no ``inspect`` import)
        code = func.__code__
        named = code.co_argcount + code.co_kwonlyargcount
        starred = bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)  # *args, **kwargs
        names = code.co_varnames[: named + starred]
        return "ctx" in names[1 if code.co_argcount else 0 :]
    import inspect

    try:
        return "ctx" in inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False


_LATER: Any = object()  # Hosted.doc before it is first read


@record(eq=False, slots=False, factories={"handlers": dict})
class Hosted:
    """One protocol a server hosts, with its implementation."""

    protocol: type
    implementation: object
    name: str
    version: str | None
    handlers: dict[str, Handler]

    def __init__(
        self,
        protocol: type,
        implementation: object,
        name: str,
        version: str | None,
        doc: str,
        handlers: dict[str, Handler] = FACTORY,
    ) -> None:
        self.protocol = protocol
        self.implementation = implementation
        self.name = name
        self.version = version
        self._doc = doc
        self.handlers = {} if handlers is FACTORY else handlers

    @property
    def doc(self) -> str:
        """The protocol's cleaned docstring (``""`` when it has none)."""
        if self._doc is _LATER:
            import inspect  # read by describe and reflection, not to serve a call

            self._doc = inspect.getdoc(self.protocol) or ""
        return self._doc

    @doc.setter
    def doc(self, value: str) -> None:
        self._doc = value

    @classmethod
    def build(cls, protocol: type, implementation: object, *, framework: bool = False) -> Hosted:
        """Bind ``implementation`` to ``protocol``'s methods.

        Raises:
            SchemaError: A Protocol annotation has no Arrow mapping.
            TypeError: The implementation lacks some Protocol methods.
            ValueError: The wire name is malformed or claims the reserved prefix.
        """
        name = wire_name(protocol)
        if name.startswith(RESERVED_PREFIX) and not framework:
            raise ValueError(
                f"{protocol.__name__}: protocol names starting with {RESERVED_PREFIX!r} are "
                "reserved for the framework's own protocols"
            )
        hosted = cls(
            protocol,
            implementation,
            name,
            protocol_version_of(protocol),
            _LATER,
        )
        missing = []
        for method, info in rpc_methods(protocol).items():
            call = getattr(implementation, method, None)
            if not callable(call):
                missing.append(method)
                continue
            hosted.handlers[method] = Handler(
                _with_stream_kind(info, call), call, _accepts_ctx(call), hosted
            )
        if missing:
            raise TypeError(
                f"{type(implementation).__name__} does not implement {name} methods {missing}"
            )
        return hosted

    @property
    def methods(self) -> dict[str, RpcMethodInfo]:
        """The protocol's methods, by name."""
        return {name: h.info for name, h in self.handlers.items()}

    @property
    def logger(self) -> logging.Logger:
        """The logger an implementation's ``ctx.logger`` writes to."""
        return service_logger(self.name)

    def check_version(self, metadata: Metadata) -> None:
        """Refuse a request whose ``protocol_version`` is incompatible with this protocol's.

        Raises:
            ProtocolVersionError: Missing, malformed, or of another MAJOR.MINOR.
        """
        mine = self.version
        if mine is None:
            return
        raw = metadata.get(k.PROTOCOL_VERSION_KEY)
        if raw is None:
            raise ProtocolVersionError(
                f"{self.name} {mine} requires 'vgi_rpc.protocol_version' on every request; "
                "the client sent none: upgrade the client to one that declares the protocol version"
            )
        theirs = raw.decode("utf-8", "replace")
        parts = parse_semver(theirs)
        if parts is None:
            raise ProtocolVersionError(
                f"client protocol_version {theirs!r} is not MAJOR.MINOR.PATCH (server speaks {mine})"
            )
        ours = parse_semver(mine)
        assert ours is not None  # protocol_version_of validated it
        if parts[:2] != ours[:2]:
            newer = "server" if parts[:2] > ours[:2] else "client"
            raise ProtocolVersionError(
                f"{self.name}: client speaks {theirs}, server speaks {mine}; upgrade the {newer}"
            )


if TYPE_CHECKING:  # at run time without eval: see Header in vgi_rpc._flatbuf

    class _HandlerFields(NamedTuple):
        info: RpcMethodInfo
        call: Callable[..., object]
        wants_ctx: bool
        hosted: Hosted

else:
    _HandlerFields = tuple_fields("Handler", ("info", "call", "wants_ctx", "hosted"), __name__)


class Handler(_HandlerFields):
    """One method of one hosted protocol, bound to its implementation."""

    __slots__ = ()


def host_all(
    protocols: Iterable[tuple[type, object]], *, framework: Iterable[tuple[type, object]] = ()
) -> dict[str, Hosted]:
    """The hosted table in registration order.

    Raises:
        ValueError: Two protocols share a wire name, or none is given.
    """
    table: dict[str, Hosted] = {}
    entries = [(p, i, False) for p, i in protocols] + [(p, i, True) for p, i in framework]
    for protocol, implementation, is_framework in entries:
        hosted = Hosted.build(protocol, implementation, framework=is_framework)
        if hosted.name in table:
            raise ValueError(f"two hosted protocols are both named {hosted.name!r}")
        table[hosted.name] = hosted
    if not table:
        raise ValueError("a server hosts at least one protocol")
    return table


def protocol_pairs(
    protocol: type | Mapping[type, object],
    implementation: object | None,
    extra_protocols: Iterable[tuple[type, object]],
) -> list[tuple[type, object]]:
    """Normalise ``RpcServer``'s ways of naming what it hosts into (protocol, impl) pairs."""
    if isinstance(protocol, Mapping):
        if implementation is not None:
            raise TypeError(
                "give RpcServer a {Protocol: implementation} mapping or a pair, not both"
            )
        pairs = list(protocol.items())
    else:
        if implementation is None:
            raise TypeError(f"RpcServer({protocol.__name__}, ...) needs an implementation")
        pairs = [(protocol, implementation)]
    return pairs + list(extra_protocols)


__all__ = [
    "MAX_NAME_BYTES",
    "RESERVED_PREFIX",
    "Handler",
    "Hosted",
    "host_all",
    "is_wire_name",
    "protocol_pairs",
    "wire_name",
]
