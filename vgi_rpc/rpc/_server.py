"""``RpcServer``: the protocols a server hosts, routing, and the public call step.

``start_call`` turns a request into its replies (and, for a stream, a
``ServerStream`` driven turn by turn); ``resume_stream`` rebuilds a stream
from state carried elsewhere (HTTP tokens). ``serve(channel)`` runs that
step over a byte stream. Never imports a concrete transport.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa

from vgi_rpc._errors import (
    IPCError,
    MethodNotImplementedError,
    ProtocolError,
    ProtocolNotSupportedError,
    ProtocolVersionError,
    VersionError,
)
from vgi_rpc._ipc import IpcValidation, Metadata
from vgi_rpc._ipc_reader import ReadPolicy
from vgi_rpc._limits import DEFAULT_LIMITS, ResourceLimits
from vgi_rpc._logs import DEBUG, INFO, RPC_LOGGER, Level, lazy_logger
from vgi_rpc._methods import RpcMethodInfo
from vgi_rpc._record import tuple_fields
from vgi_rpc.rpc._channel import Channel, capabilities_of
from vgi_rpc.rpc._context import AuthContext, CallContext
from vgi_rpc.rpc._hosting import Handler, Hosted, host_all, is_wire_name, protocol_pairs
from vgi_rpc.rpc._request import Request, decode_arguments
from vgi_rpc.rpc._shm_inbound import InboundShm
from vgi_rpc.rpc._step import (
    Batch,
    CallStart,
    Reply,
    log_error_reply,
    run_unary,
    start_stream,
)
from vgi_rpc.rpc._stream_loop import serve_byte_stream, serve_one
from vgi_rpc.rpc._wire_log import access_log, describe_batch, wire_request_log
from vgi_rpc.wire import (
    EMPTY_SCHEMA,
    empty_batch,
    error_metadata,
    log_metadata,
    new_request_id,
    new_server_id,
)
from vgi_rpc.wire import keys as k

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalBudget, ExternalLocationConfig, ExternalRoute
    from vgi_rpc.rpc._accounting import CallObserver, CallRecord
    from vgi_rpc.rpc._server_stream import ServerStream

_log = lazy_logger(RPC_LOGGER)

PendingLog = tuple[Level, str, dict[str, object] | None]
_MAX_ROUTES = 1024


if TYPE_CHECKING:  # at run time without eval: see Header in vgi_rpc._flatbuf

    class _BuiltinFields(NamedTuple):
        answer: Callable[[Request, str], Reply]

else:
    _BuiltinFields = tuple_fields("Builtin", ("answer",), __name__)


class Builtin(_BuiltinFields):
    """A framework method (``__describe__``, ``__transport_options__``) the server answers."""

    __slots__ = ()


class RpcServer:
    """Serves one or more Protocols over any channel.

    ``RpcServer(Calculator, CalculatorImpl())`` hosts one protocol;
    ``RpcServer({Calculator: CalculatorImpl(), Store: StoreImpl()})`` (or
    ``extra_protocols=[(Store, StoreImpl())]``) hosts several, routed by the
    ``vgi_rpc.protocol`` key second-generation clients send. Requests without
    that key (first-generation clients) go to ``default_protocol``.

    Args:
        protocol: The ``typing.Protocol`` class describing the service, or a
            ``{Protocol: implementation}`` mapping (registration order kept).
        implementation: An object with a method for every Protocol method
            (each may add a ``ctx: CallContext`` parameter).
        external_location: External storage: results and stream outputs of at least
            its threshold are uploaded and sent as pointer batches; pointer
            batches received from clients are fetched back (``vgi_rpc.external``).
        server_id: Identifier stamped on log and error batches (random by default).
        enable_describe: Answer the ``__describe__`` introspection method.
        ipc_validation: How thoroughly to validate received batches.
        extra_protocols: More ``(Protocol, implementation)`` pairs to host.
        default_protocol: The protocol first-generation requests reach: a hosted
            Protocol class (the first one by default), or a ``(Protocol,
            implementation)`` pair served to first-generation clients only (an
            older version of a routed protocol with the same name, say).
        limits: Bounds on what a request may cost (``ResourceLimits()`` by default).
        expose_tracebacks: Send the traceback of an implementation's exception
            to the caller. ``None`` (default): yes on pipes, sockets and
            subprocesses; over HTTP only to authenticated callers. Errors in
            the request itself never carry a traceback. Server logs always do.
        reflection: Host ``vgi_rpc.Reflection.v1`` (how second-generation
            clients discover the protocols and their schemas); by default
            whenever ``enable_describe`` is set.

    Raises:
        SchemaError: A Protocol annotation has no Arrow mapping.
        TypeError: An implementation lacks some Protocol methods.
        ValueError: Two protocols share a wire name, or one claims the ``vgi_rpc.`` prefix.
    """

    def __init__(
        self,
        protocol: type | Mapping[type, object],
        implementation: object | None = None,
        *,
        external_location: ExternalLocationConfig | None = None,
        server_id: str | None = None,
        enable_describe: bool = False,
        ipc_validation: IpcValidation = IpcValidation.FULL,
        extra_protocols: Iterable[tuple[type, object]] = (),
        default_protocol: type | tuple[type, object] | None = None,
        limits: ResourceLimits | None = None,
        expose_tracebacks: bool | None = None,
        reflection: bool | None = None,
    ) -> None:
        pairs = protocol_pairs(protocol, implementation, extra_protocols)
        self.server_id = server_id or new_server_id()
        hosts_reflection = enable_describe if reflection is None else reflection
        framework: list[tuple[type, object]] = []
        self.reflection: object = None
        if hosts_reflection:  # imported here: a worker without it never loads that code
            from vgi_rpc.rpc._reflection import Reflection, ReflectionImpl

            self.reflection = ReflectionImpl(
                lambda: self.hosted, self.server_id, _version(), k.REQUEST_VERSION.decode()
            )
            framework.append((Reflection, self.reflection))
        self.hosted: dict[str, Hosted] = host_all(pairs, framework=framework)
        default = next(h for h in self.hosted.values() if h.implementation is not self.reflection)
        if isinstance(default_protocol, tuple):
            default = Hosted.build(*default_protocol)
        elif default_protocol is not None:
            matches = [h for h in self.hosted.values() if h.protocol is default_protocol]
            if not matches:
                raise ValueError(f"default_protocol {default_protocol.__name__} is not hosted")
            default = matches[0]
        self._default = default
        self._by_raw_name = {name.encode(): hosted for name, hosted in self.hosted.items()}
        self.enable_describe = enable_describe
        self.ipc_validation = ipc_validation
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        self.read_policy = ReadPolicy.make(ipc_validation, self.limits)
        self.external_location = external_location
        self.external: ExternalRoute | None = None
        if external_location is not None:
            from vgi_rpc.external import ExternalRoute

            self.external = ExternalRoute(external_location, self.read_policy)
        self.expose_tracebacks = expose_tracebacks
        self.observers: list[CallObserver] = []
        self._hashes: dict[int, str] = {}
        # (method, protocol) as they arrive -> the hosted method they reach.
        self._routes: dict[tuple[bytes, bytes | None], Handler] = {}

    def add_observer(self, observer: CallObserver) -> RpcServer:
        """Tell ``observer`` about every call from now on (``vgi_rpc.otel`` uses this); chainable."""
        self.observers.append(observer)
        return self

    # -- the default protocol (what first-generation clients see) -----------

    @property
    def protocol(self) -> type:
        """The default protocol's class."""
        return self._default.protocol

    @property
    def protocol_name(self) -> str:
        """The default protocol's wire name."""
        return self._default.name

    @property
    def implementation(self) -> object:
        """The default protocol's implementation."""
        return self._default.implementation

    @property
    def protocol_version(self) -> str | None:
        """The default protocol's declared ``protocol_version``."""
        return self._default.version

    @property
    def methods(self) -> dict[str, RpcMethodInfo]:
        """The default protocol's methods, by name."""
        return self._default.methods

    @functools.cached_property
    def protocol_hash(self) -> str:
        """SHA-256 of the default protocol's describe payload (stamped on access records)."""
        return self.describe()[1][k.PROTOCOL_HASH_KEY].decode()

    def describe(self, hosted: Hosted | None = None) -> tuple[pa.RecordBatch, Metadata]:
        """The ``__describe__`` batch and metadata of a hosted protocol (the default one)."""
        from vgi_rpc.rpc._describe import build_describe_batch  # only for describe and access logs

        target = hosted or self._default
        return build_describe_batch(
            target.name, target.methods, self.server_id, target.version, target.doc
        )

    # -- byte streams ---------------------------------------------------------

    def serve(self, channel: Channel) -> None:
        """Answer requests on ``channel`` until the peer closes it.

        A malformed byte stream cannot be resynchronised: the server answers
        it with an error stream (best effort) and returns.
        """
        # A channel may declare a segment both ends were given (``ShmPipeTransport``).
        capabilities = capabilities_of(channel)
        shm = InboundShm(capabilities.shared_segment, self.read_policy, capabilities.peer_uid)
        serve_byte_stream(self, channel, shm)

    def serve_one(self, channel: Channel, *, shm: InboundShm | None = None) -> bool:
        """Answer one request on a byte stream; ``False`` when the channel reached end of file."""
        return serve_one(self, channel, shm or InboundShm(None, self.read_policy))

    # -- the call step ----------------------------------------------------------

    def route(self, request: Request) -> Handler | Builtin:
        """Match a request to a hosted method or a framework method (spec sections 3.1, 13).

        Raises:
            ProtocolError: No method key, or a malformed protocol key.
            VersionError: Missing or unsupported ``vgi_rpc.request_version``.
            ProtocolNotSupportedError: The named protocol is not hosted.
            MethodNotImplementedError: The protocol has no such method.
        """
        metadata = request.metadata
        method = metadata.get(k.METHOD_KEY)
        if method is None:
            raise ProtocolError(
                "request batch has no 'vgi_rpc.method' custom metadata; every request batch "
                "must name its method there"
            )
        version = metadata.get(k.REQUEST_VERSION_KEY)
        if version is None:
            raise VersionError(
                "request batch has no 'vgi_rpc.request_version' custom metadata; set it to '1'"
            )
        if version != k.REQUEST_VERSION:
            raise VersionError(
                f"unsupported request version {_text(version)!r}; this server speaks '1'"
            )
        if request.extra_batches:
            raise ProtocolError(
                f"a request stream carries exactly one batch, got {1 + request.extra_batches}"
            )
        raw_protocol = metadata.get(k.PROTOCOL_KEY)
        known = self._routes.get((method, raw_protocol))
        if known is not None:
            return known
        name = _text(method)
        if name == k.TRANSPORT_OPTIONS_METHOD:
            return Builtin(self._answer_transport_options)
        if name == k.DESCRIBE_METHOD and self.enable_describe:
            # Answered before routing: it describes the named protocol when hosted, else the default.
            named = self.hosted.get(_text(metadata.get(k.PROTOCOL_KEY)))
            described = named if named is not None else self._default
            if name not in described.handlers:
                return Builtin(lambda request, rid: self._answer_describe(described))
        hosted = self._hosted_for(metadata)
        handler = hosted.handlers.get(name)
        if handler is None:
            raise MethodNotImplementedError(
                f"Unknown method: {name!r}. Available methods: {sorted(hosted.handlers)}"
            )
        if len(self._routes) < _MAX_ROUTES:  # names a peer invents cannot grow it without bound
            self._routes[(method, raw_protocol)] = handler
        return handler

    def _hosted_for(self, metadata: Metadata) -> Hosted:
        raw = metadata.get(k.PROTOCOL_KEY)
        if raw is None:
            return self._default  # a first-generation request
        found = self._by_raw_name.get(raw)
        if found is not None:  # the hot path: a hosted name, already known valid
            return found
        name = _text(raw)
        if not is_wire_name(name):
            raise ProtocolNotSupportedError(
                "the request's vgi_rpc.protocol is not a protocol name "
                "([A-Za-z_][A-Za-z0-9_.]*, at most 255 bytes)"
            )
        hosted = self.hosted.get(name)
        if hosted is None:
            raise ProtocolNotSupportedError(
                f"this server does not host protocol {name!r}; it hosts {list(self.hosted)}"
            )
        return hosted

    def start_call(
        self,
        request: Request,
        *,
        auth: AuthContext | None = None,
        target: Handler | Builtin | None = None,
        external_budget: ExternalBudget | None = None,
    ) -> CallStart:
        """Serve one request up to its replies; a stream comes back open, ready for turns.

        ``auth`` is the caller as the transport established it (``None`` on
        byte streams). ``target`` skips routing when the caller already routed.
        ``external_budget`` caps what a unary result may upload (HTTP).
        Refusals (bad requests, unknown methods) are replies too, with the
        HTTP status they map to.
        """
        metadata = request.metadata
        request_id = _text(metadata.get(k.REQUEST_ID_KEY)) or new_request_id()
        second_generation = k.PROTOCOL_KEY in metadata
        try:
            routed = target if target is not None else self.route(request)
        except (ProtocolError, MethodNotImplementedError) as exc:
            problem = request.rejected or exc
            return CallStart([self.refusal(problem, request_id)], status=status_of(problem))
        if request.rejected is not None:
            return self._reject(routed, request.rejected, request_id, second_generation)
        if isinstance(routed, Builtin):
            return CallStart([routed.answer(request, request_id)])
        if routed.hosted is not self._default:
            routed = self._version_alternative(routed, metadata)
        info = routed.info
        if wire_request_log.isEnabledFor(DEBUG):
            wire_request_log.debug(
                "received %s(): %s", info.name, describe_batch(request.batch, metadata)
            )
        record = (
            self.start_record(routed, request_id, request.batch, metadata=metadata, auth=auth)
            if self.observers or access_log.isEnabledFor(INFO)
            else None  # what start_record returns then, without building a row's batch
        )
        try:
            routed.hosted.check_version(metadata)
            # A one-row request is never an external pointer (those have no rows).
            source = request.row or self.resolve_input(request.batch, metadata)[0]
            kwargs = decode_arguments(info, source)
        except (
            Exception
        ) as exc:  # a version mismatch or anything the decoders raise: the caller's fault
            if record is not None:
                record.finish(exc)
            schema = EMPTY_SCHEMA if info.is_stream else info.result_schema
            drain = info.is_stream and (info.header_type is None or second_generation)
            return CallStart([self.refusal(exc, request_id, schema)], status=400, drain_input=drain)
        if not info.is_stream:
            return run_unary(self, routed, kwargs, request_id, record, auth, external_budget)
        return start_stream(
            self,
            routed,
            kwargs,
            request_id,
            record,
            auth,
            input_follows_error=second_generation,
        )

    def _version_alternative(self, routed: Handler, metadata: Metadata) -> Handler:
        """The first-generation binding of the same name, when only it fits the client's version.

        For a server that hosts 1.0.0 for old clients and 2.0.0 routed, under one name.
        """
        default = self._default
        if routed.hosted is default or default.name != routed.hosted.name:
            return routed
        try:
            routed.hosted.check_version(metadata)
        except ProtocolVersionError:  # the main path reports any other fault
            alternative = default.handlers.get(routed.info.name)
            if alternative is not None:
                try:
                    default.check_version(metadata)
                except ProtocolVersionError:
                    return routed
                return alternative
        return routed

    def _reject(
        self, routed: Handler | Builtin, exc: IPCError, request_id: str, second_generation: bool
    ) -> CallStart:
        """Answer a request whose batch failed the read policy; the connection stays usable."""
        info = routed.info if isinstance(routed, Handler) else None
        _log.info("%s: refused a malformed request: %s", self.protocol_name, exc)
        schema = info.result_schema if info is not None and not info.is_stream else EMPTY_SCHEMA
        drain = (
            info is not None and info.is_stream and (info.header_type is None or second_generation)
        )
        return CallStart(
            [self.refusal(exc, request_id, schema)], status=status_of(exc), drain_input=drain
        )

    def resume_stream(
        self,
        handler: Handler,
        state: object,
        output_schema: pa.Schema,
        input_schema: pa.Schema,
        request_id: str,
        *,
        auth: AuthContext | None = None,
        batch: pa.RecordBatch | None = None,
        metadata: Metadata | None = None,
        stream_id: str | None = None,
    ) -> ServerStream:
        """A stream rebuilt from state carried between requests (HTTP continuations).

        ``metadata`` (the request's, for trace context) and ``stream_id`` (the
        stream's, from ``/init``) go to the access record and call observers.
        """
        from vgi_rpc.rpc._server_stream import ServerStream
        from vgi_rpc.rpc._streams import StreamState

        assert isinstance(state, StreamState)
        record = self.start_record(
            handler,
            request_id,
            batch,
            metadata=metadata,
            auth=auth,
            stream_id=stream_id,
            count_request=False,  # the turn counts its input batch itself
        )
        return ServerStream(
            self, handler, state, output_schema, input_schema, request_id, auth, record
        )

    def handler(self, protocol: str | None, method: str) -> Handler | None:
        """The handler of ``method`` in ``protocol`` (``None``: the default protocol)."""
        hosted = self._default if protocol is None else self.hosted.get(protocol)
        return None if hosted is None else hosted.handlers.get(method)

    def start_record(
        self,
        handler: Handler,
        request_id: str,
        request: pa.RecordBatch | None,
        *,
        metadata: Metadata | None = None,
        auth: AuthContext | None = None,
        stream_id: str | None = None,
        count_request: bool = True,
    ) -> CallRecord | None:
        """The record of one call (``None`` while access logging is off and nobody observes)."""
        if not self.observers and not access_log.isEnabledFor(INFO):
            return None
        # the records' module is loaded once a record is wanted (access log or an observer)
        from vgi_rpc.rpc._accounting import start_record

        hosted = handler.hosted
        return start_record(
            server_id=self.server_id,
            protocol=hosted.name,
            protocol_hash=self._hash_of(hosted),
            method=handler.info.name,
            method_type=handler.info.method_type.value,
            request_id=request_id,
            request=request if request is not None else empty_batch(EMPTY_SCHEMA),
            observers=self.observers,
            metadata=metadata,
            auth=auth,
            stream_id=stream_id,
            count_request=count_request,
        )

    def _hash_of(self, hosted: Hosted) -> str:
        if hosted is self._default:
            return self.protocol_hash
        known = self._hashes.get(id(hosted))  # hosted protocols live as long as the server
        if known is None:
            known = self._hashes[id(hosted)] = self.describe(hosted)[1][
                k.PROTOCOL_HASH_KEY
            ].decode()
        return known

    # -- framework methods ------------------------------------------------------

    def _answer_describe(self, hosted: Hosted) -> Reply:
        # Exempt from protocol_version checks: it is how a mismatched client diagnoses itself.
        batch, metadata = self.describe(hosted)
        return Reply(batch.schema, [(batch, metadata)])

    def _answer_transport_options(self, request: Request, request_id: str) -> Reply:
        # Spec section 15: we can read a client's shared-memory segment on POSIX hosts.
        metadata: Metadata = {
            k.TRANSPORT_SHM_KEY: b"true" if sys.platform != "win32" else b"false",
            k.SERVER_ID_KEY: self.server_id.encode(),
            k.REQUEST_VERSION_KEY: k.REQUEST_VERSION,
        }
        return Reply(EMPTY_SCHEMA, [(empty_batch(EMPTY_SCHEMA), metadata)])

    # -- building replies ---------------------------------------------------------

    def make_context(
        self,
        method: str,
        request_id: str,
        sink: Callable[[Level, str, dict[str, object] | None], None],
        auth: AuthContext | None = None,
        *,
        hosted: Hosted | None = None,
    ) -> CallContext:
        """Build the ``CallContext`` for one call (or one stream turn)."""
        return CallContext(
            method=method,
            request_id=request_id,
            server_id=self.server_id,
            logger=(hosted or self._default).logger,
            log_sink=sink,
            auth=auth if auth is not None else AuthContext.anonymous(),
        )

    def log_batches(
        self, logs: list[PendingLog], request_id: str, schema: pa.Schema
    ) -> list[Batch]:
        """Client-log batches (zero rows on ``schema``) for pending logs, in order."""
        if not logs:
            return []
        carrier = empty_batch(schema)
        return [
            (
                carrier,
                log_metadata(
                    level, message, extra, server_id=self.server_id, request_id=request_id
                ),
            )
            for level, message, extra in logs
        ]

    def error_metadata(
        self, exc: BaseException, request_id: str, auth: AuthContext | None = None
    ) -> Metadata:
        """EXCEPTION-batch metadata for ``exc``, stamped with this server's id.

        ``auth`` is the caller over HTTP (``None`` on byte-stream transports);
        see ``expose_tracebacks``.
        """
        if isinstance(exc, ProtocolError | MethodNotImplementedError):
            exposed = False  # the request was at fault, not the implementation
        elif self.expose_tracebacks is not None:
            exposed = self.expose_tracebacks
        else:
            exposed = auth is None or auth.authenticated
        return error_metadata(
            exc, server_id=self.server_id, request_id=request_id, traceback=exposed
        )

    def protocol_error_metadata(self, exc: BaseException, request_id: str) -> Metadata:
        """EXCEPTION-batch metadata for a fault in the request itself: message only."""
        return error_metadata(exc, server_id=self.server_id, request_id=request_id, traceback=False)

    def refusal(
        self, exc: BaseException, request_id: str, schema: pa.Schema = EMPTY_SCHEMA
    ) -> Reply:
        """The error stream answering a request the server refused (no traceback)."""
        metadata = self.protocol_error_metadata(exc, request_id)
        log_error_reply(None, metadata)
        return Reply(schema, [(empty_batch(schema), metadata)], exc)

    def externalize(
        self, schema: pa.Schema, batches: list[Batch], budget: ExternalBudget | None, method: str
    ) -> list[Batch]:
        """A turn's batches, its data batch replaced by a pointer when it is large enough."""
        external = self.external
        return (
            batches if external is None else external.externalize(schema, batches, budget, method)
        )

    def resolve_input(self, batch: pa.RecordBatch, metadata: Metadata | None) -> Batch:
        """The batch a client's external pointer names (any other batch unchanged).

        Raises:
            ProtocolError: A pointer arrived but no ``external_location`` is configured.
            ExternalStorageError: It cannot be fetched or verified.
        """
        if not metadata or k.LOCATION_KEY not in metadata or batch.num_rows:
            return batch, metadata
        if self.external is None:
            raise ProtocolError(
                "received an external pointer batch (vgi_rpc.location), but this server has "
                "no external_location configured to fetch it with"
            )
        return self.external.resolve_input(batch, metadata)

    def log_method_error(self, method: str, exc: BaseException) -> None:
        """Record a failed call on the service logger."""
        _log.debug(
            "%s.%s() raised %s: %s",
            self.protocol_name,
            method,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )


def _version() -> str:
    from vgi_rpc import __version__

    return __version__


def status_of(exc: BaseException) -> int:
    """The HTTP status a refused request maps to."""
    if isinstance(exc, MethodNotImplementedError | ProtocolNotSupportedError):
        return 404
    return 400


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw is not None else ""


__all__ = ["Builtin", "RpcServer", "status_of"]
