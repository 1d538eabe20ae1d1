"""Log levels, client-visible log messages and the logger-name contract.

Never configures handlers: attaching them is the application's choice.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import logging

# logging's numbers, without importing it (see LazyLogger)
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40

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
    Level.EXCEPTION: ERROR,
    Level.ERROR: ERROR,
    Level.WARN: WARNING,
    Level.INFO: INFO,
    Level.DEBUG: DEBUG,
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


class LazyLogger:
    """``logging.getLogger(name)``, imported only once a record could be emitted.

    ``import logging`` (with ``traceback``, ``string``, ``weakref``) is about 4 ms of
    a worker's start-up, spent only to learn that debug records are off. Until the
    application imports ``logging`` (to configure it or to log), nothing can have
    enabled a level below WARNING, so ``isEnabledFor``, ``debug`` and ``info`` answer
    without it; anything else (``warning``, ``exception``, ``handlers``, ...) imports
    it and goes to the real logger, so records, handlers and the last-resort
    stderr output are exactly the real logger's. Once resolved, ``isEnabledFor``,
    ``debug`` and ``info`` are the real logger's bound methods.
    """

    __slots__ = ("_real", "debug", "info", "isEnabledFor", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._real: logging.Logger | None = None
        self.isEnabledFor: Callable[[int], bool] = self._enabled
        self.debug: Callable[..., None] = self._debug
        self.info: Callable[..., None] = self._info

    def resolve(self) -> logging.Logger:
        """The real logger of this name (importing ``logging``)."""
        real = self._real
        if real is None:
            import logging

            real = self._real = logging.getLogger(self.name)
            self.isEnabledFor, self.debug, self.info = real.isEnabledFor, real.debug, real.info
        return real

    def _enabled(self, level: int) -> bool:
        if "logging" not in sys.modules:
            return level >= WARNING  # the unconfigured root level
        return self.resolve().isEnabledFor(level)

    def _debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(DEBUG):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1  # the caller's line, not ours
            self.resolve().debug(msg, *args, **kwargs)

    def _info(self, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(INFO):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.resolve().info(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resolve(), name)

    def __repr__(self) -> str:
        return repr(self.resolve())


def lazy_logger(name: str) -> logging.Logger:
    """A ``LazyLogger`` for ``name``, typed as the ``logging.Logger`` it stands for."""
    return cast("logging.Logger", LazyLogger(name))


def real_logger(logger: logging.Logger) -> logging.Logger:
    """``logger`` itself, or the real logger a ``LazyLogger`` stands for."""
    lazy: object = logger  # typed as a Logger wherever it is passed around
    if type(lazy) is LazyLogger:
        return lazy.resolve()
    return logger


def service_logger(protocol_name: str) -> logging.Logger:
    """Return the ``vgi_rpc.service.<Protocol>`` logger handed to methods as ``ctx.logger``."""
    return lazy_logger(f"{SERVICE_LOGGER_PREFIX}.{protocol_name}")


__all__ = [
    "DEBUG",
    "ERROR",
    "INFO",
    "LOGGERS",
    "WARNING",
    "LazyLogger",
    "Level",
    "Message",
    "lazy_logger",
    "python_log_level",
    "real_logger",
    "service_logger",
]
