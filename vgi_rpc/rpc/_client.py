"""Client side: typed proxies, unary calls and stream sessions over a ``Channel``.

Arguments are checked against the Protocol before a byte is sent; the
response is read through its EOS so the channel stays usable after errors.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, cast, overload

import pyarrow as pa

from vgi_rpc._errors import (
    ExternalStorageError,
    IPCError,
    ProtocolError,
    RpcError,
    TransportError,
)
from vgi_rpc._flat_row import FlatRow, RowWriter, flat_layout
from vgi_rpc._ipc import IpcValidation, Metadata, StreamWriter, encode_stream
from vgi_rpc._ipc_reader import IpcStreamReader, ReadPolicy, open_stream_reader
from vgi_rpc._limits import CLIENT_LIMITS
from vgi_rpc._logs import WIRE_STREAM_LOGGER, WIRE_TRANSPORT_LOGGER, Message
from vgi_rpc._methods import RpcMethodInfo, protocol_version_of, rpc_methods
from vgi_rpc.rpc._channel import Channel, capabilities_of
from vgi_rpc.rpc._hosting import wire_name
from vgi_rpc.rpc._observe import with_trace_context
from vgi_rpc.rpc._quick_answer import MISS, AnswerShape, answer_shape, read_plain_answer
from vgi_rpc.rpc._request import ONE_EMPTY_ROW, encode_arguments
from vgi_rpc.rpc._session import UNKNOWN_CALL, StreamSession
from vgi_rpc.rpc._shm_auto import AutoShm
from vgi_rpc.rpc._shm_client import ClientShm
from vgi_rpc.rpc._streams import EMPTY_SCHEMA
from vgi_rpc.rpc._wire_log import describe_batch, wire_batch_log, wire_request_log
from vgi_rpc.wire import (
    BatchKind,
    classify,
    message_from_metadata,
    request_metadata,
    rpc_error_from_metadata,
)
from vgi_rpc.wire import keys as k
from vgi_rpc.wire.keys import DESCRIBE_METHOD

if sys.version_info >= (3, 13):  # TypeVar defaults (PEP 696); typing_extensions costs ~2 ms
    from typing import TypeVar
else:
    from typing_extensions import TypeVar

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalLocationConfig, ExternalRoute
    from vgi_rpc.rpc._describe import ServiceDescription

P = TypeVar("P", default=Any)  # a bare ``RpcConnection`` annotation means any Protocol
OnLog = Callable[[Message], None]

_NOT_OURS = ("protocol_not_supported", "protocol_version_mismatch")
_log = logging.getLogger(WIRE_TRANSPORT_LOGGER)
_transport_log = _log
_stream_log = logging.getLogger(WIRE_STREAM_LOGGER)
# channel -> the connection made over it, for ``introspect(proxy._transport)``
_OWNERS: weakref.WeakKeyDictionary[object, weakref.ref[RpcConnection]] = weakref.WeakKeyDictionary()


class RpcConnection(Generic[P]):
    """One client connection: sends requests for a Protocol and reads responses.

    As a context manager it yields the proxy typed as the Protocol and closes
    the channel when the block ends::

        with RpcConnection(Calculator, transport) as calc:
            calc.add(a=1.0, b=2.0)

    Args:
        protocol: The Protocol class the peer serves.
        transport: The byte channel to the peer (any transport: a pipe from
            ``make_pipe_pair``, a ``ShmPipeTransport``, a socket channel ...).
        on_log: Called with every log message the server sends.
        ipc_validation: How thoroughly to validate received batches.
        external_location: External storage: large requests and stream inputs
            are uploaded and sent as pointers; pointers the server sends are
            fetched back (without it, a pointer is an error).
    """

    def __init__(
        self,
        protocol: type[P],
        transport: Channel,
        on_log: OnLog | None = None,
        *,
        ipc_validation: IpcValidation = IpcValidation.FULL,
        external_location: ExternalLocationConfig | None = None,
    ) -> None:
        channel = transport
        self.protocol = protocol
        self.channel = channel
        self.on_log = on_log
        self.ipc_validation = ipc_validation
        self.methods = rpc_methods(protocol)
        self.protocol_version = protocol_version_of(protocol)
        # Second-generation routing key, sent on every request (first-generation
        # servers ignore it); dropped for good if the server does not host the name.
        self.routing: str | None = wire_name(protocol) if self.methods else None
        self.open_session: StreamSession | None = None
        self._request_metadata: dict[str, _RequestHead] = {}
        self._answer_shapes: dict[str, AnswerShape | object | None] = {}
        # The client's shared-memory segment, once the server has agreed to use it,
        # or at once when the channel carries one both ends were given (ShmPipeTransport).
        capabilities = capabilities_of(channel)
        static = capabilities.shared_segment
        self.shm: ClientShm | None = ClientShm(static) if static is not None else None
        # Automatic shared memory: a segment set up on the first large batch (local peers),
        # unless the caller chose where large batches go (a segment, external storage).
        offer = capabilities.segment_offer
        automatic = offer is not None and not offer.refused and external_location is None
        self.auto_shm = AutoShm(offer) if automatic and static is None and offer else None
        # False once the byte stream may be out of step (a transport or framing failure).
        self.healthy = True
        # Requests may be written without ``send_request`` (a subclass that routes
        # each request through it, such as HTTP's, keeps the general path).
        self._direct = type(self).send_request is RpcConnection.send_request
        with contextlib.suppress(TypeError):  # a channel that cannot be weakly referenced
            _OWNERS.setdefault(channel, weakref.ref(self))
        self.external: ExternalRoute | None = None
        if external_location is not None:
            from vgi_rpc.external import ExternalRoute

            policy = ReadPolicy.make(ipc_validation, CLIENT_LIMITS)
            self.external = ExternalRoute(external_location, policy)

    def send_request(
        self,
        method: str,
        batch: pa.RecordBatch,
        extra: Metadata | None = None,
        schema: pa.Schema | None = None,
    ) -> None:
        """Write one request stream (the server assigns the request id).

        ``schema`` is the batch's schema as a long-lived object (the method's
        parameter schema), which keeps the encoder lookup an identity check.
        """
        self._check_idle(method)
        auto = self.auto_shm
        if auto is not None and auto.before_request(batch, self._probe_shm):
            self.use_shm(auto.client)
        shm = self.shm
        cached = self._request_metadata.get(method) if extra is None else None
        if cached is None:
            cached = self._head(method, extra)
            if extra is None:
                self._request_metadata[method] = cached
        metadata: Metadata | None = with_trace_context(cached.metadata)  # the active span, if any
        plain = (
            metadata is cached.metadata
            and self.external is None
            and shm is None
            and (auto is None or auto.client is None)
            and not wire_request_log.isEnabledFor(logging.DEBUG)
        )
        if plain and batch is ONE_EMPTY_ROW:
            self._write(cached.whole_request())  # a parameterless call: the same bytes every time
            return
        if self.external is not None:
            batch, metadata = self.external.externalize_request(batch, metadata or {})
        if auto is not None and auto.client is not None:
            batch, metadata = auto.outgoing_request(batch, metadata)
        elif shm is not None:
            batch, metadata = shm.outgoing(batch, metadata)
        if wire_request_log.isEnabledFor(logging.DEBUG):
            wire_request_log.debug("sending %s(): %s", method, describe_batch(batch, metadata))
        writer = StreamWriter(self.channel, schema if schema is not None else batch.schema)
        writer.write(batch, cached.encoded if plain else metadata)
        try:
            writer.close()
        except TransportError:
            self.healthy = False
            raise
        if auto is not None and auto.client is not None:
            auto.request_sent(method)

    def _send_row(self, info: RpcMethodInfo, arguments: dict[str, object]) -> bool:
        """Send a request of flat parameters encoded straight from the values, if it is one.

        ``False`` (nothing sent) when anything asks for the general path: shared
        memory, external storage, trace context, wire logging, a value that is
        not exactly of its column's type. Arguments are checked as ``encode_arguments``
        checks them, with the same errors.
        """
        auto = self.auto_shm
        if (
            not self._direct
            or self.shm is not None
            or self.external is not None
            or (auto is not None and (auto.client is not None or auto.wanted))
            or wire_request_log.isEnabledFor(logging.DEBUG)
        ):
            return False
        self._check_idle(info.name)
        head = self._request_metadata.get(info.name)
        if head is None:
            head = self._head(info.name, None)
            self._request_metadata[info.name] = head
        if with_trace_context(head.metadata) is not head.metadata:
            return False
        rows = head.rows(info)
        if rows is None:
            return False
        writer, wheres = rows
        values: list[object] = []
        for param, where in zip(info.params, wheres, strict=True):
            value = arguments[param.name]
            if value is None:
                if not param.codec.nullable:
                    raise TypeError(f"{where} is not Optional but got None")
                values.append(None)
            else:
                values.append(param.codec.to_arrow(value, where))
        wire = writer.stream(values)
        if wire is None:
            return False
        self._write(wire)
        return True

    def _head(self, method: str, extra: Metadata | None) -> _RequestHead:
        shm = self.shm
        merged = {**shm.advert, **(extra or {})} if shm is not None else dict(extra or {})
        if self.routing is not None:
            merged.setdefault(k.PROTOCOL_KEY, self.routing.encode())
        return _RequestHead(request_metadata(method, None, self.protocol_version, merged))

    def _write(self, data: bytes) -> None:
        try:
            self.channel.write_chunks((data,))
        except TransportError:
            self.healthy = False
            raise

    def _probe_shm(self, advert: Metadata) -> bool:
        return server_takes_shm(self, advert)

    def _check_idle(self, method: str) -> None:
        session = self.open_session
        if session is not None and not session.closed:
            raise ProtocolError(
                f"cannot call {method}() while a stream is open on this connection; "
                "close the stream (or leave its with-block) first"
            )

    def call_unary(self, info: RpcMethodInfo, arguments: dict[str, object]) -> object:
        """Perform a unary call and return its decoded result."""
        schema = info.params_schema if info.params else None
        batch: pa.RecordBatch | None = None
        if not (info.params and self._send_row(info, arguments)):
            batch = encode_arguments(info, arguments)
            self.send_request(info.name, batch, schema=schema)
        shape = self._answer_shapes.get(info.name, MISS)
        if shape is MISS:
            shape = self._answer_shapes[info.name] = answer_shape(info)
        auto = self.auto_shm  # with a segment set up, answers are watched (``AutoShm.received``)
        if isinstance(shape, AnswerShape) and (auto is None or auto.client is None):
            value = read_plain_answer(self.channel.reader, shape)
            if value is not MISS:
                codec = info.result_codec
                return None if value is None or codec is None else codec.from_arrow(value)
        data, _, error = self.read_response(info.name, info.result_codec is not None)
        result = data.batch() if isinstance(data, FlatRow) and error is not None else data
        if error is not None and self._falls_back(error):
            if batch is None:
                batch = encode_arguments(info, arguments)
            assert not isinstance(result, FlatRow)
            result, error = self._unrouted_retry(info.name, batch, schema, error, result)
        if error is not None:
            raise error
        codec = info.result_codec
        if codec is None:
            return None
        if isinstance(result, FlatRow) and len(result.values) == 1:
            value = result.values[0]
            return None if value is None else codec.from_arrow(value)
        if isinstance(result, FlatRow):
            result = result.batch()
        if result is None or result.num_rows != 1 or result.num_columns != 1:
            shape = (
                "no batch"
                if result is None
                else f"{result.num_rows} rows x {result.num_columns} columns"
            )
            raise ProtocolError(f"{info.name}(): expected a 1-row result batch, got {shape}")
        value = result.column(0).to_pylist()[0]
        return None if value is None else codec.from_arrow(value)

    def _falls_back(self, error: RpcError) -> bool:
        """Whether ``error`` says a routing server hosts no protocol of our name and version."""
        return error.error_kind in _NOT_OURS and self.routing is not None

    def _set_routing(self, routing: str | None) -> None:
        self.routing = routing
        self._request_metadata.clear()

    def _unrouted_retry(
        self,
        method: str,
        batch: pa.RecordBatch,
        schema: pa.Schema | None,
        error: RpcError,
        result: pa.RecordBatch | None,
    ) -> tuple[pa.RecordBatch | None, RpcError | None]:
        """Send the request again without the routing key (first generation).

        That reaches the server's default protocol. A server that insists on the
        key answers ``protocol_not_specified``: then the first answer stands and
        routing stays on.
        """
        self._set_routing(None)
        self.send_request(method, batch, schema=schema)
        retried, second = self.read_response_stream(method)
        if second is not None and second.error_kind == "protocol_not_specified":
            self._set_routing(wire_name(self.protocol))
            return result, error
        return retried, second

    def read_response_stream(self, method: str) -> tuple[pa.RecordBatch | None, RpcError | None]:
        """Read one whole response stream: deliver logs, return its data batch or error."""
        data, _, error = self.read_response(method)
        return data, error

    @overload
    def read_response(
        self, method: str, rows: Literal[False] = ...
    ) -> tuple[pa.RecordBatch | None, Metadata | None, RpcError | None]: ...

    @overload
    def read_response(
        self, method: str, rows: bool
    ) -> tuple[pa.RecordBatch | FlatRow | None, Metadata | None, RpcError | None]: ...

    def read_response(
        self, method: str, rows: bool = False
    ) -> tuple[pa.RecordBatch | FlatRow | None, Metadata | None, RpcError | None]:
        """Like ``read_response_stream``, also returning the data batch's custom metadata.

        With ``rows`` a flat one-row data batch may come back as a ``FlatRow``.
        """
        try:
            reader = open_stream_reader(self.channel.reader)
        except (TransportError, IPCError) as exc:
            self.healthy = False
            if isinstance(exc, IPCError):
                raise
            raise self.channel.peer_failure(f"{method}(): {exc}") from exc
        if reader is None:
            self.healthy = False
            raise self.channel.peer_failure(f"{method}(): the server closed the connection")
        data: pa.RecordBatch | FlatRow | None = None
        data_metadata: Metadata | None = None
        error: RpcError | None = None
        while True:
            try:
                item = self.read_batch(reader, method, rows)
            except ExternalStorageError:
                reader.drain()  # the rest of this response, so the channel stays in step
                raise
            if item is None:
                return data, data_metadata, error
            kind, batch, metadata = item
            if kind is BatchKind.ERROR and error is None:
                error = rpc_error_from_metadata(metadata or {})
            elif kind is BatchKind.DATA and data is None:
                data, data_metadata = batch, metadata

    @overload
    def read_batch(
        self,
        reader: IpcStreamReader,
        method: str,
        rows: Literal[False] = ...,
        first: tuple[pa.RecordBatch, Metadata | None] | None = None,
    ) -> tuple[BatchKind, pa.RecordBatch, Metadata | None] | None: ...

    @overload
    def read_batch(
        self, reader: IpcStreamReader, method: str, rows: bool
    ) -> tuple[BatchKind, pa.RecordBatch | FlatRow, Metadata | None] | None: ...

    def read_batch(
        self,
        reader: IpcStreamReader,
        method: str,
        rows: bool = False,
        first: tuple[pa.RecordBatch, Metadata | None] | None = None,
    ) -> tuple[BatchKind, pa.RecordBatch | FlatRow, Metadata | None] | None:
        """Read the next non-log batch of a response stream; ``None`` at its EOS.

        With ``rows`` a flat one-row data batch may come back as a ``FlatRow``.
        ``first``: a batch the caller already read from ``reader``, taken first.
        """
        auto = self.auto_shm
        rows = rows and (auto is None or auto.client is None)
        while True:
            try:
                if first is not None:
                    item: tuple[pa.RecordBatch | FlatRow, Metadata | None] | None = first
                    first = None
                else:
                    item = reader.read(self.ipc_validation, rows)
            except TransportError as exc:
                self.healthy = False
                raise self.channel.peer_failure(f"{method}(): {exc}") from exc
            except IPCError:
                self.healthy = False
                raise
            if item is None:
                return None
            batch, metadata = item
            if not metadata and not wire_batch_log.isEnabledFor(logging.DEBUG):
                if auto is not None and not isinstance(batch, FlatRow):  # a row is small
                    auto.received(batch, False)
                return BatchKind.DATA, batch, metadata
            found = self._classified(
                batch.batch() if isinstance(batch, FlatRow) else batch, metadata, method
            )
            if found is not None:
                return found

    def _classified(
        self, batch: pa.RecordBatch, metadata: Metadata | None, method: str
    ) -> tuple[BatchKind, pa.RecordBatch, Metadata | None] | None:
        """A batch with metadata, classified and resolved; ``None`` for a log (delivered here)."""
        kind = classify(batch, metadata)
        if wire_batch_log.isEnabledFor(logging.DEBUG):
            wire_batch_log.debug(
                "%s(): %s batch: %s", method, kind.value, describe_batch(batch, metadata)
            )
        if kind is BatchKind.LOG:
            if self.on_log is not None:
                self.on_log(message_from_metadata(metadata or {}))
            return None
        if self.auto_shm is not None:
            self.auto_shm.received(batch, kind is BatchKind.ERROR)
        return self._resolve(kind, batch, metadata, method)

    def _resolve(
        self, kind: BatchKind, batch: pa.RecordBatch, metadata: Metadata | None, method: str
    ) -> tuple[BatchKind, pa.RecordBatch, Metadata | None]:
        """A data or error batch as it arrived; a pointer batch replaced by what it names."""
        if kind is BatchKind.SHM_POINTER and self.shm is not None and metadata is not None:
            batch, metadata = self.shm.incoming(batch, metadata)
            return BatchKind.DATA, batch, metadata
        if kind is BatchKind.EXTERNAL_POINTER and metadata is not None:
            return self.resolve_pointer(batch, metadata, method)
        if kind in (BatchKind.SHM_POINTER, BatchKind.EXTERNAL_POINTER, BatchKind.STATE_TOKEN):
            raise IPCError(
                f"{method}(): received a {kind.value} batch, which this connection cannot resolve"
            )
        return kind, batch, metadata

    def resolve_pointer(
        self, batch: pa.RecordBatch, metadata: Metadata, method: str
    ) -> tuple[BatchKind, pa.RecordBatch, Metadata | None]:
        """The batch an external pointer names (its logs delivered first), classified.

        Raises:
            ExternalStorageError: No ``external_location`` is configured, or the
                pointer cannot be fetched or verified.
        """
        if self.external is None:
            raise ExternalStorageError(
                f"{method}(): the server sent an external pointer; pass "
                "external_location=ExternalLocationConfig(...) to the client to resolve it",
                reason="refused",
            )
        batch, resolved = self.external.resolve(batch, metadata, self.on_log)
        kind = classify(batch, resolved)
        return (BatchKind.ERROR if kind is BatchKind.ERROR else BatchKind.DATA), batch, resolved

    def open_stream(self, info: RpcMethodInfo, arguments: dict[str, object]) -> StreamSession:
        """Start a stream call and return its session."""
        batch = encode_arguments(info, arguments)
        schema = info.params_schema if info.params else None
        self.send_request(info.name, batch, schema=schema)
        header: object = None
        if info.header_type is not None:
            header = self._read_header(info, batch, schema)
        session = StreamSession(self, info, header, (batch, schema))
        self.open_session = session
        _stream_log.debug("%s(): stream opened (header: %s)", info.name, header is not None)
        return session

    def _read_header(
        self, info: RpcMethodInfo, batch: pa.RecordBatch, schema: pa.Schema | None
    ) -> object:
        routed = self.routing is not None
        data, error = self.read_response_stream(info.name)
        if (
            error is not None
            and routed
            and error.error_code
            and error.error_kind not in UNKNOWN_CALL
        ):
            # A second-generation server reads (and discards) the input stream
            # of a routed stream that failed to start: send it an empty one.
            # First-generation servers send no error code and expect nothing.
            StreamWriter(self.channel, EMPTY_SCHEMA).close()
        if error is not None and self._falls_back(error):
            data, error = self._unrouted_retry(info.name, batch, schema, error, data)
        if error is not None:
            raise error
        if data is None:
            raise ProtocolError(f"{info.name}(): the header stream carried no header row")
        return info.header_type.from_record_batch(data)  # type: ignore[union-attr]  # ArrowSerializableDataclass

    def describe(self) -> ServiceDescription:
        """Ask the server for its ``__describe__`` payload (the server must enable it)."""
        self.send_request(DESCRIBE_METHOD, ONE_EMPTY_ROW)
        data, metadata, error = self.read_response(DESCRIBE_METHOD)
        if error is not None:
            raise error
        if data is None:
            raise ProtocolError("__describe__ answered with no batch")
        # here: describe needs hashlib and json, which no other call does
        from vgi_rpc.rpc._describe import parse_describe_batch

        return parse_describe_batch(data, metadata)

    def use_shm(self, shm: ClientShm | None) -> None:
        """Start (or stop) using a shared-memory segment the server agreed to."""
        self.shm = shm
        self._request_metadata.clear()

    def release_shm(self) -> None:
        """Let the automatic segment go (the connection ends, or a pooled worker goes back)."""
        if self.auto_shm is not None and self.auto_shm.client is not None:
            self.auto_shm.release()
            self.use_shm(None)

    def __enter__(self) -> P:
        if _transport_log.isEnabledFor(logging.DEBUG):
            _transport_log.debug("RpcConnection open: protocol %s", self.protocol.__name__)
        return make_proxy(self.protocol, self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if _transport_log.isEnabledFor(logging.DEBUG):
            _transport_log.debug("RpcConnection close: protocol %s", self.protocol.__name__)
        self.close()

    def close(self) -> None:
        """Close the open stream, if any, and the channel."""
        session = self.open_session
        try:
            if session is not None and not session.closed:
                with contextlib.suppress(RpcError, TransportError, IPCError):
                    session.close()
            if self.shm is not None and self.healthy:
                self.shm.collect()
        finally:
            try:
                self.release_shm()
            finally:
                if self.external is not None:
                    self.external.close()
                self.channel.close()


class _RequestHead:
    """One method's request metadata, also as pyarrow metadata and (parameterless) whole bytes.

    Converting a dict to pyarrow's metadata costs as much as writing a small
    batch, and a parameterless request is the same stream every time.
    """

    __slots__ = ("_rows", "_whole", "encoded", "metadata")

    def __init__(self, metadata: Metadata) -> None:
        self.metadata = metadata
        self.encoded = pa.KeyValueMetadata(metadata)
        self._whole: bytes | None = None
        self._rows: tuple[RowWriter, tuple[str, ...]] | bool | None = False

    def rows(self, info: RpcMethodInfo) -> tuple[RowWriter, tuple[str, ...]] | None:
        """The writer of this method's flat requests and each argument's error prefix, if flat."""
        if self._rows is False:
            layout = flat_layout(info.params_schema)
            writer = layout.writer(self.metadata) if layout is not None else None
            wheres = tuple(f"{info.name}(): argument {p.name!r}" for p in info.params)
            self._rows = (writer, wheres) if writer is not None else None
        assert self._rows is not True
        return self._rows

    def whole_request(self) -> bytes:
        if self._whole is None:
            stream = encode_stream(ONE_EMPTY_ROW.schema, [(ONE_EMPTY_ROW, self.metadata)])
            self._whole = stream.to_pybytes()
        return self._whole


def _binder(
    info: RpcMethodInfo,
) -> Callable[[tuple[object, ...], dict[str, object]], dict[str, object]]:
    """Map a call's arguments to parameter names, with Protocol defaults merged in.

    Equivalent to ``Signature.bind`` + ``apply_defaults`` for RPC signatures
    (plain parameters only) at a fraction of the cost on the hot path.
    """
    name = info.name
    names = [p.name for p in info.params]
    known = set(names)
    defaults = {p.name: p.default for p in info.params if p.has_default}
    required = [p.name for p in info.params if not p.has_default]

    def bind(args: tuple[object, ...], kwargs: dict[str, object]) -> dict[str, object]:
        for key in kwargs:
            if key not in known:
                raise TypeError(
                    f"{name}() got an unexpected keyword argument {key!r}; parameters: {names}"
                )
        if args:
            if len(args) > len(names):
                raise TypeError(f"{name}() takes {len(names)} arguments but {len(args)} were given")
            for key, value in zip(names, args, strict=False):
                if key in kwargs:
                    raise TypeError(f"{name}() got multiple values for argument {key!r}")
                kwargs[key] = value
        for key in required:
            if key not in kwargs:
                raise TypeError(f"{name}(): missing a required argument: {key!r}")
        return {**defaults, **kwargs} if defaults else kwargs

    return bind


def _make_method(connection: RpcConnection, info: RpcMethodInfo) -> Callable[..., object]:
    bind = _binder(info)
    call = connection.call_unary if not info.is_stream else connection.open_stream

    def method(*args: object, **kwargs: object) -> object:
        return call(info, bind(args, kwargs))

    method.__name__ = info.name
    method.__doc__ = info.doc
    method.__signature__ = info.signature  # type: ignore[attr-defined]  # shown by help() and inspect
    return method


class _Proxy:
    """Base of generated proxies: one attribute per Protocol method."""

    _vgi_connection: RpcConnection

    @property
    def _transport(self) -> Channel:
        """The channel under this proxy (``introspect(proxy._transport)`` works on it)."""
        return self._vgi_connection.channel

    def __repr__(self) -> str:
        return f"<vgi_rpc proxy for {self._vgi_connection.protocol.__name__}>"


def make_proxy(protocol: type[P], connection: RpcConnection[Any]) -> P:
    """Build an object typed as ``protocol`` whose methods call through ``connection``."""
    namespace: dict[str, object] = {
        name: staticmethod(_make_method(connection, info))
        for name, info in connection.methods.items()
    }
    proxy_cls = type(f"{protocol.__name__}Proxy", (_Proxy,), namespace)
    proxy = proxy_cls()
    proxy._vgi_connection = connection
    return cast(P, proxy)  # structurally a P: one callable per Protocol method


class Connected(Generic[P]):
    """Context manager result of ``connect`` / ``serve_pipe``: yields the typed proxy."""

    def __init__(self, proxy: P, on_close: Callable[[], None]) -> None:
        self._proxy = proxy
        self._on_close = on_close

    def __enter__(self) -> P:
        return self._proxy

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._on_close()


def connection_of(proxy: object) -> RpcConnection:
    """The ``RpcConnection`` behind a proxy (for introspection and tests)."""
    conn = getattr(proxy, "_vgi_connection", None)
    if not isinstance(conn, RpcConnection):
        raise TypeError(f"{proxy!r} is not a vgi_rpc proxy")
    return conn


def owner_of(channel: object) -> RpcConnection | None:
    """The first live ``RpcConnection`` made over ``channel``, if any."""
    try:
        ref = _OWNERS.get(channel)
    except TypeError:
        return None
    return ref() if ref is not None else None


def server_takes_shm(connection: RpcConnection, advert: Metadata | None = None) -> bool:
    """Ask the server over ``__transport_options__`` whether it can use shared memory.

    A server that errors (or predates the method) means no. With ``advert`` (a
    segment's name and size) the question is about that segment: our server maps
    it before answering, so one that cannot (another host or user) errors.
    """
    method = k.TRANSPORT_OPTIONS_METHOD
    extra = {**(advert or {}), k.TRANSPORT_SHM_KEY: b"true"}
    connection.send_request(method, ONE_EMPTY_ROW, extra=extra)
    try:
        _, metadata, error = connection.read_response(method)
    except TransportError:
        raise
    except RpcError:
        return False
    answer = metadata.get(k.TRANSPORT_SHM_KEY) if error is None and metadata else None
    _log.debug("server answered %s: shm=%r", method, answer)
    return answer == b"true"


__all__ = [
    "Connected",
    "OnLog",
    "RpcConnection",
    "StreamSession",
    "connection_of",
    "make_proxy",
    "owner_of",
    "server_takes_shm",
]
