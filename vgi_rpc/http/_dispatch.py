"""RPC over HTTP requests: unary calls, stream ``/init`` and ``/exchange`` turns.

Every request body is a complete IPC stream and every answer is one or two
complete IPC streams. Calls run through the server's public call step
(``RpcServer.start_call`` / ``resume_stream``) exactly as on byte streams;
this module only adds what HTTP needs: status codes, a response cap, and
stream state carried in sealed tokens between requests (``_tokens.TokenBook``),
so any process holding the key can serve any turn.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa

from vgi_rpc._errors import (
    IPCError,
    MethodNotImplementedError,
    ProtocolError,
    ProtocolNotSupportedError,
    SchemaError,
    TransportError,
)
from vgi_rpc._http_errors import ResponseTooLargeError
from vgi_rpc._ipc import Chunk, Metadata, StreamWriter
from vgi_rpc._ipc_reader import memory_source
from vgi_rpc._logs import HTTP_LOGGER
from vgi_rpc.http._refusal import RequestRefusedError
from vgi_rpc.http._tokens import Call, TokenBook, TokenError
from vgi_rpc.rpc import (
    AuthContext,
    Batch,
    Builtin,
    Handler,
    Reply,
    Request,
    RpcServer,
    ServerStream,
    read_request,
)
from vgi_rpc.wire import EMPTY_SCHEMA, empty_batch
from vgi_rpc.wire import keys as k

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalBudget

_log = logging.getLogger(HTTP_LOGGER)
_TOKEN_KEYS = (k.STREAM_STATE_KEY, k.CALL_STATE_KEY, k.TRACEPARENT_KEY, k.TRACESTATE_KEY)
Body = bytes | bytearray | pa.Buffer


class Route(NamedTuple):
    """Where a request was sent: the method, the protocol (second generation), the caps.

    ``max_external_bytes`` caps what one response may upload to external storage.
    """

    method: str
    protocol: str | None = None
    max_response_bytes: int | None = None
    max_external_bytes: int | None = None


class HttpReply(NamedTuple):
    """An HTTP answer: status, body chunks, and whether the body carries a method error."""

    status: int
    body: list[Chunk]
    rpc_error: bool = False


class _MemoryChannel:
    """A ``Channel`` over one request body, collecting what the server writes."""

    def __init__(self, body: Body) -> None:
        self.body_size = len(body)
        self._reader = memory_source(body)
        self.chunks: list[Chunk] = []
        self.size = 0

    @property
    def reader(self) -> io.BufferedReader:
        return self._reader

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        for chunk in chunks:
            self.chunks.append(chunk)
            self.size += memoryview(chunk).nbytes

    def write_reply(self, reply: Reply) -> None:
        if reply.wire is not None:  # a small flat result, encoded straight from its value
            self.write_chunks((reply.wire,))
            return
        writer = StreamWriter(self, reply.schema)
        _write(writer, reply.batches)
        writer.close()

    def peer_failure(self, detail: str) -> TransportError:
        return TransportError(f"request body ended early: {detail}")

    def close(self) -> None:
        pass


def _write(writer: StreamWriter, batches: list[Batch]) -> None:
    for batch, metadata in batches:
        writer.write(batch, metadata)


class HttpDispatcher:
    """Answers RPC requests for one ``RpcServer`` (no HTTP framework here).

    Each request's ``Route`` carries its response cap: soft for first-generation
    producers (continuation tokens), hard for everything else.

    Args:
        server: The routing and dispatch core.
        tokens: Mints and opens stream tokens.
    """

    def __init__(self, server: RpcServer, tokens: TokenBook) -> None:
        self.server = server
        self.tokens = tokens

    # -- shared front half ------------------------------------------------

    def _budget(self, route: Route) -> ExternalBudget | None:
        """What this response may upload to external storage (``None``: no cap)."""
        if route.max_external_bytes is None or self.server.external is None:
            return None
        from vgi_rpc.external import ExternalBudget

        return ExternalBudget(route.max_external_bytes)

    def _error_reply(
        self, status: int, exc: BaseException, request_id: str, schema: pa.Schema = EMPTY_SCHEMA
    ) -> HttpReply:
        channel = _MemoryChannel(b"")
        channel.write_reply(self.server.refusal(exc, request_id, schema))
        return HttpReply(status, channel.chunks, status == 200)

    def refusal_reply(self, problem: RequestRefusedError, request_id: str) -> HttpReply:
        """A 4xx answer whose body is an Arrow error stream."""
        return self._error_reply(problem.status, _problem_exception(problem), request_id)

    def _request(self, channel: _MemoryChannel, url_method: str, protocol: str | None) -> Request:
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
        if protocol is not None and request.metadata.get(k.PROTOCOL_KEY) != protocol.encode():
            raise RequestRefusedError(
                400,
                "the URL's protocol and the request's vgi_rpc.protocol differ",
                error_kind="protocol_not_supported",
            )
        return request

    def _route(self, request: Request) -> Handler | Builtin:
        try:
            return self.server.route(request)
        except MethodNotImplementedError as exc:
            raise RequestRefusedError(404, str(exc), error_kind="method_not_implemented") from None
        except ProtocolNotSupportedError as exc:
            raise RequestRefusedError(404, str(exc), error_kind="protocol_not_supported") from None
        except ProtocolError as exc:
            raise RequestRefusedError(400, str(exc)) from None

    # -- unary --------------------------------------------------------------

    def unary(self, route: Route, body: Body, auth: AuthContext, request_id: str) -> HttpReply:
        """``POST {prefix}[/{protocol}]/{method}``."""
        url_method, protocol = route.method, route.protocol
        channel = _MemoryChannel(body)
        request = self._request(channel, url_method, protocol)
        target = self._route(request)
        if isinstance(target, Handler) and target.info.is_stream:
            name = target.info.name
            raise RequestRefusedError(
                400, f"{name}() is a stream method; start it with POST .../{name}/init"
            )
        start = self.server.start_call(
            request, auth=auth, target=target, external_budget=self._budget(route)
        )
        for reply in start.replies:
            channel.write_reply(reply)
        failed = any(reply.error is not None for reply in start.replies)
        cap = route.max_response_bytes
        if cap is not None and channel.size > cap and isinstance(target, Handler):
            overshoot = RuntimeError(
                f"{target.info.name}() response of {channel.size} bytes exceeds the server's "
                f"max_response_bytes ({cap})"
            )
            return self._error_reply(200, overshoot, request_id, target.info.result_schema)
        return HttpReply(start.status, channel.chunks, failed and start.status == 200)

    # -- streams ------------------------------------------------------------

    def init(self, route: Route, body: Body, auth: AuthContext, request_id: str) -> HttpReply:
        """``POST .../{method}/init``: header (if any), then the first output."""
        url_method, protocol = route.method, route.protocol
        channel = _MemoryChannel(body)
        request = self._request(channel, url_method, protocol)
        target = self._route(request)
        if not isinstance(target, Handler) or not target.info.is_stream:
            raise RequestRefusedError(
                400, f"{url_method}() is not a stream method; call it with POST .../{url_method}"
            )
        start = self.server.start_call(request, auth=auth, target=target)
        stream = start.stream
        if stream is None:  # refused, or the method failed to open its stream
            for reply in start.replies:
                channel.write_reply(reply)
            return HttpReply(start.status, channel.chunks, start.status == 200)
        try:
            call, call_token = self.tokens.mint_call(
                _qualified(protocol, url_method),
                type(stream.state),
                stream.output_schema,
                stream.input_schema,
                stream.stream_id,
                auth,
            )
        except Exception as exc:
            if isinstance(exc, SchemaError):
                exc = SchemaError(
                    f"{url_method}(): its stream state cannot travel over HTTP: {exc}"
                )
            stream.server.log_method_error(url_method, exc)
            logs = [md for reply in start.replies for _, md in reply.batches[:-1]]
            logs += [md for _, md in stream.pending_logs]
            logs.append(self.server.error_metadata(exc, request_id, auth))
            carrier = empty_batch(EMPTY_SCHEMA)
            channel.write_reply(Reply(EMPTY_SCHEMA, [(carrier, md) for md in logs]))
            stream.finish(exc)
            return HttpReply(200, channel.chunks, True)
        for reply in start.replies:
            channel.write_reply(reply)
        stream.external_budget = self._budget(route)
        output = StreamWriter(channel, stream.output_schema)
        _write(output, stream.pending_logs)
        if stream.is_producer:
            return self._produce(route, stream, call, channel, output, auth, call_token, 0, None)
        try:
            cursor = self.tokens.mint_cursor(call, stream.state, auth, 0)
        except Exception as exc:  # the state no longer fits its own field types
            return self._stream_failed(route, stream, exc, channel, output, call)
        tokens = {k.STREAM_STATE_KEY: cursor, k.CALL_STATE_KEY: call_token}
        output.write(empty_batch(stream.output_schema), tokens)
        return self._finish(channel, output, stream)

    def exchange(self, route: Route, body: Body, auth: AuthContext, request_id: str) -> HttpReply:
        """``POST .../{method}/exchange``: one exchange, a producer continuation, or cancel."""
        url_method, protocol = route.method, route.protocol
        handler = self.server.handler(protocol, url_method)
        if handler is None:
            if protocol is not None and protocol not in self.server.hosted:
                raise RequestRefusedError(
                    404,
                    f"this server does not host protocol {protocol!r}",
                    error_kind="protocol_not_supported",
                )
            raise RequestRefusedError(
                404,
                f"Unknown method: {url_method!r}. Available methods: {sorted(self.server.methods)}",
                error_kind="method_not_implemented",
            )
        if not handler.info.is_stream:
            raise RequestRefusedError(
                400, f"{url_method}() is not a stream method; it has no /exchange"
            )
        channel = _MemoryChannel(body)
        batch, metadata = self._input(channel)
        try:
            call, state, turn = self.tokens.open(
                metadata.get(k.STREAM_STATE_KEY),
                metadata.get(k.CALL_STATE_KEY),
                _qualified(protocol, url_method),
                auth,
            )
        except TokenError as exc:
            raise RequestRefusedError(400, str(exc)) from None
        user_metadata = {key: v for key, v in metadata.items() if key not in _TOKEN_KEYS}
        stream = self.server.resume_stream(
            handler,
            state,
            call.output_schema,
            call.input_schema,
            request_id,
            auth=auth,
            batch=batch,
            metadata=metadata,
            stream_id=call.stream_id,
        )
        stream.external_budget = self._budget(route)
        if k.CANCEL_KEY in user_metadata:
            stream.cancel()
            return self._finish(channel, StreamWriter(channel, call.output_schema), stream)
        output = StreamWriter(channel, call.output_schema)
        if stream.is_producer:
            tick_metadata = (user_metadata or None) if protocol is not None else None
            return self._produce(
                route, stream, call, channel, output, auth, None, turn + 1, tick_metadata
            )
        return self._exchange(
            route, stream, call, batch, user_metadata, channel, output, auth, turn + 1
        )

    def _input(self, channel: _MemoryChannel) -> tuple[pa.RecordBatch, Metadata]:
        policy = self.server.read_policy.for_body(channel.body_size)
        try:
            reader = policy.open(channel.reader)
            if reader is None:
                raise RequestRefusedError(
                    400, "request body is empty; expected an Arrow IPC stream"
                )
            item = reader.read(policy.validation)
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

    def _produce(
        self,
        route: Route,
        stream: ServerStream,
        call: Call,
        channel: _MemoryChannel,
        output: StreamWriter,
        auth: AuthContext,
        call_token: bytes | None,
        next_turn: int,
        tick_metadata: Metadata | None,
    ) -> HttpReply:
        """Run producer ticks until it finishes or the body reaches the cap, then hand a cursor.

        A second-generation stream runs lockstep: one data batch per response.
        """
        cap = route.max_response_bytes
        lockstep = route.protocol is not None
        tick = empty_batch(EMPTY_SCHEMA)
        while True:
            before = channel.size
            turn = stream.turn(tick, tick_metadata)
            if turn.error is not None:
                _write(output, turn.logs)
                return self._stream_failed(route, stream, turn.error, channel, output, call)
            _write(output, turn.batches)
            output.flush()
            if lockstep and cap is not None and channel.size > cap and turn.data is not None:
                too_large = ResponseTooLargeError(
                    f"{stream.info.name}(): one produced batch of {channel.size - before} bytes "
                    f"exceeds the response limit of {cap} bytes (max_response_bytes: the "
                    "server's cap, lowered by the client's VGI-Accept-Max-Response-Bytes)"
                )
                return self._stream_failed(route, stream, too_large, channel, output, call)
            if turn.finished:
                break
            if lockstep or cap is None or channel.size >= cap:
                try:
                    cursor = self.tokens.mint_cursor(call, stream.state, auth, next_turn)
                except Exception as exc:  # the state no longer fits its own field types
                    return self._stream_failed(route, stream, exc, channel, output, call)
                tokens = {k.STREAM_STATE_KEY: cursor}
                if call_token is not None:
                    tokens[k.CALL_STATE_KEY] = call_token
                output.write(empty_batch(call.output_schema), tokens)
                break
        return self._finish(channel, output, stream)

    def _exchange(
        self,
        route: Route,
        stream: ServerStream,
        call: Call,
        batch: pa.RecordBatch,
        user_metadata: Metadata,
        channel: _MemoryChannel,
        output: StreamWriter,
        auth: AuthContext,
        next_turn: int,
    ) -> HttpReply:
        turn = stream.turn(batch, user_metadata or None, externalize=False)
        if turn.error is not None or turn.data is None:
            _write(output, turn.logs)
            error = turn.error or ValueError(f"{stream.info.name}(): exchange emitted no batch")
            return self._stream_failed(route, stream, error, channel, output, call)
        data, metadata = turn.data
        tokens = dict(metadata or {})
        try:
            tokens[k.STREAM_STATE_KEY] = self.tokens.mint_cursor(
                call, stream.state, auth, next_turn
            )
            # Externalized with its cursor inside: a reader finds it on the resolved batch.
            batches = self.server.externalize(
                call.output_schema,
                [*turn.logs, (data, tokens)],
                stream.external_budget,
                stream.info.name,
            )
        except Exception as exc:  # the state no longer fits its types, or the upload failed
            _write(output, turn.logs)
            return self._stream_failed(route, stream, exc, channel, output, call)
        _write(output, batches)
        output.flush()
        cap = route.max_response_bytes
        if cap is not None and channel.size > cap:
            overshoot = RuntimeError(
                f"{stream.info.name}() exchange response of {channel.size} bytes exceeds the "
                f"server's max_response_bytes ({cap})"
            )
            stream.server.log_method_error(stream.info.name, overshoot)
            stream.finish(overshoot)
            return self._error_reply(200, overshoot, stream.request_id, call.output_schema)
        return self._finish(channel, output, stream)

    def _stream_failed(
        self,
        route: Route,
        stream: ServerStream,
        exc: Exception,
        channel: _MemoryChannel,
        output: StreamWriter,
        call: Call,
    ) -> HttpReply:
        stream.finish(exc)
        cap = route.max_response_bytes
        if cap is not None and channel.size > cap:
            # The partial body is over the cap already: answer with the error alone.
            return self._error_reply(200, exc, stream.request_id, call.output_schema)
        metadata = self.server.error_metadata(exc, stream.request_id, stream.auth)
        output.write(empty_batch(call.output_schema), metadata)
        output.close()
        return HttpReply(200, channel.chunks, True)

    @staticmethod
    def _finish(channel: _MemoryChannel, output: StreamWriter, stream: ServerStream) -> HttpReply:
        """End the output stream and the call's access record."""
        output.close()
        stream.finish()
        return HttpReply(200, channel.chunks)


def _qualified(protocol: str | None, method: str) -> str:
    """The method name a stream token is bound to (protocol-qualified when routed)."""
    return method if protocol is None else f"{protocol}/{method}"


def _problem_exception(problem: RequestRefusedError) -> Exception:
    """The exception an HTTP refusal is reported as inside its Arrow error batch."""
    if problem.error_kind == "protocol_not_supported":
        return ProtocolNotSupportedError(problem.message)
    if problem.status == 404:
        return MethodNotImplementedError(problem.message)
    if problem.status == 415:
        return TypeError(problem.message)
    return ProtocolError(problem.message)


__all__ = ["HttpDispatcher", "HttpReply", "ResponseTooLargeError", "Route"]
