"""The server side of a lockstep stream (spec section 9), for every byte-stream transport.

Owns: init (header or init error), the turn loop (tick or input -> logs +
one batch), cancel, errors mid-stream, and draining the client's input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from vgi_rpc._dataclasses import ArrowSerializableDataclass
from vgi_rpc._errors import IPCError, TransportError
from vgi_rpc._ipc import StreamWriter
from vgi_rpc._ipc_reader import IpcStreamReader
from vgi_rpc._logs import WIRE_STREAM_LOGGER, Level
from vgi_rpc._methods import RpcMethodInfo
from vgi_rpc.rpc._accounting import CallRecord
from vgi_rpc.rpc._channel import Channel
from vgi_rpc.rpc._context import CallContext
from vgi_rpc.rpc._request import drain_stream
from vgi_rpc.rpc._shm_inbound import InboundShm
from vgi_rpc.rpc._shm_pointer import pointer_range, pointer_to, to_pointer
from vgi_rpc.rpc._streams import (
    AnnotatedBatch,
    ExchangeState,
    OutputCollector,
    ProducerState,
    Stream,
)
from vgi_rpc.wire import _keys as k
from vgi_rpc.wire._codec import EMPTY_SCHEMA, empty_batch

if TYPE_CHECKING:
    from vgi_rpc.rpc._server import RpcServer
    from vgi_rpc.shm import ShmSegment

_log = logging.getLogger(WIRE_STREAM_LOGGER)

PendingLog = tuple[Level, str, dict[str, object] | None]
Inbound = tuple[InboundShm, "ShmSegment | None"]
Forward = tuple[pa.RecordBatch, int, int]  # an input read from shared memory, its offset, length


def _open(info: RpcMethodInfo, stream: object) -> Stream[ProducerState | ExchangeState]:
    if not isinstance(stream, Stream):
        raise TypeError(f"{info.name}() must return a Stream, got {type(stream).__name__}")
    if not isinstance(stream.state, ProducerState | ExchangeState):
        raise TypeError(
            f"{info.name}(): Stream.state must be a ProducerState or ExchangeState, "
            f"got {type(stream.state).__name__}"
        )
    if info.header_type is not None and not isinstance(stream.header, info.header_type):
        raise TypeError(
            f"{info.name}(): the Protocol declares a {info.header_type.__name__} header, "
            f"got {type(stream.header).__name__}"
        )
    return stream


def _header_batch(header: object) -> pa.RecordBatch:
    assert isinstance(header, ArrowSerializableDataclass)  # _open checked the declared type
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


def serve_stream(
    server: RpcServer,
    channel: Channel,
    info: RpcMethodInfo,
    invoke: Callable[[CallContext], object],
    request_id: str,
    record: CallRecord | None = None,
    inbound: Inbound | None = None,
) -> None:
    """Run one stream from init to the end of the client's input.

    ``inbound`` resolves input batches the client placed in shared memory.
    """
    init_logs: list[PendingLog] = []
    ctx = server.make_context(
        info.name, request_id, lambda lv, msg, ex: init_logs.append((lv, msg, ex))
    )
    try:
        stream = _open(info, invoke(ctx))
        header = _header_batch(stream.header) if info.header_type is not None else None
    except Exception as exc:
        server.log_method_error(info.name, exc)
        writer = StreamWriter(channel, EMPTY_SCHEMA)
        server.write_logs(writer, EMPTY_SCHEMA, init_logs, request_id)
        writer.write(empty_batch(EMPTY_SCHEMA), server.error_metadata(exc, request_id))
        writer.close()
        # Without a header the client has already committed to sending an input stream.
        if info.header_type is None:
            drain_stream(channel, server.read_policy)
        if record is not None:
            record.finish(exc)
        return
    _log.debug("%s(): stream opened (%s)", info.name, type(stream.state).__name__)
    if header is not None:
        writer = StreamWriter(channel, header.schema)
        server.write_logs(writer, header.schema, init_logs, request_id)
        writer.write(header)
        writer.close()
    input_reader = server.read_policy.open(channel.reader)
    if input_reader is None:
        raise TransportError(f"client closed the channel before sending input for {info.name}()")
    output = StreamWriter(channel, stream.output_schema)
    server.write_logs(output, stream.output_schema, init_logs, request_id)
    error: Exception | None = None
    try:
        _turns(server, info, stream, input_reader, output, request_id, record, inbound)
    except TransportError:
        raise
    except Exception as exc:
        error = exc
        server.log_method_error(info.name, exc)
        output.write(empty_batch(stream.output_schema), server.error_metadata(exc, request_id))
    output.close()
    if record is not None:
        record.finish(error)
    if isinstance(error, IPCError):
        raise error  # the input byte stream cannot be resynchronised
    input_reader.drain()
    _log.debug("%s(): stream closed", info.name)


def _turns(
    server: RpcServer,
    info: RpcMethodInfo,
    stream: Stream[ProducerState | ExchangeState],
    input_reader: IpcStreamReader,
    output: StreamWriter,
    request_id: str,
    record: CallRecord | None,
    inbound: Inbound | None,
) -> None:
    # One context for the whole stream; its log sink feeds the current turn's collector.
    turn: list[OutputCollector] = []
    ctx = server.make_context(
        info.name, request_id, lambda lv, msg, ex: turn[-1].log_sink(lv, msg, ex)
    )
    while True:
        item = input_reader.read(server.ipc_validation)
        if item is None:
            return
        batch, metadata = item
        release = None
        forward: Forward | None = None
        forwarded = False
        if inbound is not None:
            pointed = metadata
            batch, metadata, release = inbound[0].resolve(batch, metadata, inbound[1])
            if pointed is not None and metadata is not pointed:
                forward = (batch, *pointer_range(pointed))
        try:
            if metadata is not None and k.CANCEL_KEY in metadata:
                _log.debug("%s(): cancelled by the client", info.name)
                if record is not None:
                    record.cancelled = True
                _cancel(server, info, stream.state, request_id)
                return
            out = OutputCollector(stream.output_schema)
            turn[:] = [out]
            _run_turn(info, stream, AnnotatedBatch(batch, metadata), out, ctx, record)
            forwarded = _write_turn(server, output, out, record, request_id, inbound, forward)
        finally:
            if release is not None and not forwarded:
                release()  # the input was used; its shared-memory allocation can go
        if out.finished:
            return  # the caller's close() sends what is pending with the end-of-stream marker
        output.flush()


def _run_turn(
    info: RpcMethodInfo,
    stream: Stream[ProducerState | ExchangeState],
    received: AnnotatedBatch,
    out: OutputCollector,
    ctx: CallContext,
    record: CallRecord | None,
) -> None:
    state = stream.state
    if isinstance(state, ExchangeState):
        batch = conform_input(received.batch, stream.input_schema, info.name)
        if record is not None:
            record.stats.record_input(batch)
        state.exchange(AnnotatedBatch(batch, received.custom_metadata), out, ctx)
        if out.batch is None:
            raise ValueError(f"{info.name}(): exchange() must emit exactly one batch per input")
    else:
        state.produce(out, ctx)
        if out.batch is None and not out.finished:
            raise ValueError(f"{info.name}(): produce() must emit a batch or call finish()")


def _write_turn(
    server: RpcServer,
    output: StreamWriter,
    out: OutputCollector,
    record: CallRecord | None,
    request_id: str,
    inbound: Inbound | None = None,
    forward: Forward | None = None,
) -> bool:
    """Queue one turn's logs, then its data batch (sent by the caller's flush or close).

    A large data batch goes into the client's segment when it advertised one.
    An output that IS this turn's input read from the segment is not copied:
    the pointer names the input's allocation, which the client now frees.
    Returns whether that happened (then the input must not be freed here).
    """
    if out.logs:
        server.write_logs(output, out.output_schema, out.logs, request_id)
    emitted = out.batch
    if emitted is not None:
        if record is not None:
            record.stats.record_output(emitted.batch)
        metadata = emitted.metadata_dict() if emitted.custom_metadata is not None else None
        if forward is not None and emitted.batch is forward[0]:
            output.write(*pointer_to(emitted.batch.schema, forward[1], forward[2], metadata))
            return True
        if inbound is not None and inbound[1] is not None:
            output.write(*to_pointer(inbound[1], emitted.batch, metadata))
        else:
            output.write(emitted.batch, metadata)
    return False


def _cancel(server: RpcServer, info: RpcMethodInfo, state: object, request_id: str) -> None:
    ctx = server.make_context(info.name, request_id, lambda lv, msg, ex: None)
    try:
        state.on_cancel(ctx)  # type: ignore[attr-defined]  # every StreamState has on_cancel
    except Exception:
        _log.debug("%s(): on_cancel failed; ignored as the spec requires", info.name, exc_info=True)


__all__ = ["conform_input", "serve_stream"]
