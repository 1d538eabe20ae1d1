"""What the call step and a served stream share: the server's interface, batches, a turn.

``CallHost`` is what answering a call needs from the server that runs it; a
``Turn`` is what one step of a stream produced. Imported by the unary step
(``_step``) and by ``_server_stream`` alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from vgi_rpc._ipc import Metadata
from vgi_rpc._logs import DEBUG, Level
from vgi_rpc._record import record
from vgi_rpc.rpc._context import AuthContext, CallContext
from vgi_rpc.rpc._hosting import Hosted
from vgi_rpc.rpc._wire_log import describe_batch, wire_response_log
from vgi_rpc.wire import EMPTY_SCHEMA, empty_batch

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalBudget, ExternalRoute

Batch = tuple[pa.RecordBatch, Metadata | None]
PendingLog = tuple[Level, str, dict[str, object] | None]


if TYPE_CHECKING:  # a Protocol for type checkers only: see ByteSink in vgi_rpc._ipc

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
            self,
            schema: pa.Schema,
            batches: list[Batch],
            budget: ExternalBudget | None,
            method: str,
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


def log_error_reply(method: str | None, metadata: Metadata) -> None:
    """Show an error batch on ``vgi_rpc.wire.response`` (errors only: off the hot path)."""
    if wire_response_log.isEnabledFor(DEBUG):
        wire_response_log.debug(
            "answered %s with an error batch: %s",
            f"{method}()" if method else "a refused request",
            describe_batch(empty_batch(EMPTY_SCHEMA), metadata),
        )


__all__ = ["Batch", "PendingLog", "Turn", "log_error_reply"]
