"""``RpcServer``: routes requests to an implementation and writes responses.

One dispatch path for every transport: ``serve(channel)`` reads requests
until the channel ends; unary calls are answered here, streams by
``_stream_loop``. Never imports a concrete transport.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import sys
import typing
from collections.abc import Callable
from typing import NamedTuple

import pyarrow as pa

from vgi_rpc._errors import (
    IPCError,
    MethodNotImplementedError,
    ProtocolError,
    ProtocolVersionError,
    SchemaError,
    TransportError,
    VersionError,
)
from vgi_rpc._ipc import IpcValidation, Metadata, StreamWriter
from vgi_rpc._ipc_reader import ReadPolicy
from vgi_rpc._limits import DEFAULT_LIMITS, ResourceLimits
from vgi_rpc._logs import RPC_LOGGER, Level, service_logger
from vgi_rpc._methods import (
    RpcMethodInfo,
    parse_semver,
    protocol_version_of,
    rpc_methods,
    stream_kind,
)
from vgi_rpc.rpc._accounting import (
    CallRecord,
    access_log,
    describe_batch,
    start_record,
    wire_request_log,
    wire_response_log,
)
from vgi_rpc.rpc._channel import Channel
from vgi_rpc.rpc._context import AuthContext, CallContext
from vgi_rpc.rpc._describe import build_describe_batch
from vgi_rpc.rpc._request import Request, decode_arguments, drain_stream, read_request
from vgi_rpc.rpc._shm_inbound import InboundShm, ReleaseBeforeSend
from vgi_rpc.rpc._shm_pointer import response_segment, to_pointer
from vgi_rpc.rpc._stream_loop import serve_stream
from vgi_rpc.shm import ShmSegment
from vgi_rpc.wire import _keys as k
from vgi_rpc.wire._codec import (
    EMPTY_SCHEMA,
    empty_batch,
    error_metadata,
    log_metadata,
    new_request_id,
    new_server_id,
)

_log = logging.getLogger(RPC_LOGGER)

PendingLog = tuple[Level, str, dict[str, object] | None]


def _with_stream_kind(info: RpcMethodInfo, call: Callable[..., object]) -> RpcMethodInfo:
    """``info`` with producer/exchange read from the implementation's annotation.

    A Protocol that says only ``Stream[StreamState]`` leaves the kind open;
    ``__describe__`` can then still tell clients which kind the method is.
    """
    if not info.is_stream or info.is_exchange is not None:
        return info
    try:
        returns = typing.get_type_hints(call).get("return")
    except (NameError, TypeError):  # unresolvable annotations: the kind stays unknown
        return info
    kind = stream_kind(returns)
    return info if kind is None else dataclasses.replace(info, is_exchange=kind)


class _Builtin(NamedTuple):
    """A framework method (``__describe__``) answered by the server itself."""

    answer: Callable[[Channel, str], None]


class _Handler(NamedTuple):
    info: RpcMethodInfo
    call: Callable[..., object]
    wants_ctx: bool


class RpcServer:
    """Serves one implementation of a Protocol over any channel.

    Args:
        protocol: The ``typing.Protocol`` class describing the service.
        implementation: An object with a method for every Protocol method
            (each may add a ``ctx: CallContext`` parameter).
        server_id: Identifier stamped on log and error batches (random by default).
        enable_describe: Answer the ``__describe__`` introspection method.
        ipc_validation: How thoroughly to validate received batches.
        limits: Bounds on what a request may cost (``ResourceLimits()`` by default).
        expose_tracebacks: Send the traceback of an implementation's exception
            to the caller. ``None`` (default): yes on pipes, sockets and
            subprocesses; over HTTP only to authenticated callers. Errors in
            the request itself never carry a traceback. Server logs always do.

    Raises:
        SchemaError: A Protocol annotation has no Arrow mapping.
        TypeError: The implementation lacks some Protocol methods.
    """

    def __init__(
        self,
        protocol: type,
        implementation: object,
        *,
        server_id: str | None = None,
        enable_describe: bool = False,
        ipc_validation: IpcValidation = IpcValidation.FULL,
        limits: ResourceLimits | None = None,
        expose_tracebacks: bool | None = None,
    ) -> None:
        self.protocol = protocol
        self.protocol_name = protocol.__name__
        self.implementation = implementation
        self.server_id = server_id or new_server_id()
        self.enable_describe = enable_describe
        self.ipc_validation = ipc_validation
        self.limits = limits if limits is not None else DEFAULT_LIMITS
        self.read_policy = ReadPolicy.make(ipc_validation, self.limits)
        self.expose_tracebacks = expose_tracebacks
        self.protocol_version = protocol_version_of(protocol)
        self._version_parts = parse_semver(self.protocol_version) if self.protocol_version else None
        self._logger = service_logger(self.protocol_name)
        # Keyed by (protocol, method) so a second protocol generation can share the table.
        self._routes: dict[tuple[str | None, str], _Handler] = {}
        missing = []
        for name, info in rpc_methods(protocol).items():
            call = getattr(implementation, name, None)
            if not callable(call):
                missing.append(name)
                continue
            self._routes[(None, name)] = _Handler(
                _with_stream_kind(info, call), call, _accepts_ctx(call)
            )
        if missing:
            raise TypeError(
                f"{type(implementation).__name__} does not implement {self.protocol_name} methods {missing}"
            )

    @property
    def methods(self) -> dict[str, RpcMethodInfo]:
        """The served methods, by name."""
        return {name: h.info for (_, name), h in self._routes.items()}

    def serve(self, channel: Channel) -> None:
        """Answer requests on ``channel`` until the peer closes it.

        A malformed byte stream cannot be resynchronised: the server answers
        it with an error stream (best effort) and returns.
        """
        # A channel may carry a segment both ends were given (``ShmPipeTransport.shm``).
        shm = InboundShm(
            getattr(channel, "shm", None), self.read_policy, getattr(channel, "peer_uid", None)
        )
        try:
            while self.serve_one(channel, shm=shm):
                pass
        except TransportError as exc:
            _log.info("%s: connection ended: %s", self.protocol_name, exc)
        except IPCError as exc:
            _log.error("%s: closing connection after malformed input: %s", self.protocol_name, exc)
            self._write_error_stream(channel, EMPTY_SCHEMA, exc, new_request_id(), quiet=True)
        finally:
            shm.close()

    def serve_one(self, channel: Channel, *, shm: InboundShm | None = None) -> bool:
        """Answer one request; return ``False`` when the channel reached end of file.

        ``shm`` holds the shared-memory segments this connection's client advertised.
        """
        request = read_request(channel, self.read_policy)
        if request is None:
            return False
        request_id = _text(request.metadata.get(k.REQUEST_ID_KEY)) or new_request_id()
        try:
            segment = shm.segment(request.metadata) if shm is not None else None
            request, release = _resolve_request(request, shm, segment)
        except IPCError as exc:  # the stream was read whole: answer and keep serving
            rejected = dataclasses.replace(request, rejected=request.rejected or exc)
            return self._serve_request(channel, rejected, request_id, None, shm)
        if segment is None:
            return self._serve_request(channel, request, request_id, segment, shm)
        # Large results go to the client's segment; the request's allocation is
        # freed before the first response byte leaves.
        guarded = ReleaseBeforeSend(channel, release)
        token = response_segment.set(segment)
        try:
            return self._serve_request(guarded, request, request_id, segment, shm)
        finally:
            response_segment.reset(token)
            guarded.release()

    def _serve_request(
        self,
        channel: Channel,
        request: Request,
        request_id: str,
        segment: ShmSegment | None,
        shm: InboundShm | None,
    ) -> bool:
        try:
            handler = self._route(request)
        except (ProtocolError, MethodNotImplementedError) as exc:
            self._write_error_stream(channel, EMPTY_SCHEMA, request.rejected or exc, request_id)
            return True
        if request.rejected is not None:
            self._reject(channel, handler, request.rejected, request_id)
            return True
        if isinstance(handler, _Builtin):
            handler.answer(channel, request_id)
            return True
        info = handler.info
        if wire_request_log.isEnabledFor(logging.DEBUG):
            wire_request_log.debug(
                "received %s(): %s", info.name, describe_batch(request.batch, request.metadata)
            )
        record = self._start_record(info, request_id, request.batch)
        try:
            self._check_protocol_version(request.metadata)
            kwargs = decode_arguments(info, request.batch)
        except (
            Exception
        ) as exc:  # a version mismatch or anything the decoders raise: the caller's fault
            self._write_error_stream(
                channel, EMPTY_SCHEMA if info.is_stream else info.result_schema, exc, request_id
            )
            if info.is_stream and info.header_type is None:
                drain_stream(channel, self.read_policy)
            if record is not None:
                record.finish(exc)
            return True
        if info.is_stream:
            inbound = (shm, segment) if shm is not None else None
            serve_stream(
                self,
                channel,
                handler.info,
                self._bind(handler, kwargs),
                request_id,
                record,
                inbound,
            )
        else:
            self._serve_unary(channel, handler, kwargs, request_id, record)
        return True

    @functools.cached_property
    def protocol_hash(self) -> str:
        """SHA-256 of this service's describe payload (stamped on access records)."""
        return self.describe()[1][k.PROTOCOL_HASH_KEY].decode()

    def _start_record(
        self, info: RpcMethodInfo, request_id: str, request: pa.RecordBatch
    ) -> CallRecord | None:
        if not access_log.isEnabledFor(logging.INFO):
            return None
        return start_record(
            server_id=self.server_id,
            protocol=self.protocol_name,
            protocol_hash=self.protocol_hash,
            method=info.name,
            method_type=info.method_type.value,
            request_id=request_id,
            request=request,
        )

    def describe(self) -> tuple[pa.RecordBatch, Metadata]:
        """The ``__describe__`` batch and metadata for this server (spec section 14)."""
        return build_describe_batch(
            self.protocol_name,
            self.methods,
            self.server_id,
            self.protocol_version,
            inspect.getdoc(self.protocol) or "",
        )

    def _answer_describe(self, channel: Channel, request_id: str) -> None:
        # Exempt from protocol_version checks: it is how a mismatched client diagnoses itself.
        batch, metadata = self.describe()
        writer = StreamWriter(channel, batch.schema)
        writer.write(batch, metadata)
        writer.close()

    def _answer_transport_options(self, channel: Channel, request_id: str) -> None:
        # Spec section 15: we can read a client's shared-memory segment on POSIX hosts.
        metadata: Metadata = {
            k.TRANSPORT_SHM_KEY: b"true" if sys.platform != "win32" else b"false",
            k.SERVER_ID_KEY: self.server_id.encode(),
            k.REQUEST_VERSION_KEY: k.REQUEST_VERSION,
        }
        writer = StreamWriter(channel, EMPTY_SCHEMA)
        writer.write(empty_batch(EMPTY_SCHEMA), metadata)
        writer.close()

    def _route(self, request: Request) -> _Handler | _Builtin:
        """The one place a request is matched to a handler (spec section 13 checks)."""
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
        name = _text(method)
        handler = self._routes.get((None, name))
        if handler is None and name == k.DESCRIBE_METHOD and self.enable_describe:
            return _Builtin(self._answer_describe)
        if handler is None and name == k.TRANSPORT_OPTIONS_METHOD:
            return _Builtin(self._answer_transport_options)
        if handler is None:
            available = sorted(n for _, n in self._routes)
            raise MethodNotImplementedError(
                f"Unknown method: {name!r}. Available methods: {available}"
            )
        return handler

    def _check_protocol_version(self, metadata: Metadata) -> None:
        if self._version_parts is None:
            return
        raw = metadata.get(k.PROTOCOL_VERSION_KEY)
        mine = self.protocol_version
        if raw is None:
            raise ProtocolVersionError(
                f"{self.protocol_name} {mine} requires 'vgi_rpc.protocol_version' on every request; "
                "the client sent none: upgrade the client to one that declares the protocol version"
            )
        theirs = _text(raw)
        parts = parse_semver(theirs)
        if parts is None:
            raise ProtocolVersionError(
                f"client protocol_version {theirs!r} is not MAJOR.MINOR.PATCH (server speaks {mine})"
            )
        if parts[:2] != self._version_parts[:2]:
            newer = "server" if parts[:2] > self._version_parts[:2] else "client"
            raise ProtocolVersionError(
                f"{self.protocol_name}: client speaks {theirs}, server speaks {mine}; upgrade the {newer}"
            )

    def _bind(
        self, handler: _Handler, kwargs: dict[str, object]
    ) -> Callable[[CallContext], object]:
        if handler.wants_ctx:
            return lambda ctx: handler.call(**kwargs, ctx=ctx)
        return lambda ctx: handler.call(**kwargs)

    def make_context(
        self,
        method: str,
        request_id: str,
        sink: Callable[[Level, str, dict[str, object] | None], None],
        auth: AuthContext | None = None,
    ) -> CallContext:
        """Build the ``CallContext`` for one call (or one stream turn)."""
        return CallContext(
            method=method,
            request_id=request_id,
            server_id=self.server_id,
            logger=self._logger,
            log_sink=sink,
            auth=auth if auth is not None else AuthContext.anonymous(),
        )

    def _serve_unary(
        self,
        channel: Channel,
        handler: _Handler,
        kwargs: dict[str, object],
        request_id: str,
        record: CallRecord | None,
        auth: AuthContext | None = None,
    ) -> Exception | None:
        """Run a unary call and write its response; return the method's exception, if any."""
        info = handler.info
        logs: list[PendingLog] = []
        writer = StreamWriter(channel, info.result_schema)
        try:
            if handler.wants_ctx:
                ctx = self.make_context(
                    info.name,
                    request_id,
                    lambda level, msg, extra: logs.append((level, msg, extra)),
                    auth,
                )
                value = handler.call(**kwargs, ctx=ctx)
            else:
                value = handler.call(**kwargs)
            result = self._result_batch(info, value)
        except Exception as exc:
            self.log_method_error(info.name, exc)
            self.write_logs(writer, info.result_schema, logs, request_id)
            writer.write(
                empty_batch(info.result_schema), self.error_metadata(exc, request_id, auth)
            )
            writer.close()
            if record is not None:
                record.finish(exc)
            return exc
        self.write_logs(writer, info.result_schema, logs, request_id)
        writer.write(*to_pointer(response_segment.get(), result, None))
        writer.close()
        if wire_response_log.isEnabledFor(logging.DEBUG):
            wire_response_log.debug("answered %s(): %s", info.name, describe_batch(result, None))
        if record is not None:
            record.stats.record_output(result)
            record.finish()
        return None

    def _result_batch(self, info: RpcMethodInfo, value: object) -> pa.RecordBatch:
        codec = info.result_codec
        if codec is None:
            return empty_batch(info.result_schema)
        where = f"{info.name}() result"
        if value is None:
            if not codec.nullable:
                raise TypeError(f"{where} is None but the Protocol's return type is not Optional")
            null = pa.array([None], type=info.result_schema.field(0).type)
            return pa.RecordBatch.from_arrays([null], schema=info.result_schema)
        assert info.result_build is not None  # set whenever result_codec is
        try:
            array = info.result_build(codec.to_arrow(value, where))
        except TypeError as exc:
            raise TypeError(
                f"{where}: {exc}" if not str(exc).startswith(where) else str(exc)
            ) from None
        return pa.RecordBatch.from_arrays([array], schema=info.result_schema)

    def write_logs(
        self, writer: StreamWriter, schema: pa.Schema, logs: list[PendingLog], request_id: str
    ) -> None:
        """Write pending client-log batches (zero rows, on ``schema``)."""
        if not logs:
            return
        carrier = empty_batch(schema)
        for level, message, extra in logs:
            writer.write(
                carrier,
                log_metadata(
                    level, message, extra, server_id=self.server_id, request_id=request_id
                ),
            )
        logs.clear()

    def error_metadata(
        self, exc: BaseException, request_id: str, auth: AuthContext | None = None
    ) -> Metadata:
        """EXCEPTION-batch metadata for an implementation's ``exc``, stamped with this server's id.

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

    def _reject(
        self, channel: Channel, handler: _Handler | _Builtin, exc: IPCError, request_id: str
    ) -> None:
        """Answer a request whose batch failed the read policy; the connection stays usable."""
        info = handler.info if isinstance(handler, _Handler) else None
        _log.info("%s: refused a malformed request: %s", self.protocol_name, exc)
        schema = info.result_schema if info is not None and not info.is_stream else EMPTY_SCHEMA
        self._write_error_stream(channel, schema, exc, request_id)
        if info is not None and info.is_stream and info.header_type is None:
            drain_stream(channel, self.read_policy)

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

    def _write_error_stream(
        self,
        channel: Channel,
        schema: pa.Schema,
        exc: BaseException,
        request_id: str,
        *,
        quiet: bool = False,
    ) -> None:
        writer = StreamWriter(channel, schema)
        writer.write(empty_batch(schema), self.protocol_error_metadata(exc, request_id))
        try:
            writer.close()
        except TransportError:
            if not quiet:
                raise


def _resolve_request(
    request: Request, shm: InboundShm | None, segment: ShmSegment | None
) -> tuple[Request, Callable[[], None]]:
    """Swap a shared-memory pointer request for the batch it points at."""
    if shm is None:
        return request, _nothing
    batch, metadata, release = shm.resolve(request.batch, request.metadata, segment)
    if batch is request.batch:
        return request, release
    return Request(batch, metadata or {}, request.extra_batches), release


def _nothing() -> None:
    pass


def _accepts_ctx(call: Callable[..., object]) -> bool:
    try:
        return "ctx" in inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw is not None else ""


__all__ = ["RpcServer", "SchemaError"]
