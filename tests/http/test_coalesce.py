"""The client's coalescing stream: small writes leave together, large ones at once."""

from __future__ import annotations

import ssl
import typing

import httpcore

from vgi_rpc.http._coalesce import COALESCE_LIMIT, _CoalescingStream


class _Recorder(httpcore.NetworkStream):
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.writes.append(buffer)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return b"HTTP/1.1 200 OK\r\n"

    def close(self) -> None:
        self.closed = True

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        return None


def test_head_and_small_body_leave_in_one_write_before_the_read() -> None:
    inner = _Recorder()
    stream = _CoalescingStream(inner)
    stream.write(b"POST / HTTP/1.1\r\n\r\n")
    stream.write(b"body")
    assert inner.writes == []
    assert stream.read(100) == b"HTTP/1.1 200 OK\r\n"
    assert inner.writes == [b"POST / HTTP/1.1\r\n\r\nbody"]


def test_a_large_body_is_not_copied_into_the_buffer() -> None:
    inner = _Recorder()
    stream = _CoalescingStream(inner)
    big = bytes(COALESCE_LIMIT + 1)
    stream.write(b"head")
    stream.write(big)
    assert inner.writes == [b"head", big]
    assert inner.writes[1] is big
    stream.read(10)
    assert len(inner.writes) == 2


def test_close_drops_unsent_bytes_and_closes_the_socket() -> None:
    inner = _Recorder()
    stream = _CoalescingStream(inner)
    stream.write(b"never sent")
    stream.close()
    assert inner.closed
    assert inner.writes == []
