"""Keep-alive HTTP/1.1 connections to one server, one per concurrent caller.

The default engine of ``http_connect``: ``Http1Connection`` (``_http1``), a
lean HTTP/1.1 client whose request head is one string and whose response
head is parsed with one search and one split. On loopback the client's CPU is
about half of a call's latency, and ``http.client`` spent most of it in the
``email`` package; httpcore's state machine costs more still. A caller who
needs httpx's features (proxies, auth flows, event hooks) passes an
``httpx.Client`` instead.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa

from vgi_rpc._errors import TransportError
from vgi_rpc._ipc import Chunk
from vgi_rpc.http._app import ARROW_CONTENT_TYPE
from vgi_rpc.http._http1 import Http1Connection

# From this size a 200 Arrow response body is read into Arrow's memory pool, whose freed
# pages are reused; ``bytes`` of the same size would fault every page in afresh.
POOLED_BODY = 1 << 20


@dataclass(frozen=True)
class Answer:
    """One response: status, headers (lower-case names) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes | pa.Buffer


class KeepAliveConnections:
    """Idle connections to one origin, reused most recent first.

    Args:
        scheme: ``"http"`` or ``"https"``.
        host: Server host.
        port: Server port.
        timeout: Seconds for connecting and for each socket operation (``None``: no limit).
        ssl_context: For ``https``; the default verifies certificates.
        max_idle: Connections kept open between requests; more concurrent
            callers get connections that are closed after their request.
    """

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        timeout: float | None = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        max_idle: int = 8,
    ) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {scheme!r} (expected http or https)")
        self.scheme, self.host, self.port = scheme, host, port
        self.timeout = timeout
        self.max_idle = max_idle
        self._ssl_context = ssl_context
        self._idle: list[Http1Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def post(self, path: str, headers: list[tuple[str, str]], body: Sequence[Chunk]) -> Answer:
        """POST the body made of ``body``'s chunks to ``path`` and read the whole response."""
        connection = self._take()
        response = connection.post(path, headers, body)  # closes the connection on failure
        if not response.will_close:
            self._give_back(connection)
        return Answer(response.status, response.headers, response.body)

    def _take(self) -> Http1Connection:
        with self._lock:
            if self._closed:
                raise TransportError("the HTTP connections were closed")
            while self._idle:
                connection = self._idle.pop()
                if not connection.dropped():
                    return connection
                connection.close()
        context = None
        if self.scheme == "https":
            context = self._ssl_context or ssl.create_default_context()
        return Http1Connection(
            self.host,
            self.port,
            timeout=self.timeout,
            ssl_context=context,
            pooled_from=POOLED_BODY,
            pooled_type=ARROW_CONTENT_TYPE,
        )

    def _give_back(self, connection: Http1Connection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_idle:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Close every idle connection; connections in use close when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


__all__ = ["Answer", "KeepAliveConnections"]
