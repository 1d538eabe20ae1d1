"""Per-call I/O statistics and the one access record per call on ``vgi_rpc.access``.

Counting happens only while the access logger is enabled for INFO or a call
observer (``RpcServer.add_observer``, ``vgi_rpc.otel``) is registered, so an
unconfigured application pays one level check per call. Besides the
``extra={"vgi_rpc": fields}`` mapping, every field of the access record is an
attribute of the ``logging.LogRecord`` itself (``record.input_rows``,
``record.method``, ``record.status`` ...), for any handler or formatter. Record fields follow
the reference's access-log schema (``docs/access-log-spec.md``) where they apply.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

import pyarrow as pa

from vgi_rpc._logs import DEBUG, INFO, RPC_LOGGER, lazy_logger
from vgi_rpc._record import FACTORY, record
from vgi_rpc.rpc._wire_log import access_log

if TYPE_CHECKING:
    from vgi_rpc._ipc import Metadata
    from vgi_rpc.rpc._context import AuthContext

_rpc_log = lazy_logger(RPC_LOGGER)


@record()
class CallStatistics:
    """I/O counters of one call; bytes are logical Arrow buffer sizes (no IPC framing)."""

    __slots__ = (
        "input_batches",
        "input_bytes",
        "input_rows",
        "output_batches",
        "output_bytes",
        "output_rows",
    )

    __match_args__: ClassVar[tuple[str, ...]]  # the field names, set by @record
    input_batches: int
    output_batches: int
    input_rows: int
    output_rows: int
    input_bytes: int
    output_bytes: int

    def __init__(
        self,
        input_batches: int = 0,
        output_batches: int = 0,
        input_rows: int = 0,
        output_rows: int = 0,
        input_bytes: int = 0,
        output_bytes: int = 0,
    ) -> None:
        self.input_batches = input_batches
        self.output_batches = output_batches
        self.input_rows = input_rows
        self.output_rows = output_rows
        self.input_bytes = input_bytes
        self.output_bytes = output_bytes

    def record_input(self, batch: pa.RecordBatch) -> None:
        """Count one batch received from the client."""
        self.input_batches += 1
        self.input_rows += batch.num_rows
        self.input_bytes += batch.get_total_buffer_size()

    def record_output(self, batch: pa.RecordBatch) -> None:
        """Count one data batch sent to the client."""
        self.output_batches += 1
        self.output_rows += batch.num_rows
        self.output_bytes += batch.get_total_buffer_size()


class CallScope(Protocol):
    """An observer's state for one call, ended once when the call ends."""

    def finish(self, call: CallRecord, error: BaseException | None, duration: float) -> None:
        """The call ended (``error`` when it failed); ``duration`` in seconds."""
        ...


class CallObserver(Protocol):
    """Told about every call a server runs (register with ``RpcServer.add_observer``).

    ``start`` runs before the implementation, on the thread that runs it; the
    ``CallScope`` it returns (``None``: not interested) is finished after the
    call, with ``call.stats`` complete. Over HTTP a stream is observed once
    per HTTP request (``call.stream_id`` links them). Exceptions an observer
    raises are logged on ``vgi_rpc.rpc`` and never fail the call.
    """

    def start(
        self, call: CallRecord, metadata: Metadata | None, auth: AuthContext | None
    ) -> CallScope | None:
        """A call starts: ``metadata`` is its request metadata (trace context included)."""
        ...


