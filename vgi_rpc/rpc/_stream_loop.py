"""Serving over a byte stream (pipe, subprocess, sockets): the call step, framed as IPC streams.

Reads each request, hands it to the server's call step, writes the
replies; a stream then runs lockstep (spec section 9): one input batch in,
logs and one output batch out, until the client's input ends. Shared
memory, when the client advertised a segment, is applied here: large
batches travel as pointers in both directions.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from vgi_rpc._errors import IPCError, TransportError
from vgi_rpc._ipc import SMALL_BATCH_BYTES, Metadata, StreamWriter
from vgi_rpc._ipc_reader import IpcStreamReader, ReadPolicy
from vgi_rpc._logs import RPC_LOGGER, WIRE_STREAM_LOGGER, lazy_logger
from vgi_rpc.rpc._channel import SHM_MIN_BATCH_BYTES, Channel
from vgi_rpc.rpc._quick_request import read_plain_request
from vgi_rpc.rpc._request import Request, drain_stream, read_request
from vgi_rpc.rpc._shm_inbound import InboundShm, ReleaseBeforeSend
from vgi_rpc.rpc._step import Batch, CallStart, Reply, Turn
from vgi_rpc.wire import EMPTY_SCHEMA, empty_batch, new_request_id

if TYPE_CHECKING:
    from vgi_rpc.rpc._context import AuthContext
    from vgi_rpc.rpc._server_stream import ServerStream
    from vgi_rpc.shm import ShmSegment

_log = lazy_logger(RPC_LOGGER)
_stream_log = lazy_logger(WIRE_STREAM_LOGGER)

# Smaller turn outputs are written and sent at once (below any shared-memory pointer's size).
_INLINE_BYTES = min(SMALL_BATCH_BYTES, SHM_MIN_BATCH_BYTES)

Forward = tuple[pa.RecordBatch, int, int]  # an input read from shared memory, its offset, length


if TYPE_CHECKING:  # a Protocol for type checkers only: see ByteSink in vgi_rpc._ipc

    class ByteStreamServer(Protocol):
        """What serving a byte stream needs from the server (``RpcServer``)."""

        read_policy: ReadPolicy

        @property
        def protocol_name(self) -> str:
            """The default protocol's name (for log lines)."""
            ...

        def start_call(self, request: Request, *, auth: AuthContext | None = None) -> CallStart:
            """Serve a request up to its replies."""
            ...

        def protocol_error_metadata(self, exc: BaseException, request_id: str) -> Metadata:
            """Metadata of an error in the request itself."""
            ...


def serve_byte_stream(server: ByteStreamServer, channel: Channel, shm: InboundShm) -> None:
    """Answer requests on ``channel`` until the peer closes it (or sends unframeable bytes)."""
    try:
        while serve_one(server, channel, shm):
            pass
    except TransportError as exc:
        _log.info("%s: connection ended: %s", server.protocol_name, exc)
    except IPCError as exc:
        _log.error("%s: closing connection after malformed input: %s", server.protocol_name, exc)
        writer = StreamWriter(channel, EMPTY_SCHEMA)
        writer.write(
            empty_batch(EMPTY_SCHEMA), server.protocol_error_metadata(exc, new_request_id())
        )
        with contextlib.suppress(TransportError):
            writer.close()
    finally:
        shm.end()


def serve_one(server: ByteStreamServer, channel: Channel, shm: InboundShm) -> bool:
    """Answer one request; ``False`` when the channel reached end of file."""
    request = read_plain_request(channel.reader, server.read_policy) or read_request(
        channel, server.read_policy
    )
    if request is None:
        return False
    try:
        segment = shm.segment(request.metadata)
        release = None
        if request.row is None:  # a one-row request is never a shared-memory pointer
            batch, metadata, release = shm.resolve(request.batch, request.metadata, segment)
            if batch is not request.batch:
                request = Request(batch, metadata or {}, request.extra_batches, request.rejected)
    except IPCError as exc:  # the stream was read whole: answer and keep serving
        _serve(server, channel, _with(request, rejected=request.rejected or exc), None, None)
        return True
    if segment is None:
        _serve(server, channel, request, None, shm)
        return True
    # Large results go to the client's segment; the request's allocation is
    # freed before the first response byte leaves.
    guarded = ReleaseBeforeSend(channel, release or _no_release)
    try:
        _serve(server, channel=guarded, request=request, segment=segment, shm=shm)
    finally:
        guarded.release()
    return True


def _no_release() -> None:
    pass


def _with(request: Request, *, rejected: IPCError) -> Request:
    return Request(request.row or request.batch, request.metadata, request.extra_batches, rejected)


def _serve(
    server: ByteStreamServer,
    channel: Channel,
    request: Request,
    segment: ShmSegment | None,
    shm: InboundShm | None,
) -> None:
    start = server.start_call(request)
    for reply in start.replies:
        _write_reply(channel, reply, segment)
    if start.drain_input:
        drain_stream(channel, server.read_policy)
    if start.stream is not None:
        _run_stream(server.read_policy, channel, start.stream, segment, shm)


