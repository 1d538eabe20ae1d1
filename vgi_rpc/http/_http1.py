"""One keep-alive HTTP/1.1 client connection: a POST out, its whole response back.

``http.client`` parses every response head with the ``email`` package and
builds every request head header by header; on loopback that is about a
fifth of a small call's CPU. This connection writes the request head in one
string and parses the response head with one search and one split. It reads
only what a server may send back to a POST: a status line, header lines, and
a body framed by ``Content-Length``, ``chunked`` or the end of the
connection. Everything it reads is bounded: the head, each chunk-size line,
and memory reserved ahead of a body's arrival. Malformed responses raise
``http.client`` exceptions, which the transport turns into ``TransportError``.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from vgi_rpc._ipc import Chunk

MAX_HEAD = 256 * 1024  # status line plus headers, like http.client's 64 KiB line x 100 headers
MAX_HEADERS = 100
MAX_CHUNK_LINE = 4096  # a chunk-size line with any extensions
RESERVE_AHEAD = 256 << 20  # memory taken for a body before its bytes have arrived
SEND_WHOLE_BELOW = 64 * 1024  # a request this small leaves in one send with its head
_RECV = 64 * 1024


@dataclass(frozen=True)
class Response:
    """A whole response: status, headers (lower-case names, the last of repeats), body."""

    status: int
    headers: dict[str, str]
    body: bytes | pa.Buffer
    will_close: bool


class Http1Connection:
    """A lazily opened TCP (or TLS) connection that sends POSTs and reads their answers.

    Args:
        host: Server host.
        port: Server port.
        timeout: Seconds for connecting and each socket operation (``None``: no limit).
        ssl_context: Speak TLS with this context (certificate checks are its business).
        pooled_from: A 200 body at least this large whose ``Content-Type``
            starts with ``pooled_type`` is read into a buffer from Arrow's
            memory pool (its freed pages are reused) rather than ``bytes``.
        pooled_type: See ``pooled_from``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float | None,
        ssl_context: ssl.SSLContext | None = None,
        pooled_from: int = 1 << 20,
        pooled_type: str = "",
    ) -> None:
        self.host, self.port = host, port
        self.timeout = timeout
        self._ssl_context = ssl_context
        self._pooled_from = pooled_from
        self._pooled_type = pooled_type
        self._sock: socket.socket | None = None
        self._buffer = bytearray()  # received, not yet consumed
        self._host_header = host if port in (80, 443) else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            self._host_header = f"[{host}]:{port}"

    # -- connection ---------------------------------------------------------

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self._buffer.clear()
        return sock

    def dropped(self) -> bool:
        """Whether an idle open connection has been closed (or written to) by the server."""
        sock = self._sock
        if sock is None:
            return False  # not connected: the next request connects
        if self._buffer:
            return True
        poller = select.poll()
        try:
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        """Close the socket (the next request opens a new one)."""
        sock, self._sock = self._sock, None
        self._buffer.clear()
        if sock is not None:
            sock.close()

    # -- request ------------------------------------------------------------

    def post(
        self, path: str, headers: Sequence[tuple[str, str]], body: Sequence[Chunk]
    ) -> Response:
        """Send ``POST path`` with ``headers`` and the body made of ``body``'s chunks; read the answer.

        On any failure the connection is closed before the exception leaves.
        """
        if any(c in path for c in "\r\n ") or not path.startswith("/"):
            raise http.client.InvalidURL(f"not a request path: {path!r}")
        views = [memoryview(chunk).cast("B") for chunk in body]
        size = sum(view.nbytes for view in views)
        lines = [f"POST {path} HTTP/1.1\r\nHost: {self._host_header}\r\n"]
        for name, value in headers:
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"invalid header {name!r}: {value!r}")
            lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Length: {size}\r\n\r\n")
        head = "".join(lines).encode("latin-1")
        try:
            if self._sock is None:
                self._sock = self._connect()
            sock = self._sock
            if size < SEND_WHOLE_BELOW:
                sock.sendall(b"".join([head, *views]))
            else:
                sock.sendall(head)
                for view in views:  # never joined: a large body leaves as it is
                    sock.sendall(view)
            return self._response()
        except BaseException:
            self.close()
            raise

    # -- response -----------------------------------------------------------

    def _fill(self) -> bool:
        """Receive more into the buffer; ``False`` at the end of the connection."""
        assert self._sock is not None
        data = self._sock.recv(_RECV)
        if not data:
            return False
        self._buffer += data
        return True

    def _head(self) -> tuple[int, str, dict[str, str]]:
        """Status, HTTP version and headers of the next response (1xx answers skipped)."""
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise http.client.LineTooLong(f"response head over {MAX_HEAD} bytes")
                if not self._fill():
                    if not self._buffer:
                        raise http.client.RemoteDisconnected(
                            "the server closed the connection without a response"
                        )
                    raise http.client.IncompleteRead(bytes(self._buffer[:200]))
                end = self._buffer.find(b"\r\n\r\n", max(0, len(self._buffer) - _RECV - 3))
            if end > MAX_HEAD:
                raise http.client.LineTooLong(f"response head over {MAX_HEAD} bytes")
            head = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
            status, version, headers = _parse_head(head)
            if not 100 <= status < 200 or status == 101:
                return status, version, headers

    def _response(self) -> Response:
        status, version, headers = self._head()
        connection = headers.get("connection", "").lower()
        will_close = "close" in connection or (
            version == "HTTP/1.0" and "keep-alive" not in connection
        )
        framing = headers.get("transfer-encoding")
        length_text = headers.get("content-length")
        body: bytes | pa.Buffer
        if status in (204, 304):
            body = b""
        elif framing is not None:
            if framing.strip().lower() != "chunked" or length_text is not None:
                raise http.client.HTTPException(f"unsupported Transfer-Encoding {framing!r}")
            body = self._chunked()
        elif length_text is not None:
            length = _content_length(length_text)
            pooled = (
                status == 200
                and length >= self._pooled_from
                and headers.get("content-type", "").startswith(self._pooled_type)
            )
            body = self._into_pool(length) if pooled else self._bytes(length)
        else:
            body = self._until_closed()
            will_close = True
        if will_close or self._buffer:  # bytes past the response: the connection is out of step
            self.close()
        return Response(status, headers, body, will_close)

    def _bytes(self, length: int) -> bytes:
        """The next ``length`` body bytes."""
        while len(self._buffer) < length:  # memory grows only as the bytes arrive
            if not self._fill():
                raise http.client.IncompleteRead(
                    bytes(self._buffer[:200]), length - len(self._buffer)
                )
        data = bytes(self._buffer[:length])
        del self._buffer[:length]
        return data

    def _into_pool(self, length: int) -> pa.Buffer:
        """``length`` body bytes received straight into a pooled buffer."""
        first = min(length, RESERVE_AHEAD)
        target: pa.Buffer = (
            pa.allocate_buffer(first, None, True) if length > first else pa.allocate_buffer(first)
        )
        view = memoryview(target).cast("B")
        filled = min(length, len(self._buffer))
        view[:filled] = self._buffer[:filled]
        del self._buffer[:filled]
        assert self._sock is not None
        while filled < length:
            if filled == view.nbytes:  # reserve more only once the first part has arrived
                view.release()
                assert isinstance(target, pa.ResizableBuffer)
                target.resize(min(length, 2 * filled))
                view = memoryview(target).cast("B")
            count = self._sock.recv_into(view[filled:])
            if not count:
                raise http.client.IncompleteRead(b"", length - filled)
            filled += count
        view.release()
        return target

    def _until_closed(self) -> bytes:
        while self._fill():
            pass
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def _line(self) -> bytes:
        end = self._buffer.find(b"\r\n")
        while end < 0:
            if len(self._buffer) > MAX_CHUNK_LINE:
                raise http.client.LineTooLong("chunk-size line")
            if not self._fill():
                raise http.client.IncompleteRead(b"")
            end = self._buffer.find(b"\r\n")
        if end > MAX_CHUNK_LINE:
            raise http.client.LineTooLong("chunk-size line")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            if not size_text or len(size_text) > 16 or size_text.strip(b"0123456789abcdefABCDEF"):
                raise http.client.HTTPException(f"bad chunk size {size_text[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                break
            parts.append(self._bytes(size))
            if self._line():
                raise http.client.HTTPException("chunk not followed by CRLF")
        trailers = 0
        while self._line():  # trailer fields, ignored
            trailers += 1
            if trailers > MAX_HEADERS:
                raise http.client.HTTPException(f"more than {MAX_HEADERS} trailer fields")
        return b"".join(parts)


def _content_length(text: str) -> int:
    values = {v.strip() for v in text.split(",")}  # repeats are joined with ","
    if len(values) != 1:
        raise http.client.HTTPException(f"conflicting Content-Length {text!r}")
    (value,) = values
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise http.client.HTTPException(f"bad Content-Length {text!r}")
    return int(value)


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.split(b"\r\n")
    status_line = lines[0].decode("latin-1")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if (
        version not in ("HTTP/1.1", "HTTP/1.0")
        or not (code.isascii() and code.isdigit())
        or len(code) != 3
        or code[0] == "0"
        or rest[3:4] not in ("", " ")
    ):
        raise http.client.BadStatusLine(status_line[:200])
    if len(lines) - 1 > MAX_HEADERS:
        raise http.client.HTTPException(f"more than {MAX_HEADERS} response headers")
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        name, colon, value = raw.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip() or name[0] in " \t":
            raise http.client.HTTPException(f"malformed header line {raw[:200]!r}")
        key = name.lower()
        value = value.strip()
        if key == "content-length" and key in headers:
            value = f"{headers[key]},{value}"  # checked for agreement by _content_length
        headers[key] = value
    return int(code), version, headers


__all__ = ["Http1Connection", "Response"]