@record(factories={"stats": CallStatistics, "started": time.perf_counter, "scopes": list})
class CallRecord:
    """What the access record of one call says; filled in as the call proceeds."""

    __slots__ = (
        "auth_domain",
        "authenticated",
        "cancelled",
        "logged",
        "method",
        "method_type",
        "principal",
        "protocol",
        "protocol_hash",
        "remote_addr",
        "request_data",
        "request_id",
        "scopes",
        "server_id",
        "started",
        "stats",
        "stream_id",
    )

    server_id: str
    protocol: str
    protocol_hash: str
    method: str
    method_type: str
    request_id: str
    stats: CallStatistics
    started: float
    principal: str
    auth_domain: str
    authenticated: bool
    remote_addr: str
    stream_id: str
    cancelled: bool
    request_data: str | None
    logged: bool
    scopes: list[CallScope]

    def __init__(
        self,
        server_id: str,
        protocol: str,
        protocol_hash: str,
        method: str,
        method_type: str,
        request_id: str,
        stats: CallStatistics = FACTORY,
        started: float = FACTORY,
        principal: str = "",
        auth_domain: str = "",
        authenticated: bool = False,
        remote_addr: str = "",
        stream_id: str = "",
        cancelled: bool = False,
        request_data: str | None = None,
        logged: bool = True,
        scopes: list[CallScope] = FACTORY,
    ) -> None:
        self.server_id = server_id
        self.protocol = protocol
        self.protocol_hash = protocol_hash
        self.method = method
        self.method_type = method_type
        self.request_id = request_id
        self.stats = CallStatistics() if stats is FACTORY else stats
        self.started = time.perf_counter() if started is FACTORY else started
        self.principal = principal
        self.auth_domain = auth_domain
        self.authenticated = authenticated
        self.remote_addr = remote_addr
        self.stream_id = stream_id
        self.cancelled = cancelled
        self.request_data = request_data
        self.logged = logged
        self.scopes = [] if scopes is FACTORY else scopes

    def finish(self, error: BaseException | None = None) -> None:
        """End the observers' scopes, then emit the access record (INFO on ``vgi_rpc.access``)."""
        duration = time.perf_counter() - self.started
        if self.scopes:
            scopes, self.scopes = self.scopes, []
            for scope in scopes:
                try:
                    scope.finish(self, error, duration)
                except Exception:
                    _rpc_log.exception("call observer %r failed at the end of a call", scope)
        if self.logged and access_log.isEnabledFor(INFO):
            self._emit(error, duration * 1000)

    def _emit(self, error: BaseException | None, duration_ms: float) -> None:
        status = "error" if error is not None else "ok"
        error_type = type(error).__name__ if error is not None else ""
        fields = {
            "timestamp": dt.datetime.now(dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "server_id": self.server_id,
            "protocol": self.protocol,
            "protocol_hash": self.protocol_hash,
            "method": self.method,
            "method_type": self.method_type,
            "principal": self.principal,
            "auth_domain": self.auth_domain,
            "authenticated": self.authenticated,
            "remote_addr": self.remote_addr,
            "duration_ms": round(duration_ms, 3),
            "status": status,
            "error_type": error_type,
            "error_message": str(error) if error is not None else "",
            "request_id": self.request_id,
            **{name: getattr(self.stats, name) for name in CallStatistics.__match_args__},
        }
        # Optional fields appear only when they say something (access-log spec section 5).
        if self.cancelled:
            fields["cancelled"] = True
        if self.stream_id:
            fields["stream_id"] = self.stream_id
        if self.request_data is not None:
            fields["request_data"] = self.request_data
        else:
            fields["truncated"] = "payload_omitted"
        access_log.info(
            "%s.%s %s %.3fms",
            self.protocol,
            self.method,
            status,
            duration_ms,
            # The fields are attributes of the LogRecord too (none clashes with its own).
            extra={**fields, "vgi_rpc": fields},
        )


def start_record(
    *,
    server_id: str,
    protocol: str,
    protocol_hash: str,
    method: str,
    method_type: str,
    request_id: str,
    request: pa.RecordBatch,
    observers: Sequence[CallObserver] = (),
    metadata: Metadata | None = None,
    auth: AuthContext | None = None,
    stream_id: str | None = None,
    count_request: bool = True,
) -> CallRecord | None:
    """A record for this call, or ``None`` when neither the access log nor an observer wants it.

    The request payload (``request_data``) is logged only at DEBUG. ``stream_id``
    links the pieces of a stream served over several requests (HTTP);
    ``count_request=False`` when the request is a stream turn's input, which
    the turn counts itself.
    """
    logged = access_log.isEnabledFor(INFO)
    if not logged and not observers:
        return None
    record = CallRecord(server_id, protocol, protocol_hash, method, method_type, request_id)
    record.logged = logged
    if auth is not None:
        record.principal = auth.principal or ""
        record.auth_domain = auth.domain or ""
        record.authenticated = auth.authenticated
    if method_type == "stream":
        record.stream_id = stream_id or uuid.uuid4().hex
    if logged and access_log.isEnabledFor(DEBUG):
        import base64  # only for debug-level access logs

        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, request.schema) as writer:
            writer.write_batch(request)
        record.request_data = base64.b64encode(sink.getvalue().to_pybytes()).decode()
    if count_request:
        record.stats.record_input(request)
    for observer in observers:
        try:
            scope = observer.start(record, metadata, auth)
        except Exception:
            _rpc_log.exception("call observer %r failed at the start of a call", observer)
            continue
        if scope is not None:
            record.scopes.append(scope)
    return record


__all__ = [
    "CallObserver",
    "CallRecord",
    "CallScope",
    "CallStatistics",
    "start_record",
]
