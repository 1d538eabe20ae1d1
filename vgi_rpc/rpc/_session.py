"""Client side of one open stream: a producer iterated tick by tick, or an exchange.

Lockstep over the connection's channel (spec section 9): one input batch
out, logs and one output batch back; leaving early cancels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Protocol, cast

import pyarrow as pa

from vgi_rpc._errors import ExternalStorageError, IPCError, ProtocolError, RpcError, TransportError
from vgi_rpc._ipc import SMALL_BATCH_BYTES, Metadata, StreamWriter
from vgi_rpc._ipc_reader import IpcStreamReader, IpcValidation, open_stream_reader
from vgi_rpc._logs import WIRE_STREAM_LOGGER
from vgi_rpc._methods import RpcMethodInfo
from vgi_rpc.rpc._channel import Channel
from vgi_rpc.rpc._hosting import wire_name
from vgi_rpc.rpc._shm_auto import AutoShm
from vgi_rpc.rpc._shm_client import ClientShm
from vgi_rpc.rpc._streams import EMPTY_SCHEMA, AnnotatedBatch
from vgi_rpc.rpc._wire_log import describe_batch, wire_batch_log
from vgi_rpc.wire import BatchKind, empty_batch, rpc_error_from_metadata
from vgi_rpc.wire import keys as k

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalRoute

TICK = empty_batch(EMPTY_SCHEMA)
# Refusals made before the server knows which method was called: it cannot know a
# stream's input follows, so it reads that input as the next request and answers it.
UNKNOWN_CALL = frozenset(
    {"method_not_implemented", "protocol_not_supported", "protocol_not_specified"}
)
_stream_log = logging.getLogger(WIRE_STREAM_LOGGER)
Item = tuple[pa.RecordBatch, Metadata | None]  # a batch read from the output stream
_UNREAD: object = object()  # nothing of this turn's answer has been read yet


class SessionConnection(Protocol):
    """What a stream session uses of the connection it runs on (``RpcConnection``)."""

    healthy: bool
    ipc_validation: IpcValidation

    @property
    def channel(self) -> Channel: ...
    @property
    def protocol(self) -> type: ...
    @property
    def external(self) -> ExternalRoute | None: ...
    @property
    def shm(self) -> ClientShm | None: ...
    @property
    def auto_shm(self) -> AutoShm | None: ...

    def send_request(
        self,
        method: str,
        batch: pa.RecordBatch,
        extra: Metadata | None = None,
        schema: pa.Schema | None = None,
    ) -> None: ...

    def read_batch(
        self,
        reader: IpcStreamReader,
        method: str,
        rows: Literal[False] = ...,
        first: tuple[pa.RecordBatch, Metadata | None] | None = None,
    ) -> tuple[BatchKind, pa.RecordBatch, Metadata | None] | None: ...

    def read_response(
        self, method: str
    ) -> tuple[pa.RecordBatch | None, Metadata | None, RpcError | None]: ...

    def _falls_back(self, error: RpcError) -> bool: ...

    def _set_routing(self, routing: str | None) -> None: ...


class StreamSession:
    """A client's view of one open stream.

    Iterate it for a producer stream; call ``exchange`` for an exchange
    stream. Leaving a ``for`` loop or ``with`` block early cancels it.
    """

    def __init__(
        self,
        connection: SessionConnection,
        info: RpcMethodInfo,
        header: object,
        request: tuple[pa.RecordBatch, pa.Schema | None],
    ) -> None:
        self._connection = connection
        self._info = info
        self.header = header
        self._request = request
        self._answered = False  # an output batch has arrived: the stream is running
        self._input: StreamWriter | None = None
        self._input_schema: pa.Schema | None = None
        self._output: IpcStreamReader | None = None
        self._closed = False
        self._finished = False

    @property
    def closed(self) -> bool:
        """Whether the session has ended (finished, closed, cancelled or failed)."""
        return self._closed

    def _send(self, batch: pa.RecordBatch, metadata: Metadata | None = None) -> None:
        writer = self._input
        if writer is None:
            writer = self._input = StreamWriter(self._connection.channel, batch.schema)
            self._input_schema = batch.schema
        elif (
            (expected := self._input_schema) is not None
            and (schema := batch.schema) is not expected
            and not schema.equals(expected)
        ):
            raise TypeError(
                f"{self._info.name}(): every input batch of a stream must have the same schema; "
                f"first was {self._input_schema}, this one is {batch.schema}"
            )
        connection = self._connection
        external = connection.external
        if not metadata and external is None:
            # A small plain input is never a pointer and never grows automatic shared memory.
            size = batch.get_total_buffer_size()
            shm = connection.shm
            if size < SMALL_BATCH_BYTES and (shm is None or size < shm.min_bytes):
                if shm is not None:
                    shm.collect()  # what the server sent into our segment and we dropped
                writer.send(batch, size)
                return
        self._send_general(writer, batch, metadata)

    def _send_general(
        self, writer: StreamWriter, batch: pa.RecordBatch, metadata: Metadata | None
    ) -> None:
        connection = self._connection
        external = connection.external
        if external is not None:
            batch, metadata = external.externalize_request(batch, metadata or {})
        shm = connection.shm
        if shm is not None:
            batch, metadata = shm.outgoing(batch, metadata)
        auto = connection.auto_shm
        if auto is not None:
            auto.saw(batch)  # went inline (or is a pointer): a large one sets up or grows
        writer.write(batch, metadata, flush=True)

    def _receive(self, read: object = _UNREAD) -> AnnotatedBatch:
        """The answer of this turn; ``read``: what was already read of it (``None``: the end)."""
        conn = self._connection
        name = self._info.name
        if self._output is None:
            try:
                self._output = open_stream_reader(conn.channel.reader)
            except TransportError as exc:
                raise conn.channel.peer_failure(f"{name}(): {exc}") from exc
            if self._output is None:
                raise conn.channel.peer_failure(f"{name}(): the server closed the connection")
        if read is _UNREAD:
            item = conn.read_batch(self._output, name)
        elif read is None:
            item = None
        else:
            item = conn.read_batch(self._output, name, first=cast("Item", read))
        if item is None:
            self._finished = True
            raise StopIteration
        kind, batch, metadata = item
        if kind is BatchKind.ERROR:
            error = rpc_error_from_metadata(metadata or {})
            self._finished = self._drain_output()
            raise error
        return AnnotatedBatch(batch, metadata)

    def _drain_output(self) -> bool:
        assert self._output is not None
        while self._connection.read_batch(self._output, self._info.name) is not None:
            pass
        return True

    def _turn(self, batch: pa.RecordBatch, metadata: Metadata | None = None) -> AnnotatedBatch:
        if self._closed:
            raise ProtocolError(f"{self._info.name}(): the stream is closed")
        self._send(batch, metadata)
        return self._complete(batch, metadata, _UNREAD)

    def _plain_turn(self, batch: pa.RecordBatch) -> AnnotatedBatch | None:
        """A turn of a running stream with a small plain input; ``None`` (nothing sent) otherwise.

        The answer, when it too is a plain batch, is taken here; anything else
        (logs, an error, the end, metadata) goes on through ``_complete``.
        """
        writer, output = self._input, self._output
        schema = batch.schema
        conn = self._connection
        if (
            self._closed
            or writer is None
            or output is None
            or (expected := self._input_schema) is None
            or (schema is not expected and not schema.equals(expected))
            or conn.external is not None
            or conn.shm is not None
            or _stream_log.isEnabledFor(logging.DEBUG)
            or wire_batch_log.isEnabledFor(logging.DEBUG)
        ):
            return None
        size = batch.get_total_buffer_size()
        if size >= SMALL_BATCH_BYTES:
            return None
        writer.send(batch, size)
        try:
            item = output.read(conn.ipc_validation)
        except TransportError as exc:  # as ``read_batch`` and ``_complete`` report it
            self._closed = True
            conn.healthy = False
            raise conn.channel.peer_failure(f"{self._info.name}(): {exc}") from exc
        except IPCError:
            self._closed = True
            conn.healthy = False
            raise
        if item is None or item[1] is not None:
            return self._complete(batch, None, item)
        auto = conn.auto_shm
        if auto is not None:
            auto.received(item[0], False)
        return AnnotatedBatch(item[0])

    def _complete(
        self, batch: pa.RecordBatch, metadata: Metadata | None, read: object
    ) -> AnnotatedBatch:
        """Receive the answer to the input just sent (``read``: as in ``_receive``)."""
        try:
            received = self._receive(read)
        except StopIteration:
            if _stream_log.isEnabledFor(logging.DEBUG):
                _stream_log.debug("%s(): the server finished the stream", self._info.name)
            self.close()
            raise
        except ExternalStorageError:
            self.cancel()  # an output could not be fetched: end the stream in step
            raise
        except (TransportError, IPCError):  # before RpcError: a dead worker is both
            self._closed = True
            self._connection.healthy = False
            raise
        except RpcError as error:
            self.close()
            if self._answered:
                raise
            if error.error_kind in UNKNOWN_CALL:
                self._connection.read_response(self._info.name)  # its answer to our input
            if not self._connection._falls_back(error):
                raise
            return self._start_unrouted(batch, metadata, error)
        self._answered = True
        if _stream_log.isEnabledFor(logging.DEBUG):
            _stream_log.debug(
                "%s(): %s -> %s",
                self._info.name,
                "tick" if batch is TICK else "exchange",
                describe_batch(received.batch, received.metadata_dict() or None),
            )
        return received

    def _start_unrouted(
        self, batch: pa.RecordBatch, metadata: Metadata | None, error: RpcError
    ) -> AnnotatedBatch:
        """Open the stream again as a first-generation call, then replay its first turn."""
        conn = self._connection
        conn._set_routing(None)
        request, schema = self._request
        conn.send_request(self._info.name, request, schema=schema)
        self._input = self._output = None
        self._input_schema = None
        self._closed = self._finished = False
        try:
            return self._turn(batch, metadata)
        except RpcError as second:
            if second.error_kind != "protocol_not_specified":
                raise
            conn._set_routing(wire_name(conn.protocol))
            raise error from None

    def tick(self) -> AnnotatedBatch:
        """Ask a producer for its next batch; ``StopIteration`` when it has finished."""
        if self._answered:
            received = self._plain_turn(TICK)
            if received is not None:
                return received
        return self._turn(TICK)

    def exchange(self, input: AnnotatedBatch | pa.RecordBatch) -> AnnotatedBatch:
        """Send one input batch to an exchange stream and return its answer."""
        if isinstance(input, pa.RecordBatch):
            batch = input
        elif input.custom_metadata is None:
            batch = input.batch
        else:
            return self._turn(input.batch, input.metadata_dict())
        if self._answered:
            received = self._plain_turn(batch)
            if received is not None:
                return received
        return self._turn(batch)

    def __iter__(self) -> Iterator[AnnotatedBatch]:
        try:
            while True:
                try:
                    yield self.tick()
                except StopIteration:
                    return
        finally:
            if not self._closed:
                self.cancel()

    def close(self) -> None:
        """End the input stream and read the output to its end."""
        if self._closed:
            return
        self._closed = True
        _stream_log.debug("%s(): stream closed by the client", self._info.name)
        try:
            self._finish_input()
            if not self._finished:
                self._finish_output()
        except TransportError:
            raise
        except (RpcError, StopIteration):
            pass

    def cancel(self) -> None:
        """Cancel the stream (spec section 9); idempotent and best effort."""
        if self._closed:
            return
        self._closed = True
        _stream_log.debug("%s(): stream cancelled by the client", self._info.name)
        try:
            if self._input is None:
                self._input = StreamWriter(self._connection.channel, EMPTY_SCHEMA)
                self._input_schema = EMPTY_SCHEMA
            assert self._input_schema is not None
            self._input.write(empty_batch(self._input_schema), {k.CANCEL_KEY: b"1"})
            self._input.close()
            if not self._finished:
                self._finish_output()
        except (RpcError, TransportError, IPCError, StopIteration):
            pass

    def _finish_input(self) -> None:
        if self._input is None:
            self._input = StreamWriter(self._connection.channel, EMPTY_SCHEMA)
        self._input.close()

    def _finish_output(self) -> None:
        if self._output is None:
            self._output = open_stream_reader(self._connection.channel.reader)
            if self._output is None:
                return
        self._drain_output()
        self._finished = True

    def __enter__(self) -> StreamSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.cancel()


__all__ = ["TICK", "UNKNOWN_CALL", "SessionConnection", "StreamSession"]
