"""The sans-IO call step: a request in, response streams out; a stream as a sequence of turns.

Every transport drives calls through here: the byte-stream loop
(``_stream_loop``) and the HTTP dispatcher. Nothing in this module reads or
writes a channel, so a call behaves the same whatever carries it; a
transport only decides how the replies travel (shared memory, tokens,
continuation requests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol, overload

import pyarrow as pa

from vgi_rpc._dataclasses import ArrowSerializableDataclass
from vgi_rpc._errors import IPCError
from vgi_rpc._flat_row import flat_layout
from vgi_rpc._ipc import Metadata, encode_stream
from vgi_rpc._logs import DEBUG, WIRE_STREAM_LOGGER, Level, lazy_logger
from vgi_rpc._methods import RpcMethodInfo
from vgi_rpc._record import record
from vgi_rpc.rpc._accounting import CallRecord, describe_batch, wire_response_log
from vgi_rpc.rpc._context import AuthContext, CallContext
from vgi_rpc.rpc._hosting import Handler, Hosted
from vgi_rpc.rpc._streams import (
    AnnotatedBatch,
    ExchangeState,
    OutputCollector,
    ProducerState,
    Stream,
    StreamState,
)
from vgi_rpc.wire import EMPTY_SCHEMA, empty_batch
from vgi_rpc.wire import keys as k

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalBudget, ExternalRoute

_log = lazy_logger(WIRE_STREAM_LOGGER)

Batch = tuple[pa.RecordBatch, Metadata | None]
PendingLog = tuple[Level, str, dict[str, object] | None]


class CallHost(Protocol):
    """What the call step needs from the server that runs it (``RpcServer``)."""

    def make_context(
        self,
        method: str,
        request_id: str,
        sink: Callable[[Level, str, dict[str, object] | None], None],
        auth: AuthContext | None = None,
        *,
        hosted: Hosted | None = None,
    ) -> CallContext:
        """The context of one call."""
        ...

    def log_batches(
        self, logs: list[PendingLog], request_id: str, schema: pa.Schema
    ) -> list[Batch]:
        """Client-log batches for pending logs."""
        ...

    def error_metadata(
        self, exc: BaseException, request_id: str, auth: AuthContext | None = None
    ) -> Metadata:
        """EXCEPTION-batch metadata for an implementation's exception."""
        ...

    def log_method_error(self, method: str, exc: BaseException) -> None:
        """Record a failed call."""
        ...

    def externalize(
        self, schema: pa.Schema, batches: list[Batch], budget: ExternalBudget | None, method: str
    ) -> list[Batch]:
        """A turn's batches, its large data batch replaced by an external pointer."""
        ...

    def resolve_input(self, batch: pa.RecordBatch, metadata: Metadata | None) -> Batch:
        """The batch an external pointer names (any other batch unchanged)."""
        ...

    @property
    def external(self) -> ExternalRoute | None:
        """External storage for large batches, if configured (else nothing is externalized)."""
        ...


class Reply:
    """One complete response IPC stream: its schema and batches, logs first.

    A flat one-row result is encoded straight from its value (``wire``, the
    whole stream); its ``batches`` are then built only when asked for.
    """

    __slots__ = ("_build", "batches", "error", "schema", "wire")

    batches: list[Batch]  # an encoded reply's are built on first access (``__getattr__``)

    def __init__(
        self, schema: pa.Schema, batches: list[Batch], error: BaseException | None = None
    ) -> None:
        self.schema = schema
        self.batches = batches
        self.error = error
        self.wire: bytes | None = None
        self._build: Callable[[], list[Batch]] | None = None

    @classmethod
    def encoded(cls, schema: pa.Schema, wire: bytes, build: Callable[[], list[Batch]]) -> Reply:
        """A reply already encoded as ``wire``; ``build`` makes its batches on demand."""
        reply = cls.__new__(cls)
        reply.schema, reply.error, reply.wire, reply._build = schema, None, wire, build
        return reply

    def __getattr__(self, name: str) -> list[Batch]:
        # Only reached while an encoded reply's ``batches`` slot is still empty.
        if name != "batches" or self._build is None:
            raise AttributeError(name)
        self.batches = self._build()
        return self.batches


