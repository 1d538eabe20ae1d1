"""An httpcore network backend that sends a small request head and body in one write.

httpcore writes the request head and the body separately. On loopback, and
on any link with a CPU to share, every write wakes the server, so each
request costs a second wake-up and a second partial read. This stream
buffers small writes until the client turns to read the response and then
sends them with one ``sendall``. Writes too large to be worth a copy go
straight out (after whatever is buffered).
"""

from __future__ import annotations

import ssl
import typing

import httpcore

COALESCE_LIMIT = 64 * 1024


class _CoalescingStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._pending: list[bytes] = []
        self._size = 0
        self._timeout: float | None = None

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._timeout = timeout
        if self._size + len(buffer) <= COALESCE_LIMIT:
            self._pending.append(buffer)
            self._size += len(buffer)
            return
        self._flush()
        self._inner.write(buffer, timeout)

    def _flush(self) -> None:
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending = []
            self._size = 0
            self._inner.write(data, self._timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._flush()
        return self._inner.read(max_bytes, timeout)

    def close(self) -> None:
        self._pending = []
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._flush()
        return _CoalescingStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class CoalescingBackend(httpcore.NetworkBackend):
    """``httpcore.SyncBackend`` whose streams coalesce small writes until the next read."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        return _CoalescingStream(
            self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        return _CoalescingStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


__all__ = ["CoalescingBackend"]