def _write_reply(channel: Channel, reply: Reply, segment: ShmSegment | None) -> None:
    if reply.wire is not None:  # small: never worth a shared-memory pointer
        channel.write_chunks((reply.wire,))
        return
    writer = StreamWriter(channel, reply.schema)
    for batch, metadata in reply.batches:
        writer.write(*_maybe_pointer(segment, batch, metadata))
    writer.close()


def _maybe_pointer(
    segment: ShmSegment | None, batch: pa.RecordBatch, metadata: Metadata | None
) -> tuple[pa.RecordBatch, Metadata | None]:
    """``to_pointer``, whose module (and shared memory's) loads once a segment exists."""
    if segment is None:
        return batch, metadata
    from vgi_rpc.rpc._shm_pointer import to_pointer

    return to_pointer(segment, batch, metadata)


def _run_stream(
    policy: ReadPolicy,
    channel: Channel,
    stream: ServerStream,
    segment: ShmSegment | None,
    shm: InboundShm | None,
) -> None:
    """Lockstep turns until the client's input ends, the stream finishes, or it fails."""
    name = stream.info.name
    input_reader = policy.open(channel.reader)
    if input_reader is None:
        raise TransportError(f"client closed the channel before sending input for {name}()")
    output = StreamWriter(channel, stream.output_schema)
    for batch, metadata in stream.pending_logs:
        output.write(batch, metadata)
    error: Exception | None = None
    try:
        error = _turns(policy, stream, input_reader, output, segment, shm)
    except TransportError as exc:
        stream.finish(exc)  # the call's record (access log, observers) still ends
        raise
    except IPCError as exc:  # unreadable input: report it, then end the connection
        error = exc
        _write_batches(output, stream.fail(exc).batches)
    output.close()
    stream.finish(error)
    if isinstance(error, IPCError):
        raise error  # the input byte stream cannot be resynchronised
    input_reader.drain()
    _stream_log.debug("%s(): stream closed", name)


def _turns(
    policy: ReadPolicy,
    stream: ServerStream,
    input_reader: IpcStreamReader,
    output: StreamWriter,
    segment: ShmSegment | None,
    shm: InboundShm | None,
) -> Exception | None:
    validation = policy.validation
    # Batches read with the declared input schema need no check each (nor a cast).
    conformed = input_reader.schema.equals(stream.input_schema)
    while True:
        item = input_reader.read(validation)
        if item is None:
            return None
        batch, metadata = item
        if not metadata:  # neither a pointer nor a cancel: the common turn
            answer = stream.answer(batch, conformed=conformed)
            if isinstance(answer, Turn):
                turn = answer
            else:  # a plain output batch
                size = answer.get_total_buffer_size()
                if size < _INLINE_BYTES:  # never a pointer: out in one write
                    output.send(answer, size)
                    continue
                turn = Turn([], data=(answer, None))
            _write_turn(output, turn, segment, None)
            if turn.finished:
                return turn.error
            output.flush()
            continue
        release = None
        forward: Forward | None = None
        forwarded = False
        if shm is not None:
            pointed = metadata
            batch, metadata, release = shm.resolve(batch, metadata, segment)
            if metadata is not pointed:
                from vgi_rpc.rpc._shm_pointer import pointer_range

                forward = (batch, *pointer_range(pointed))
        try:
            turn = stream.turn(batch, metadata)
            forwarded = _write_turn(output, turn, segment, forward)
        finally:
            if release is not None and not forwarded:
                release()  # the input was used; its shared-memory allocation can go
        if turn.finished:
            return turn.error  # the caller's close() sends what is pending with the EOS marker
        output.flush()


def _write_turn(
    output: StreamWriter, turn: Turn, segment: ShmSegment | None, forward: Forward | None
) -> bool:
    """Queue one turn (sent by the caller's flush or close); a large data batch goes by pointer.

    An output that IS this turn's input read from the segment is not copied:
    the pointer names the input's allocation, which the client now frees.
    Returns whether that happened (then the input must not be freed here).
    """
    _write_batches(output, turn.logs)
    if turn.data is None:
        if turn.error_batch is not None:
            output.write(*turn.error_batch)
        return False
    batch, metadata = turn.data
    if forward is not None and batch is forward[0]:
        from vgi_rpc.rpc._shm_pointer import pointer_to

        output.write(*pointer_to(batch.schema, forward[1], forward[2], metadata))
        return True
    output.write(*_maybe_pointer(segment, batch, metadata))
    return False


def _write_batches(output: StreamWriter, batches: list[Batch]) -> None:
    for batch, metadata in batches:
        output.write(batch, metadata)


__all__ = ["serve_byte_stream", "serve_one"]
