"""The sans-IO call step: a request in, response streams out; a stream as a sequence of turns.

Every transport drives calls through here: the byte-stream loop
(``_stream_loop``) and the HTTP dispatcher. Nothing in this module reads or
writes a channel, so a call behaves the same whatever carries it; a
transport only decides how the replies travel (shared memory, tokens,
continuation requests). Unary calls are answered here; a stream, once opened,
is a ``ServerStream`` (``_server_stream``, imported when a stream method is called).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from vgi_rpc._errors import IPCError
from vgi_rpc._flat_row import flat_layout
from vgi_rpc._ipc import encode_stream
from vgi_rpc._logs import DEBUG, WIRE_STREAM_LOGGER, lazy_logger
from vgi_rpc._methods import RpcMethodInfo
from vgi_rpc._record import record
from vgi_rpc.rpc._call_host import Batch, PendingLog, Turn, log_error_reply
from vgi_rpc.rpc._context import AuthContext, CallContext
from vgi_rpc.rpc._hosting import Handler
from vgi_rpc.rpc._wire_log import describe_batch, wire_response_log
from vgi_rpc.wire import EMPTY_SCHEMA, empty_batch

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalBudget
    from vgi_rpc.rpc._accounting import CallRecord
    from vgi_rpc.rpc._call_host import CallHost
    from vgi_rpc.rpc._server_stream import ServerStream

_log = lazy_logger(WIRE_STREAM_LOGGER)


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
    from vgi_rpc.rpc._server_stream import ServerStream, header_batch, open_stream

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
    "CallStart",
    "Reply",
    "Turn",
    "bind",
    "is_input_fault",
    "log_error_reply",
    "result_batch",
    "run_unary",
    "start_stream",
]
