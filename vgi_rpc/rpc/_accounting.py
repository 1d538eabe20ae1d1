"""Per-call I/O statistics and the one access record per call on ``vgi_rpc.access``.

Counting happens only while the access logger is enabled for INFO, so an
unconfigured application pays one level check per call. Record fields follow
the reference's access-log schema (``docs/access-log-spec.md``) where they apply.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import time
import uuid

import pyarrow as pa

from vgi_rpc._logs import (
    ACCESS_LOGGER,
    WIRE_BATCH_LOGGER,
    WIRE_REQUEST_LOGGER,
    WIRE_RESPONSE_LOGGER,
)

access_log = logging.getLogger(ACCESS_LOGGER)
wire_request_log = logging.getLogger(WIRE_REQUEST_LOGGER)
wire_response_log = logging.getLogger(WIRE_RESPONSE_LOGGER)
wire_batch_log = logging.getLogger(WIRE_BATCH_LOGGER)


@dataclasses.dataclass(slots=True)
class CallStatistics:
    """I/O counters of one call; bytes are logical Arrow buffer sizes (no IPC framing)."""

    input_batches: int = 0
    output_batches: int = 0
    input_rows: int = 0
    output_rows: int = 0
    input_bytes: int = 0
    output_bytes: int = 0

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


@dataclasses.dataclass(slots=True)
class CallRecord:
    """What the access record of one call says; filled in as the call proceeds."""

    server_id: str
    protocol: str
    protocol_hash: str
    method: str
    method_type: str
    request_id: str
    stats: CallStatistics = dataclasses.field(default_factory=CallStatistics)
    started: float = dataclasses.field(default_factory=time.perf_counter)
    principal: str = ""
    auth_domain: str = ""
    authenticated: bool = False
    remote_addr: str = ""
    stream_id: str = ""
    cancelled: bool = False
    request_data: str | None = None

    def finish(self, error: BaseException | None = None) -> None:
        """Emit the access record (INFO on ``vgi_rpc.access``) with the outcome."""
        duration_ms = (time.perf_counter() - self.started) * 1000
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
            **dataclasses.asdict(self.stats),
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
            extra={"vgi_rpc": fields},
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
) -> CallRecord | None:
    """A record for this call, or ``None`` when nobody listens on ``vgi_rpc.access``.

    The request payload (``request_data``) is logged only at DEBUG.
    """
    if not access_log.isEnabledFor(logging.INFO):
        return None
    record = CallRecord(server_id, protocol, protocol_hash, method, method_type, request_id)
    if method_type == "stream":
        record.stream_id = uuid.uuid4().hex
    if access_log.isEnabledFor(logging.DEBUG):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, request.schema) as writer:
            writer.write_batch(request)
        record.request_data = base64.b64encode(sink.getvalue().to_pybytes()).decode()
    record.stats.record_input(request)
    return record


def describe_batch(batch: pa.RecordBatch, metadata: dict[bytes, bytes] | None) -> str:
    """One-line rendering of a batch for the wire debug loggers."""
    md = {
        key.decode(errors="replace"): value[:200].decode(errors="replace")
        for key, value in (metadata or {}).items()
    }
    return f"{batch.num_rows} rows x {batch.num_columns} cols {batch.schema.names} metadata={md}"


__all__ = [
    "CallRecord",
    "CallStatistics",
    "access_log",
    "describe_batch",
    "start_record",
    "wire_batch_log",
    "wire_request_log",
    "wire_response_log",
]