@record()
class CallStart:
    """What starting a call produced.

    Attributes:
        replies: Complete streams to send now, in order (a unary result, an
            error, a stream's header).
        stream: The opened stream, when the call is one; drive it with turns.
        status: The HTTP status the replies map to (400/404 for refusals).
        drain_input: Byte streams: the client sends an input stream that must
            be read and discarded (a stream that failed to start).
    """

    __slots__ = ("drain_input", "replies", "status", "stream")

    replies: list[Reply]
    stream: ServerStream | None
    status: int
    drain_input: bool

    def __init__(
        self,
        replies: list[Reply],
        stream: ServerStream | None = None,
        status: int = 200,
        drain_input: bool = False,
    ) -> None:
        self.replies = replies
        self.stream = stream
        self.status = status
        self.drain_input = drain_input


@record()
class Turn:
    """One turn of a stream: logs, then one data batch, or an error, or the end.

    Attributes:
        logs: Client-log batches, on the output schema.
        data: The turn's data batch and its metadata (``None`` when finished or failed).
        error: The exception that ended the stream, if one did.
        error_batch: The EXCEPTION batch describing ``error``.
        finished: The stream is over (producer finished, cancelled or failed).
        cancelled: The client cancelled; nothing else was run.
    """

    __slots__ = ("cancelled", "data", "error", "error_batch", "finished", "logs")

    logs: list[Batch]
    data: Batch | None
    error: Exception | None
    error_batch: Batch | None
    finished: bool
    cancelled: bool

    def __init__(
        self,
        logs: list[Batch],
        data: Batch | None = None,
        error: Exception | None = None,
        error_batch: Batch | None = None,
        finished: bool = False,
        cancelled: bool = False,
    ) -> None:
        self.logs = logs
        self.data = data
        self.error = error
        self.error_batch = error_batch
        self.finished = finished
        self.cancelled = cancelled

    @property
    def batches(self) -> list[Batch]:
        """Everything to write for this turn, in order."""
        tail = self.data or self.error_batch
        return [*self.logs, tail] if tail is not None else list(self.logs)


def open_stream(info: RpcMethodInfo, value: object) -> Stream[ProducerState | ExchangeState]:
    """Check what a stream method returned.

    Raises:
        TypeError: Not a ``Stream`` of a producer or exchange state with the declared header.
    """
    if not isinstance(value, Stream):
        raise TypeError(f"{info.name}() must return a Stream, got {type(value).__name__}")
    if not isinstance(value.state, ProducerState | ExchangeState):
        raise TypeError(
            f"{info.name}(): Stream.state must be a ProducerState or ExchangeState, "
            f"got {type(value.state).__name__}"
        )
    if info.header_type is not None and not isinstance(value.header, info.header_type):
        raise TypeError(
            f"{info.name}(): the Protocol declares a {info.header_type.__name__} header, "
            f"got {type(value.header).__name__}"
        )
    return value


def header_batch(header: object) -> pa.RecordBatch:
    """The one-row batch of a stream's header."""
    assert isinstance(header, ArrowSerializableDataclass)  # open_stream checked the declared type
    return header.to_record_batch()


