"""RPC over HTTP requests: unary calls, stream ``/init`` and ``/exchange`` turns.

Every request body is a complete IPC stream and every answer is one or two
complete IPC streams, so calls run through the same ``RpcServer`` routing,
decoding and writing as the byte-stream transports, over an in-memory
channel. Stream state lives in sealed tokens between turns
(``_tokens.TokenBook``), so any process holding the key can serve any turn.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import pyarrow as pa

from vgi_rpc._errors import (
    IPCError,
    MethodNotImplementedError,
    ProtocolError,
    SchemaError,
    TransportError,
)
from vgi_rpc._ipc import Chunk, Metadata, StreamWriter
from vgi_rpc._logs import HTTP_LOGGER, Level
from vgi_rpc._methods import RpcMethodInfo
from vgi_rpc.http._refusal import RequestRefusedError
from vgi_rpc.http._tokens import Call, TokenBook, TokenError
from vgi_rpc.rpc._accounting import CallRecord
from vgi_rpc.rpc._context import AuthContext
from vgi_rpc.rpc._request import Request, decode_arguments, read_request
from vgi_rpc.rpc._server import RpcServer, _Builtin, _Handler
from vgi_rpc.rpc._stream_loop import _header_batch, _open, _run_turn, _write_turn
from vgi_rpc.rpc._streams import (
    AnnotatedBatch,
    ExchangeState,
    OutputCollector,
    ProducerState,
    StreamState,
)
from vgi_rpc.wire import _keys as k
from vgi_rpc.wire._codec import EMPTY_SCHEMA, empty_batch

_log = logging.getLogger(HTTP_LOGGER)
_TOKEN_KEYS = (k.STREAM_STATE_KEY, k.CALL_STATE_KEY)
Body = bytes | bytearray


class Reply(NamedTuple):
    """An HTTP answer: status, body chunks, and whether the body carries a method error."""

    status: int
    body: list[Chunk]
    rpc_error: bool = False


def _finish(
    channel: _MemoryChannel,
    output: StreamWriter,
    record: CallRecord | None,
    error: Exception | None = None,
) -> Reply:
    """End the output stream and the call's access record; the reply carries the body."""
    output.close()
    if record is not None:
        record.finish(error)
    return Reply(200, channel.chunks, error is not None)


class _BodyReader(io.RawIOBase):
    """Reads a request body in place (``BytesIO`` would copy a ``bytearray``)."""

    def __init__(self, body: Body) -> None:
        super().__init__()
        self._view = memoryview(body)
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        end = min(self._position + len(target), len(self._view))
        count = end - self._position
        target[:count] = self._view[self._position : end]
        self._position = end
        return count


class _MemoryChannel:
    """A ``Channel`` over one request body, collecting what the server writes."""

    def __init__(self, body: Body) -> None:
        self.body_size = len(body)
        self._reader = cast(io.BufferedReader, io.BufferedReader(_BodyReader(body)))
        self.chunks: list[Chunk] = []
        self.size = 0

    @property
    def reader(self) -> io.BufferedReader:
        return self._reader

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        for chunk in chunks:
            self.chunks.append(chunk)
            self.size += memoryview(chunk).nbytes

    def peer_failure(self, detail: str) -> TransportError:
        return TransportError(f"request body ended early: {detail}")

    def close(self) -> None:
        pass


