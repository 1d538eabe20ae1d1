"""Per-call context handed to implementations: auth, client logging, server logger.

No transport classes and no ContextVars: the dispatcher builds one
``CallContext`` per call and passes it explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from vgi_rpc._logs import Level, real_logger
from vgi_rpc._record import FACTORY, record

if TYPE_CHECKING:
    import logging


LogSink = Callable[[Level, str, dict[str, object] | None], None]


def _no_claims() -> Mapping[str, object]:
    return MappingProxyType({})


@record(frozen=True, factories={"claims": _no_claims})
class AuthContext:
    """Who is calling, as established by the transport's authenticate hook."""

    __slots__ = ("authenticated", "claims", "domain", "principal")

    domain: str | None
    authenticated: bool
    principal: str | None
    claims: Mapping[str, object]

    def __init__(
        self,
        domain: str | None = None,
        authenticated: bool = False,
        principal: str | None = None,
        claims: Mapping[str, object] = FACTORY,
    ) -> None:
        init = object.__setattr__
        init(self, "domain", domain)
        init(self, "authenticated", authenticated)
        init(self, "principal", principal)
        init(self, "claims", _no_claims() if claims is FACTORY else claims)

    @classmethod
    def anonymous(cls) -> AuthContext:
        """The context of an unauthenticated caller (pipe and subprocess transports)."""
        return _ANONYMOUS

    def require_authenticated(self) -> None:
        """Raise ``PermissionError`` unless the caller is authenticated."""
        if not self.authenticated:
            raise PermissionError("this method requires an authenticated caller")


_ANONYMOUS = AuthContext()


class CallContext:
    """What a method implementation may know about and do for the current call.

    Declare a ``ctx`` parameter on the implementation (never on the Protocol)
    to receive it.
    """

    __slots__ = (
        "_log_sink",
        "_logger",
        "auth",
        "method",
        "request_id",
        "server_id",
        "tick_metadata",
        "transport_metadata",
    )

    def __init__(
        self,
        *,
        method: str,
        request_id: str,
        server_id: str,
        logger: logging.Logger,
        log_sink: LogSink,
        auth: AuthContext = _ANONYMOUS,
        transport_metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.method = method
        self.request_id = request_id
        self.server_id = server_id
        self._logger = logger
        self.auth = auth
        self.transport_metadata: Mapping[str, str] = transport_metadata or {}
        # A producer's current tick: the custom metadata the client sent with it, if any.
        self.tick_metadata: Mapping[bytes, bytes] | None = None
        self._log_sink = log_sink

    @property
    def logger(self) -> logging.Logger:
        """The ``vgi_rpc.service.<Protocol>`` logger (``logging`` is imported on first use)."""
        logger = self._logger = real_logger(self._logger)
        return logger

    @logger.setter
    def logger(self, value: logging.Logger) -> None:
        self._logger = value

    def client_log(self, level: Level, message: str, **extra: object) -> None:
        """Send a log message to the client (delivered to its ``on_log`` callback).

        Raises:
            ValueError: For ``Level.EXCEPTION``, which is reserved for errors on the wire.
        """
        if level is Level.EXCEPTION:
            raise ValueError("Level.EXCEPTION is reserved for errors; raise an exception instead")
        self._log_sink(level, message, extra or None)


__all__ = ["AuthContext", "CallContext", "LogSink"]
