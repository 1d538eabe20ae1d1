"""Log levels, client-visible log messages and the logger-name contract.

Never configures handlers: attaching them is the application's choice.
"""

from __future__ import annotations

import logging
from enum import Enum

ROOT_LOGGER = "vgi_rpc"
ACCESS_LOGGER = "vgi_rpc.access"
RPC_LOGGER = "vgi_rpc.rpc"
POOL_LOGGER = "vgi_rpc.pool"
HTTP_LOGGER = "vgi_rpc.http"
SERVICE_LOGGER_PREFIX = "vgi_rpc.service"
WIRE_REQUEST_LOGGER = "vgi_rpc.wire.request"
WIRE_RESPONSE_LOGGER = "vgi_rpc.wire.response"
WIRE_BATCH_LOGGER = "vgi_rpc.wire.batch"
WIRE_STREAM_LOGGER = "vgi_rpc.wire.stream"
WIRE_TRANSPORT_LOGGER = "vgi_rpc.wire.transport"
WIRE_HTTP_LOGGER = "vgi_rpc.wire.http"

# (name, what it carries, when to turn it on): ``vgi-rpc loggers`` prints this table.
LOGGERS: tuple[tuple[str, str, str], ...] = (
    (ROOT_LOGGER, "parent of every vgi_rpc logger", "attach handlers here to see everything"),
    (
        ACCESS_LOGGER,
        "one INFO record per call, with its statistics",
        "request accounting, audit, latency",
    ),
    (
        RPC_LOGGER,
        "server lifecycle; method failures at DEBUG with traceback",
        "a call fails and you need the server's side",
    ),
    (
        POOL_LOGGER,
        "worker pool: spawn, reuse, discard, evict",
        "workers start more often than expected",
    ),
    (
        HTTP_LOGGER,
        "HTTP app: refusals, 401s, signing-key warnings",
        "an HTTP client gets 4xx answers",
    ),
    (
        f"{SERVICE_LOGGER_PREFIX}.<Protocol>",
        "ctx.logger of each hosted Protocol",
        "your own service's logs",
    ),
    (
        "vgi_rpc.services.vectorindex",
        "vector index service: namespaces, snapshots, log replay",
        "index state after restarts",
    ),
    (
        WIRE_REQUEST_LOGGER,
        "requests as sent and received: method, arguments, metadata",
        "a method gets the wrong arguments",
    ),
    (
        WIRE_RESPONSE_LOGGER,
        "results, error batches, shared-memory routing",
        "a result or an error is not what you expect",
    ),
    (
        WIRE_BATCH_LOGGER,
        "how the client classified each batch: data, log, error, pointer",
        "logs or errors do not arrive",
    ),
    (
        WIRE_STREAM_LOGGER,
        "stream lifecycle on both ends: open, each turn, finish, cancel, close",
        "a stream stalls or loses batches",
    ),
    (
        WIRE_TRANSPORT_LOGGER,
        "channels, file descriptors, worker processes, shared-memory segments",
        "a connection hangs or a worker vanishes",
    ),
    (
        WIRE_HTTP_LOGGER,
        "each HTTP request: URL, status, body sizes (client and server)",
        "HTTP requests fail or are slow",
    ),
)


class Level(Enum):
    """Severity of a client-directed log message, most severe first.

    ``EXCEPTION`` is reserved on the wire for errors: a batch at that level is
    raised as ``RpcError`` by the client, never delivered as a log.
    """

    EXCEPTION = "EXCEPTION"
    ERROR = "ERROR"
    WARN = "WARN"
    INFO = "INFO"
    DEBUG = "DEBUG"
    TRACE = "TRACE"


_PY_LEVELS = {
    Level.EXCEPTION: logging.ERROR,
    Level.ERROR: logging.ERROR,
    Level.WARN: logging.WARNING,
    Level.INFO: logging.INFO,
    Level.DEBUG: logging.DEBUG,
    Level.TRACE: 5,
}


def python_log_level(level: Level) -> int:
    """Return the ``logging`` level number matching ``level``."""
    return _PY_LEVELS[level]


class Message:
    """A log message a server method sent to its client.

    Attributes:
        level: Severity.
        message: Human-readable text.
        extra: Structured key/value data, or ``None``.
        server_id: The emitting server's id, when sent.
        request_id: The request the message belongs to, when sent.
    """

    __slots__ = ("extra", "level", "message", "request_id", "server_id")

    def __init__(
        self,
        level: Level,
        message: str,
        extra: dict[str, object] | None = None,
        *,
        server_id: str = "",
        request_id: str = "",
    ) -> None:
        self.level = level
        self.message = message
        self.extra = extra
        self.server_id = server_id
        self.request_id = request_id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.level, self.message, self.extra) == (other.level, other.message, other.extra)

    __hash__ = None  # type: ignore[assignment]  # mutable value object

    def __repr__(self) -> str:
        return f"Message({self.level.name}, {self.message!r}, extra={self.extra!r})"


def service_logger(protocol_name: str) -> logging.Logger:
    """Return the ``vgi_rpc.service.<Protocol>`` logger handed to methods as ``ctx.logger``."""
    return logging.getLogger(f"{SERVICE_LOGGER_PREFIX}.{protocol_name}")


__all__ = ["LOGGERS", "Level", "Message", "python_log_level", "service_logger"]
