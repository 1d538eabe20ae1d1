"""Keep-alive HTTP/1.1 connections to one server, one per concurrent caller.

The default engine of ``http_connect``. It is the standard library's
``http.client``: per request it costs about half the CPU of httpcore's
HTTP/1.1 state machine behind a pool, and the client's CPU is about half of
a call's latency on loopback. A caller who needs httpx's features (proxies,
auth flows, event hooks) passes an ``httpx.Client`` instead.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from vgi_rpc._errors import TransportError
from vgi_rpc._ipc import Chunk
from vgi_rpc.http._app import ARROW_CONTENT_TYPE
from vgi_rpc.http._body import read_into_pool

# From this size a 200 response body is read into Arrow's memory pool, whose freed
# pages are reused; ``bytes`` of the same size would fault every page in afresh.
POOLED_BODY = 1 << 20

# Below this a request's head and body leave in one send: every send wakes the server.
COALESCE_LIMIT = 64 * 1024


class _Connection(http.client.HTTPConnection):
    """``http.client`` connection with TCP_NODELAY whose small requests leave in one send."""

    _hold_head = False
    _held = b""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: Any) -> None:
        if self._hold_head:  # endheaders() is sending the head: keep it for the body
            self._held += bytes(data)
            return
        super().send(data)

    def post(self, path: str, headers: list[tuple[str, str]], body: Sequence[Chunk]) -> None:
        """Send ``POST path`` with ``headers`` and the body made of ``body``'s chunks.

        A small body leaves with the head; a large one is sent chunk by chunk,
        never joined into one copy.
        """
        self.putrequest("POST", path, skip_accept_encoding=True)
        for name, value in headers:
            self.putheader(name, value)
        views = [memoryview(chunk).cast("B") for chunk in body]
        size = sum(view.nbytes for view in views)
        self.putheader("Content-Length", str(size))
        if size > COALESCE_LIMIT:
            self.endheaders()
            for view in views:
                self.send(view)
            return
        self._hold_head = True
        try:
            self.endheaders()
        finally:
            self._hold_head = False
        head, self._held = self._held, b""
        self.send(b"".join([head, *views]))


class _TlsConnection(_Connection, http.client.HTTPSConnection):
    """The same over TLS."""


@dataclass(frozen=True)
class Answer:
    """One response: status, headers (lower-case names) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes | pa.Buffer


def _read_body(response: http.client.HTTPResponse) -> bytes | pa.Buffer:
    """The whole body: a large Arrow answer of known length into a pooled buffer."""
    length = response.length
    if (
        response.status != 200
        or response.chunked
        or length is None
        or length < POOLED_BODY
        or not (response.getheader("Content-Type") or "").startswith(ARROW_CONTENT_TYPE)
    ):
        return response.read()
    body, filled = read_into_pool(response, length)
    if filled < length:
        raise http.client.IncompleteRead(b"", length - filled)
    return body


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
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def post(self, path: str, headers: list[tuple[str, str]], body: Sequence[Chunk]) -> Answer:
        """POST the body made of ``body``'s chunks to ``path`` and read the whole response."""
        connection = self._take()
        try:
            connection.post(path, headers, body)
            response = connection.getresponse()
            content = _read_body(response)
        except BaseException:
            connection.close()
            raise
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, content)
        if response.will_close:
            connection.close()
        else:
            self._give_back(connection)
        return answer

    def _take(self) -> _Connection:
        with self._lock:
            if self._closed:
                raise TransportError("the HTTP connections were closed")
            while self._idle:
                connection = self._idle.pop()
                if not _dropped_by_server(connection):
                    return connection
                connection.close()
        if self.scheme == "https":
            context = self._ssl_context or ssl.create_default_context()
            return _TlsConnection(self.host, self.port, timeout=self.timeout, context=context)
        return _Connection(self.host, self.port, timeout=self.timeout)

    def _give_back(self, connection: _Connection) -> None:
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


def _dropped_by_server(connection: http.client.HTTPConnection) -> bool:
    """An idle connection with something to read has been closed by the server."""
    sock = connection.sock
    if sock is None:
        return False  # not connected yet (or closed by a response): it reconnects itself
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


__all__ = ["Answer", "KeepAliveConnections"]