def conform_input(batch: pa.RecordBatch, schema: pa.Schema, method: str) -> pa.RecordBatch:
    """Cast an exchange input to the declared input schema, or refuse it clearly."""
    if batch.schema.equals(schema) or len(schema) == 0:
        return batch
    if batch.schema.names != schema.names:
        raise TypeError(
            f"{method}(): exchange input columns {batch.schema.names} do not match the "
            f"declared input schema columns {schema.names}"
        )
    try:
        return batch.cast(schema, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise TypeError(
            f"{method}(): exchange input {batch.schema} cannot be cast to the declared input schema {schema}: {exc}"
        ) from exc


class ServerStream:
    """A stream being served: its state, schemas, and one context for all its turns.

    Over a byte stream one object lives for the whole stream; over HTTP it
    is rebuilt from the tokens for each request.
    """

    def __init__(
        self,
        server: CallHost,
        handler: Handler,
        state: StreamState,
        output_schema: pa.Schema,
        input_schema: pa.Schema,
        request_id: str,
        auth: AuthContext | None,
        record: CallRecord | None,
        pending_logs: list[Batch] | None = None,
    ) -> None:
        self.server = server
        self.handler = handler
        self.info = handler.info
        self.state = state
        self.output_schema = output_schema
        self.input_schema = input_schema
        self.request_id = request_id
        self.auth = auth
        self.record = record
        self.pending_logs: list[Batch] = pending_logs or []
        # HTTP: what this request's turns may still upload (max_externalized_response_bytes).
        self.external_budget: ExternalBudget | None = None
        self._out: OutputCollector | None = None
        self._ctx = server.make_context(
            self.info.name, request_id, self._sink, auth, hosted=handler.hosted
        )

    def _sink(self, level: Level, message: str, extra: dict[str, object] | None) -> None:
        if self._out is not None:
            self._out.log_sink(level, message, extra)

    @property
    def stream_id(self) -> str:
        """What links the pieces of this stream (the record's id, else the request id)."""
        return self.record.stream_id if self.record is not None else self.request_id

    @property
    def is_producer(self) -> bool:
        """Whether the state produces (ticks in) rather than exchanges."""
        return isinstance(self.state, ProducerState)

    def turn(
        self,
        batch: pa.RecordBatch,
        metadata: Metadata | None = None,
        *,
        externalize: bool = True,
        conformed: bool = False,
    ) -> Turn:
        """Run one turn on an input batch (a tick for producers); a cancel batch cancels.

        An input that is an external pointer is resolved first; a large output
        goes to external storage unless ``externalize`` is false (HTTP exchanges
        first add their state token to it). ``conformed``: the caller knows the
        batch has the declared input schema (read with a schema checked once).
        """
        if metadata is not None and k.CANCEL_KEY in metadata:
            self.cancel()
            return Turn([], finished=True, cancelled=True)
        if not _log.isEnabledFor(DEBUG):
            return self._turn(batch, metadata, externalize, conformed)
        kind = "tick" if self.is_producer else "exchange"
        _log.debug("%s(): %s, input %s", self.info.name, kind, describe_batch(batch, metadata))
        turn = self._turn(batch, metadata, externalize, conformed)
        if turn.data is not None:
            outcome = describe_batch(*turn.data)
        else:
            outcome = "failed" if turn.error is not None else "finished"
        _log.debug(
            "%s(): %s -> %d logs, %s%s",
            self.info.name,
            kind,
            len(turn.logs),
            outcome,
            " (last)" if turn.finished and turn.data is not None else "",
        )
        return turn

    def answer(self, batch: pa.RecordBatch, *, conformed: bool = False) -> Turn | pa.RecordBatch:
        """``turn`` for an input without custom metadata, the common turn of a byte stream.

        A plain output (no logs before it, no metadata, not the last one, not
        externalized) comes back bare; anything else as the ``Turn``.
        """
        if _log.isEnabledFor(DEBUG):
            return self.turn(batch, conformed=conformed)
        return self._turn(batch, None, True, conformed, bare=True)

    @overload
    def _turn(
        self,
        batch: pa.RecordBatch,
        metadata: Metadata | None,
        externalize: bool,
        conformed: bool,
        bare: Literal[False] = ...,
    ) -> Turn: ...

    @overload
    def _turn(
        self,
        batch: pa.RecordBatch,
        metadata: Metadata | None,
        externalize: bool,
        conformed: bool,
        bare: bool,
    ) -> Turn | pa.RecordBatch: ...

    def _turn(
        self,
        batch: pa.RecordBatch,
        metadata: Metadata | None,
        externalize: bool,
        conformed: bool,
        bare: bool = False,
    ) -> Turn | pa.RecordBatch:
        out = OutputCollector(self.output_schema)
        self._out = out
        try:
            if metadata:  # only a batch with metadata can be an external pointer
                batch, metadata = self.server.resolve_input(batch, metadata)
                conformed = False
            self._run(batch, metadata, out, conformed)
        except Exception as exc:
            self.server.log_method_error(self.info.name, exc)
            logs = self._logs(out)
            error = (empty_batch(self.output_schema), self._error_metadata(exc))
            log_error_reply(self.info.name, error[1])
            return Turn(logs, error=exc, error_batch=error, finished=True)
        finally:
            self._out = None
        logs = self._logs(out) if out.logs else []
        emitted = out.batch
        if emitted is None:
            return Turn(logs, finished=True)
        if self.record is not None:
            self.record.stats.record_output(emitted.batch)
        external = self.server.external
        if bare and external is None and not (logs or emitted.custom_metadata or out.finished):
            return emitted.batch
        data = (emitted.batch, emitted.metadata_dict() if emitted.custom_metadata else None)
        if externalize and external is not None:
            try:
                *logs, data = self.server.externalize(
                    self.output_schema, [*logs, data], self.external_budget, self.info.name
                )
            except Exception as exc:  # the upload failed, or the response budget refused it
                return self.fail(exc)
        return Turn(logs, data=data, finished=out.finished)

    def _run(
        self,
        batch: pa.RecordBatch,
        metadata: Metadata | None,
        out: OutputCollector,
        conformed: bool,
    ) -> None:
        state = self.state
        if isinstance(state, ExchangeState):
            if not conformed and not batch.schema.equals(self.input_schema):
                batch = conform_input(batch, self.input_schema, self.info.name)
            if self.record is not None:
                self.record.stats.record_input(batch)
            state.exchange(AnnotatedBatch(batch, metadata), out, self._ctx)
            if out.batch is None:
                raise ValueError(
                    f"{self.info.name}(): exchange() must emit exactly one batch per input"
                )
            return
        assert isinstance(state, ProducerState)
        self._ctx.tick_metadata = dict(metadata) if metadata else None
        state.produce(out, self._ctx)
        if out.batch is None and not out.finished:
            raise ValueError(f"{self.info.name}(): produce() must emit a batch or call finish()")

    def _logs(self, out: OutputCollector) -> list[Batch]:
        if not out.logs:
            return []
        return self.server.log_batches(out.logs, self.request_id, self.output_schema)

    def _error_metadata(self, exc: BaseException) -> Metadata:
        return self.server.error_metadata(exc, self.request_id, self.auth)

    def fail(self, exc: Exception) -> Turn:
        """The turn reporting ``exc`` raised outside the state (bad input, a transport fault)."""
        self.server.log_method_error(self.info.name, exc)
        error = (empty_batch(self.output_schema), self._error_metadata(exc))
        log_error_reply(self.info.name, error[1])
        return Turn([], error=exc, error_batch=error, finished=True)

    def cancel(self) -> None:
        """Run the state's ``on_cancel`` (its failures are swallowed, as the spec requires)."""
        _log.debug("%s(): cancelled by the client", self.info.name)
        if self.record is not None:
            self.record.cancelled = True
        ctx = self.server.make_context(
            self.info.name, self.request_id, lambda lv, msg, ex: None, self.auth
        )
        try:
            self.state.on_cancel(ctx)
        except Exception:
            _log.debug(
                "%s(): on_cancel failed; ignored as the spec requires",
                self.info.name,
                exc_info=True,
            )

    def finish(self, error: BaseException | None = None) -> None:
        """Close the call's access record."""
        if self.record is not None:
            self.record.finish(error)
            self.record = None


def run_unary(
    server: CallHost,
    handler: Handler,
    kwargs: dict[str, object],
    request_id: str,
    record: CallRecord | None,
    auth: AuthContext | None,
    budget: ExternalBudget | None = None,
) -> CallStart:
    """Call a unary method: its logs then its result, or its logs then its error.

    A large result goes to external storage (``budget``: HTTP's external cap).
    """
    info = handler.info
    logs: list[PendingLog] = []
    try:
        if handler.wants_ctx:
            ctx = server.make_context(
                info.name,
                request_id,
                lambda level, msg, extra: logs.append((level, msg, extra)),
                auth,
                hosted=handler.hosted,
            )
            value = handler.call(**kwargs, ctx=ctx)
        else:
            value = handler.call(**kwargs)
        if not logs and record is None and budget is None:
            fast = (
                _encoded_result(server, info, value)
                if info.result_codec is not None
                else _no_result(server, info)
            )
            if fast is not None:
                return CallStart([fast])
        result = result_batch(info, value)
        batches = server.log_batches(logs, request_id, info.result_schema)
        batches.append((result, None))
        batches = server.externalize(info.result_schema, batches, budget, info.name)
    except Exception as exc:
        server.log_method_error(info.name, exc)
        batches = server.log_batches(logs, request_id, info.result_schema)
        error = server.error_metadata(exc, request_id, auth)
        batches.append((empty_batch(info.result_schema), error))
        log_error_reply(info.name, error)
        if record is not None:
            record.finish(exc)
        return CallStart([Reply(info.result_schema, batches, exc)])
    if wire_response_log.isEnabledFor(DEBUG):
        wire_response_log.debug("answered %s(): %s", info.name, describe_batch(result, None))
    if record is not None:
        record.stats.record_output(result)
        record.finish()
    return CallStart([Reply(info.result_schema, batches)])


def start_stream(
    server: CallHost,
    handler: Handler,
    kwargs: dict[str, object],
    request_id: str,
    record: CallRecord | None,
    auth: AuthContext | None,
    *,
    input_follows_error: bool,
) -> CallStart:
    """Open a stream: its header stream (if declared), or the error that stopped it.

    ``input_follows_error``: the client sends an input stream even when init fails.
    """
    info = handler.info
    logs: list[PendingLog] = []
    ctx = server.make_context(
        info.name,
        request_id,
        lambda lv, msg, ex: logs.append((lv, msg, ex)),
        auth,
        hosted=handler.hosted,
    )
    try:
        call = bind(handler, kwargs)
        stream = open_stream(info, call(ctx))
        header = header_batch(stream.header) if info.header_type is not None else None
    except Exception as exc:
        server.log_method_error(info.name, exc)
        batches = server.log_batches(logs, request_id, EMPTY_SCHEMA)
        error = server.error_metadata(exc, request_id, auth)
        batches.append((empty_batch(EMPTY_SCHEMA), error))
        log_error_reply(info.name, error)
        if record is not None:
            record.finish(exc)
        drain = info.header_type is None or input_follows_error
        return CallStart([Reply(EMPTY_SCHEMA, batches, exc)], drain_input=drain)
    _log.debug("%s(): stream opened (%s)", info.name, type(stream.state).__name__)
    opened = ServerStream(
        server,
        handler,
        stream.state,
        stream.output_schema,
        stream.input_schema,
        request_id,
        auth,
        record,
    )
    if header is None:
        opened.pending_logs = server.log_batches(logs, request_id, stream.output_schema)
        return CallStart([], opened)
    batches = server.log_batches(logs, request_id, header.schema)
    batches.append((header, None))
    return CallStart([Reply(header.schema, batches)], opened)


def log_error_reply(method: str | None, metadata: Metadata) -> None:
    """Show an error batch on ``vgi_rpc.wire.response`` (errors only: off the hot path)."""
    if wire_response_log.isEnabledFor(DEBUG):
        wire_response_log.debug(
            "answered %s with an error batch: %s",
            f"{method}()" if method else "a refused request",
            describe_batch(empty_batch(EMPTY_SCHEMA), metadata),
        )


def bind(handler: Handler, kwargs: dict[str, object]) -> Callable[[CallContext], object]:
    """The implementation call with its arguments, waiting for its context."""
    if handler.wants_ctx:
        return lambda ctx: handler.call(**kwargs, ctx=ctx)
    return lambda ctx: handler.call(**kwargs)


def _encoded_result(server: CallHost, info: RpcMethodInfo, value: object) -> Reply | None:
    """A flat, non-null result encoded without pyarrow; ``None``: take the general path."""
    codec = info.result_codec
    if (
        codec is None
        or value is None
        or getattr(server, "external", None) is not None
        or wire_response_log.isEnabledFor(DEBUG)
    ):
        return None
    layout = flat_layout(info.result_schema)
    writer = layout.writer() if layout is not None else None
    if writer is None:
        return None
    try:
        converted = codec.to_arrow(value, "result")
    except TypeError:
        return None  # the general path reports it with the method's name
    wire = writer.stream((converted,))
    if wire is None:
        return None
    return Reply.encoded(info.result_schema, wire, lambda: [(result_batch(info, value), None)])


_NO_RESULT_WIRE: dict[int, tuple[pa.Schema, bytes]] = {}


def _no_result(server: CallHost, info: RpcMethodInfo) -> Reply | None:
    """The answer of a method without a result: the same bytes every time; ``None``: general path."""
    if getattr(server, "external", None) is not None or wire_response_log.isEnabledFor(DEBUG):
        return None
    schema = info.result_schema
    cached = _NO_RESULT_WIRE.get(id(schema))
    if cached is None or cached[0] is not schema:
        wire = encode_stream(schema, [(empty_batch(schema), None)]).to_pybytes()
        if len(_NO_RESULT_WIRE) >= 256:
            _NO_RESULT_WIRE.clear()
        cached = _NO_RESULT_WIRE[id(schema)] = (schema, wire)  # keeps the schema (and its id)
    return Reply.encoded(schema, cached[1], lambda: [(empty_batch(schema), None)])


def result_batch(info: RpcMethodInfo, value: object) -> pa.RecordBatch:
    """The one-row result batch of a unary method (zero columns for ``None`` results)."""
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
        raise TypeError(f"{where}: {exc}" if not str(exc).startswith(where) else str(exc)) from None
    return pa.RecordBatch.from_arrays([array], schema=info.result_schema)


def is_input_fault(exc: BaseException) -> bool:
    """Whether a stream error came from unreadable input (the byte stream cannot resync)."""
    return isinstance(exc, IPCError)


__all__ = [
    "Batch",
    "CallHost",
    "CallStart",
    "Reply",
    "ServerStream",
    "Turn",
    "bind",
    "conform_input",
    "header_batch",
    "is_input_fault",
    "log_error_reply",
    "open_stream",
    "result_batch",
    "run_unary",
    "start_stream",
]
