"""A stream being served, turn by turn: opened by a stream method, driven by a transport.

Kept apart from the unary call step (``_step``, whose ``start_stream`` opens one)
so that a worker whose calls are all unary never loads the stream classes
(``Stream``, the state classes, the header dataclasses).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

import pyarrow as pa

from vgi_rpc._dataclasses import ArrowSerializableDataclass
from vgi_rpc._ipc import Metadata
from vgi_rpc._logs import DEBUG, WIRE_STREAM_LOGGER, Level, lazy_logger
from vgi_rpc._methods import RpcMethodInfo
from vgi_rpc.rpc._call_host import Batch, Turn, log_error_reply
from vgi_rpc.rpc._context import AuthContext
from vgi_rpc.rpc._hosting import Handler
from vgi_rpc.rpc._streams import (
    AnnotatedBatch,
    ExchangeState,
    OutputCollector,
    ProducerState,
    Stream,
    StreamState,
)
from vgi_rpc.rpc._wire_log import describe_batch
from vgi_rpc.wire import empty_batch
from vgi_rpc.wire import keys as k

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalBudget
    from vgi_rpc.rpc._accounting import CallRecord
    from vgi_rpc.rpc._call_host import CallHost

_log = lazy_logger(WIRE_STREAM_LOGGER)


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
        # An exchange's method, called directly by ``answer``.
        self._exchange = state.exchange if isinstance(state, ExchangeState) else None
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
        exchange = self._exchange
        if exchange is None or not conformed or _log.isEnabledFor(DEBUG):
            if _log.isEnabledFor(DEBUG):
                return self.turn(batch, conformed=conformed)
            return self._turn(batch, None, True, conformed, bare=True)
        # ``_turn`` and ``_run`` for an exchange, inline: this is every turn of a busy stream.
        out = OutputCollector(self.output_schema)
        self._out = out
        record = self.record
        try:
            if record is not None:
                record.stats.record_input(batch)
            exchange(AnnotatedBatch(batch), out, self._ctx)
            emitted = out.plain()
            if emitted is None and out.batch is None:
                raise ValueError(
                    f"{self.info.name}(): exchange() must emit exactly one batch per input"
                )
        except Exception as exc:
            return self._failed(out, exc)
        finally:
            self._out = None
        if emitted is None or self.server.external is not None:
            return self._outcome(out, True, True)
        if record is not None:
            record.stats.record_output(emitted)
        return emitted

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
            return self._failed(out, exc)
        finally:
            self._out = None
        return self._outcome(out, externalize, bare)

    def _failed(self, out: OutputCollector, exc: Exception) -> Turn:
        """The turn of a state that raised ``exc``: the logs it made, then the error."""
        self.server.log_method_error(self.info.name, exc)
        logs = self._logs(out)
        error = (empty_batch(self.output_schema), self._error_metadata(exc))
        log_error_reply(self.info.name, error[1])
        return Turn(logs, error=exc, error_batch=error, finished=True)

    def _outcome(
        self, out: OutputCollector, externalize: bool, bare: bool
    ) -> Turn | pa.RecordBatch:
        """What a turn that ran sends: its logs and output, externalized when large."""
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


__all__ = ["ServerStream", "conform_input", "header_batch", "open_stream"]
