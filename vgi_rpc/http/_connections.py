"""Keep-alive HTTP connections to one server, one per concurrent caller.

``httpcore.ConnectionPool`` schedules requests across origins and
connections on every call, which costs about as much CPU as the HTTP/1.1
exchange itself. A client of one vgi-rpc server needs less: take an idle
connection to that origin (or open one), send, give it back. Each connection
is an ``httpcore.HTTPConnection``, so TLS, the HTTP/1.1 state machine and
expiry checks stay httpcore's.
"""

from __future__ import annotations

import threading

import httpcore

from vgi_rpc.http._coalesce import CoalescingBackend


class KeepAliveConnections:
    """Idle connections to ``origin``, reused most recent first.

    Args:
        origin: Scheme, host and port every request goes to.
        max_idle: Connections kept open between requests; more concurrent
            callers get connections that are closed after their request.
    """

    def __init__(self, origin: httpcore.Origin, *, max_idle: int = 8) -> None:
        self.origin = origin
        self.max_idle = max_idle
        self._backend = CoalescingBackend()
        self._idle: list[httpcore.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def send(self, request: httpcore.Request) -> tuple[httpcore.Response, bytes]:
        """Send ``request`` and read the whole response; returns it with its body."""
        while True:
            connection = self._take()
            try:
                response = connection.handle_request(request)
                try:
                    content = response.read()
                finally:
                    response.close()
            except httpcore.ConnectionNotAvailable:
                connection.close()  # it turned out to be closing: nothing was sent
                continue
            except BaseException:
                connection.close()
                raise
            self._give_back(connection)
            return response, content

    def _take(self) -> httpcore.HTTPConnection:
        with self._lock:
            if self._closed:
                raise httpcore.ConnectError("the connections were closed")
            while self._idle:
                connection = self._idle.pop()
                if connection.is_available() and not connection.has_expired():
                    return connection
                connection.close()  # the server closed it while it was idle
        return httpcore.HTTPConnection(self.origin, network_backend=self._backend)

    def _give_back(self, connection: httpcore.HTTPConnection) -> None:
        if connection.is_available():  # the response allowed keep-alive
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


__all__ = ["KeepAliveConnections"]