class HttpDispatcher:
    """Answers RPC requests for one ``RpcServer`` (no HTTP framework here).

    Args:
        server: The routing and dispatch core.
        tokens: Mints and opens stream tokens.
        max_response_bytes: Body cap: soft for producers (continuation tokens),
            hard for unary and exchange responses.
    """

    def __init__(
        self, server: RpcServer, tokens: TokenBook, max_response_bytes: int | None
    ) -> None:
        self.server = server
        self.tokens = tokens
        self.max_response_bytes = max_response_bytes

    # -- shared front half ------------------------------------------------

    def _error_reply(
        self, status: int, exc: BaseException, request_id: str, schema: pa.Schema = EMPTY_SCHEMA
    ) -> Reply:
        channel = _MemoryChannel(b"")
        writer = StreamWriter(channel, schema)
        writer.write(empty_batch(schema), self.server.protocol_error_metadata(exc, request_id))
        writer.close()
        return Reply(status, channel.chunks, status == 200)

    def refusal_reply(self, problem: RequestRefusedError, request_id: str) -> Reply:
        """A 4xx answer whose body is an Arrow error stream."""
        return self._error_reply(problem.status, _problem_exception(problem), request_id)

    def _request(self, channel: _MemoryChannel, url_method: str) -> Request:
        try:
            request = read_request(channel, self.server.read_policy.for_body(channel.body_size))
        except TransportError as exc:
            raise RequestRefusedError(
                400, f"request body is not a complete Arrow IPC stream: {exc}"
            ) from None
        except IPCError as exc:
            raise RequestRefusedError(400, str(exc)) from None
        if request is None:
            raise RequestRefusedError(400, "request body is empty; expected an Arrow IPC stream")
        if request.rejected is not None:
            raise RequestRefusedError(400, str(request.rejected))
        named = request.metadata.get(k.METHOD_KEY)
        if named is not None and named.decode("utf-8", "replace") != url_method:
            raise RequestRefusedError(
                400,
                f"URL names method {url_method!r} but the request batch names "
                f"{named.decode('utf-8', 'replace')!r}",
            )
        return request

    def _route(self, request: Request) -> _Handler | _Builtin:
        try:
            return self.server._route(request)
        except MethodNotImplementedError as exc:
            raise RequestRefusedError(404, str(exc), error_kind="method_not_implemented") from None
        except ProtocolError as exc:
            raise RequestRefusedError(400, str(exc)) from None

    def _decode(
        self, handler: _Handler, request: Request, request_id: str, schema: pa.Schema
    ) -> dict[str, object] | Reply:
        try:
            self.server._check_protocol_version(request.metadata)
            return decode_arguments(handler.info, request.batch)
        except Exception as exc:  # the caller's arguments or version: a 400 on the wire
            return self._error_reply(400, exc, request_id, schema)

    # -- unary --------------------------------------------------------------

    def unary(self, url_method: str, body: Body, auth: AuthContext, request_id: str) -> Reply:
        """``POST {prefix}/{method}``."""
        channel = _MemoryChannel(body)
        request = self._request(channel, url_method)
        handler = self._route(request)
        if isinstance(handler, _Builtin):
            handler.answer(channel, request_id)
            return Reply(200, channel.chunks)
        info = handler.info
        if info.is_stream:
            raise RequestRefusedError(
                400, f"{info.name}() is a stream method; start it with POST .../{info.name}/init"
            )
        kwargs = self._decode(handler, request, request_id, info.result_schema)
        if isinstance(kwargs, Reply):
            return kwargs
        record = self.server._start_record(info, request_id, request.batch)
        error = self.server._serve_unary(channel, handler, kwargs, request_id, record, auth)
        cap = self.max_response_bytes
        if cap is not None and channel.size > cap:
            overshoot = RuntimeError(
                f"{info.name}() response of {channel.size} bytes exceeds the server's "
                f"max_response_bytes ({cap})"
            )
            return self._error_reply(200, overshoot, request_id, info.result_schema)
        return Reply(200, channel.chunks, error is not None)

    # -- streams ------------------------------------------------------------

    def init(self, url_method: str, body: Body, auth: AuthContext, request_id: str) -> Reply:
        """``POST {prefix}/{method}/init``: header (if any), then the first output."""
        channel = _MemoryChannel(body)
        request = self._request(channel, url_method)
        handler = self._route(request)
        if isinstance(handler, _Builtin) or not handler.info.is_stream:
            raise RequestRefusedError(
                400, f"{url_method}() is not a stream method; call it with POST .../{url_method}"
            )
        info = handler.info
        kwargs = self._decode(handler, request, request_id, EMPTY_SCHEMA)
        if isinstance(kwargs, Reply):
            return kwargs
        record = self.server._start_record(info, request_id, request.batch)
        logs: list[tuple[Level, str, dict[str, object] | None]] = []
        ctx = self.server.make_context(
            info.name, request_id, lambda lv, msg, ex: logs.append((lv, msg, ex)), auth
        )
        try:
            stream = _open(info, self.server._bind(handler, kwargs)(ctx))
            header = _header_batch(stream.header) if info.header_type is not None else None
            call, call_token = self.tokens.mint_call(
                info.name,
                type(stream.state),
                stream.output_schema,
                stream.input_schema,
                request_id,
                auth,
            )
        except Exception as exc:
            if isinstance(exc, SchemaError):
                exc = SchemaError(f"{info.name}(): its stream state cannot travel over HTTP: {exc}")
            self.server.log_method_error(info.name, exc)
            writer = StreamWriter(channel, EMPTY_SCHEMA)
            self.server.write_logs(writer, EMPTY_SCHEMA, logs, request_id)
            writer.write(
                empty_batch(EMPTY_SCHEMA), self.server.error_metadata(exc, request_id, auth)
            )
            writer.close()
            if record is not None:
                record.finish(exc)
            return Reply(200, channel.chunks, True)
        if header is not None:
            writer = StreamWriter(channel, header.schema)
            self.server.write_logs(writer, header.schema, logs, request_id)
            writer.write(header)
            writer.close()
        output = StreamWriter(channel, stream.output_schema)
        self.server.write_logs(output, stream.output_schema, logs, request_id)
        state = stream.state
        if isinstance(state, ProducerState):
            return self._produce(
                info, call, state, channel, output, auth, request_id, record, call_token, 0
            )
        cursor = self.tokens.mint_cursor(call, state, auth, 0)
        tokens = {k.STREAM_STATE_KEY: cursor, k.CALL_STATE_KEY: call_token}
        output.write(empty_batch(stream.output_schema), tokens)
        return _finish(channel, output, record)

    def exchange(self, url_method: str, body: Body, auth: AuthContext, request_id: str) -> Reply:
        """``POST {prefix}/{method}/exchange``: one exchange, a producer continuation, or cancel."""
        info = self.server.methods.get(url_method)
        if info is None:
            raise RequestRefusedError(
                404,
                f"Unknown method: {url_method!r}. Available methods: {sorted(self.server.methods)}",
                error_kind="method_not_implemented",
            )
        if not info.is_stream:
            raise RequestRefusedError(
                400, f"{url_method}() is not a stream method; it has no /exchange"
            )
        channel = _MemoryChannel(body)
        batch, metadata = self._input(channel)
        try:
            call, state, turn = self.tokens.open(
                metadata.get(k.STREAM_STATE_KEY), metadata.get(k.CALL_STATE_KEY), info.name, auth
            )
        except TokenError as exc:
            raise RequestRefusedError(400, str(exc)) from None
        user_metadata = {key: v for key, v in metadata.items() if key not in _TOKEN_KEYS}
        record = self.server._start_record(info, request_id, batch)
        if k.CANCEL_KEY in user_metadata:
            return self._cancel(info, call, state, channel, auth, request_id, record)
        output = StreamWriter(channel, call.output_schema)
        if isinstance(state, ProducerState):
            return self._produce(
                info, call, state, channel, output, auth, request_id, record, None, turn + 1
            )
        assert isinstance(state, ExchangeState)
        received = AnnotatedBatch(batch, user_metadata or None)
        return self._exchange(
            info, call, state, received, channel, output, auth, request_id, record, turn + 1
        )

    def _input(self, channel: _MemoryChannel) -> tuple[pa.RecordBatch, Metadata]:
        try:
            reader = self.server.read_policy.for_body(channel.body_size).open(channel.reader)
            if reader is None:
                raise RequestRefusedError(
                    400, "request body is empty; expected an Arrow IPC stream"
                )
            item = reader.read(self.server.ipc_validation)
            if item is None:
                raise RequestRefusedError(
                    400, "exchange request holds no batch; expected exactly one"
                )
            if reader.drain():
                raise RequestRefusedError(400, "exchange request holds more than one batch")
        except (IPCError, TransportError) as exc:
            raise RequestRefusedError(
                400, f"request body is not a valid Arrow IPC stream: {exc}"
            ) from None
        batch, metadata = item
        return batch, metadata or {}

    def _context_for_turns(
        self, info: RpcMethodInfo, request_id: str, auth: AuthContext
    ) -> tuple[list[OutputCollector], object]:
        turn: list[OutputCollector] = []
        ctx = self.server.make_context(
            info.name, request_id, lambda lv, msg, ex: turn[-1].log_sink(lv, msg, ex), auth
        )
        return turn, ctx

    def _produce(
        self,
        info: RpcMethodInfo,
        call: Call,
        state: ProducerState,
        channel: _MemoryChannel,
        output: StreamWriter,
        auth: AuthContext,
        request_id: str,
        record: CallRecord | None,
        call_token: bytes | None,
        next_turn: int,
    ) -> Reply:
        """Run producer ticks until it finishes or the body reaches the cap, then hand a cursor."""
        stream = _StreamView.of(call, state)
        turn, ctx = self._context_for_turns(info, request_id, auth)
        cap = self.max_response_bytes
        tick = AnnotatedBatch(empty_batch(EMPTY_SCHEMA))
        try:
            while True:
                out = OutputCollector(call.output_schema)
                turn[:] = [out]
                _run_turn(info, stream, tick, out, ctx, record)  # type: ignore[arg-type]  # duck-typed Stream
                _write_turn(self.server, output, out, record, request_id)
                output.flush()
                if out.finished:
                    break
                if cap is None or channel.size >= cap:
                    cursor = self.tokens.mint_cursor(call, state, auth, next_turn)
                    tokens = {k.STREAM_STATE_KEY: cursor}
                    if call_token is not None:
                        tokens[k.CALL_STATE_KEY] = call_token
                    output.write(empty_batch(call.output_schema), tokens)
                    break
        except Exception as exc:
            return self._stream_failed(info, exc, channel, output, call, request_id, record, auth)
        return _finish(channel, output, record)

    def _exchange(
        self,
        info: RpcMethodInfo,
        call: Call,
        state: ExchangeState,
        received: AnnotatedBatch,
        channel: _MemoryChannel,
        output: StreamWriter,
        auth: AuthContext,
        request_id: str,
        record: CallRecord | None,
        next_turn: int,
    ) -> Reply:
        turn, ctx = self._context_for_turns(info, request_id, auth)
        out = OutputCollector(call.output_schema)
        turn[:] = [out]
        try:
            _run_turn(info, _StreamView.of(call, state), received, out, ctx, record)  # type: ignore[arg-type]  # duck-typed Stream
            emitted = out.batch
            assert emitted is not None  # _run_turn insists on one batch per exchange
            metadata = emitted.metadata_dict() or {}
            metadata[k.STREAM_STATE_KEY] = self.tokens.mint_cursor(call, state, auth, next_turn)
            out._batch = AnnotatedBatch(emitted.batch, metadata)
            _write_turn(self.server, output, out, record, request_id)
            output.flush()
            cap = self.max_response_bytes
            if cap is not None and channel.size > cap:
                raise RuntimeError(
                    f"{info.name}() exchange response of {channel.size} bytes exceeds the "
                    f"server's max_response_bytes ({cap})"
                )
        except Exception as exc:
            return self._stream_failed(info, exc, channel, output, call, request_id, record, auth)
        return _finish(channel, output, record)

    def _stream_failed(
        self,
        info: RpcMethodInfo,
        exc: Exception,
        channel: _MemoryChannel,
        output: StreamWriter,
        call: Call,
        request_id: str,
        record: CallRecord | None,
        auth: AuthContext,
    ) -> Reply:
        self.server.log_method_error(info.name, exc)
        if self.max_response_bytes is not None and channel.size > self.max_response_bytes:
            # The partial body is over the cap already: answer with the error alone.
            return self._error_reply(200, exc, request_id, call.output_schema)
        output.write(
            empty_batch(call.output_schema), self.server.error_metadata(exc, request_id, auth)
        )
        return _finish(channel, output, record, exc)

    def _cancel(
        self,
        info: RpcMethodInfo,
        call: Call,
        state: StreamState,
        channel: _MemoryChannel,
        auth: AuthContext,
        request_id: str,
        record: CallRecord | None,
    ) -> Reply:
        ctx = self.server.make_context(info.name, request_id, lambda lv, msg, ex: None, auth)
        try:
            state.on_cancel(ctx)
        except Exception:
            _log.debug(
                "%s(): on_cancel failed; ignored as the spec requires", info.name, exc_info=True
            )
        if record is not None:
            record.cancelled = True
        return _finish(channel, StreamWriter(channel, call.output_schema), record)


class _StreamView(NamedTuple):
    """The ``Stream`` fields ``_run_turn`` reads, rebuilt from a token."""

    output_schema: pa.Schema
    state: StreamState
    input_schema: pa.Schema

    @classmethod
    def of(cls, call: Call, state: StreamState) -> _StreamView:
        return cls(call.output_schema, state, call.input_schema)


def _problem_exception(problem: RequestRefusedError) -> Exception:
    """The exception an HTTP refusal is reported as inside its Arrow error batch."""
    if problem.status == 404:
        return MethodNotImplementedError(problem.message)
    if problem.status == 415:
        return TypeError(problem.message)
    return ProtocolError(problem.message)


__all__ = ["HttpDispatcher", "Reply"]
