"""Large bodies read into Arrow's memory pool: waitress's request side and the client's response side."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from waitress.adjustments import Adjustments

from tests._services import Service, ServiceImpl
from tests.http._helpers import read_batches, request_body
from vgi_rpc import RpcServer, TransportError
from vgi_rpc.http import ARROW_CONTENT_TYPE, http_connect, make_wsgi_app
from vgi_rpc.http._connections import POOLED_BODY, KeepAliveConnections
from vgi_rpc.http._serve import serve_in_thread, waitress_options
from vgi_rpc.http._waitress_body import POOLED_FROM, PooledBodyFile, PooledChannel

MiB = 1 << 20


def _parse(head: bytes, body: bytes) -> object:
    """Feed one request to the pooled channel's parser; return its ``wsgi.input``."""
    parser = PooledChannel.parser_class(Adjustments(**waitress_options()))
    data = head + body
    while data and not parser.completed:
        data = data[parser.received(data) :]
    assert parser.completed
    assert parser.error is None
    return parser.get_body_stream()


def test_a_large_body_is_received_into_one_pooled_buffer_and_handed_over_uncopied() -> None:
    body = bytes(range(256)) * (2 * MiB // 256)
    head = f"POST /vgi/x HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    stream = _parse(head, body)
    assert isinstance(stream, PooledBodyFile)
    taken = stream.take()
    assert isinstance(taken, pa.Buffer)
    assert taken.to_pybytes() == body
    with pytest.raises(ValueError, match="already taken"):
        stream.take()


def test_a_small_body_stays_in_waitress_buffer() -> None:
    body = b"x" * (POOLED_FROM - 1)
    head = f"POST /vgi/x HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    stream = _parse(head, body)
    assert not isinstance(stream, PooledBodyFile)
    assert stream.read() == body  # type: ignore[attr-defined]


def test_a_body_over_the_cap_is_refused_before_any_buffer_is_allocated() -> None:
    adjustments = Adjustments(**waitress_options(max_request_bytes=2 * MiB))
    parser = PooledChannel.parser_class(adjustments)
    parser.received(b"POST /vgi/x HTTP/1.1\r\nHost: t\r\nContent-Length: 3000000\r\n\r\n")
    assert parser.completed
    assert parser.error is not None
    assert parser.error.code == 413


def _raw_post(port: int, head_length: int, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            f"POST /vgi/echo_bytes HTTP/1.1\r\nHost: t\r\nContent-Type: {ARROW_CONTENT_TYPE}\r\n"
            f"Content-Length: {head_length}\r\n\r\n".encode()
            + sent
        )


def test_waitress_keeps_serving_after_a_client_abandons_a_large_body() -> None:
    app = make_wsgi_app(RpcServer(Service, ServiceImpl()), signing_key=b"k" * 32)
    data = b"abc" * MiB
    with serve_in_thread(app) as url:
        port = int(url.rsplit(":", 1)[1])
        _raw_post(port, 8 * MiB, b"\0" * MiB)  # says 8 MiB, sends 1 MiB, hangs up
        body = request_body("echo_bytes", {"data": [data]})
        _raw_post(port, len(body), body[: len(body) // 2])
        with http_connect(Service, url) as proxy:
            assert proxy.echo_bytes(data=data) == data
        with socket.create_connection(("127.0.0.1", port)) as sock:  # whole body by hand
            sock.sendall(
                f"POST /vgi/echo_bytes HTTP/1.1\r\nHost: t\r\nContent-Type: {ARROW_CONTENT_TYPE}"
                f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
                "X-VGI-Accept-Encoding: identity\r\n\r\n".encode()
                + body
            )
            answer = b""
            while chunk := sock.recv(1 << 20):
                answer += chunk
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        (batch, _), *_ = read_batches(payload)
        assert batch.column(0)[0].as_py() == data


@contextlib.contextmanager
def _lying_server(declared: int, sent: bytes) -> Iterator[int]:
    """A one-shot HTTP server whose 200 Arrow answer stops short of its Content-Length."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            conn.sendall(
                f"HTTP/1.1 200 OK\r\nContent-Type: {ARROW_CONTENT_TYPE}\r\n"
                f"Content-Length: {declared}\r\n\r\n".encode()
                + sent
            )

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(timeout=10)
        listener.close()


def test_the_client_reads_a_large_arrow_answer_into_a_pooled_buffer() -> None:
    body = b"\x07" * (POOLED_BODY + 5)
    with _lying_server(len(body), body) as port:
        pool = KeepAliveConnections("http", "127.0.0.1", port)
        answer = pool.post("/x", [], [b""])
        pool.close()
    assert isinstance(answer.body, pa.Buffer)
    assert answer.body.to_pybytes() == body


def test_an_answer_that_stops_short_of_its_content_length_is_a_transport_error() -> None:
    with (
        _lying_server(4 * MiB, b"\0" * 1000) as port,
        pytest.raises(TransportError, match="IncompleteRead"),
        http_connect(Service, f"http://127.0.0.1:{port}") as proxy,
    ):
        proxy.echo_bytes(data=b"x")


class _Server:
    effective_port = 8000
    server_name = "t"

    def __init__(self, body: bytes) -> None:
        self.adj = Adjustments()
        self.body = body

    def application(self, environ: object, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", str(len(self.body)))])
        return [self.body]


class _Channel:
    """What a task needs of its channel; records every write."""

    def __init__(self, body: bytes) -> None:
        self.server = _Server(body)
        self.adj = self.server.adj
        self.addr = ("127.0.0.1", 5000)
        self.writes: list[bytes] = []

    def write_soon(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)

    def check_client_disconnected(self) -> None:
        return None


@pytest.mark.parametrize(("size", "writes"), [(10, 1), (60_000, 1), (100_000, 2)])
def test_a_small_answer_leaves_with_its_head_in_one_write(size: int, writes: int) -> None:
    body = b"a" * size
    request = _parse_request(b"POST /vgi/x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
    channel = _Channel(body)
    task = PooledChannel.task_class(channel, request)
    task.service()
    assert len(channel.writes) == writes
    joined = b"".join(channel.writes)
    assert joined.startswith(b"HTTP/1.1 200 OK")
    assert joined.endswith(b"\r\n\r\n" + body)


def _parse_request(data: bytes) -> Any:
    parser = PooledChannel.parser_class(Adjustments())
    parser.received(data)
    assert parser.completed
    return parser


def test_any_split_of_a_pooled_body_arrives_whole_and_bytes_past_it_are_left() -> None:
    rng = random.Random(7)
    for _ in range(20):
        length = rng.randrange(POOLED_FROM, POOLED_FROM + 300_000)
        body = rng.randbytes(length)
        head = f"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n".encode()
        data = head + body + b"GET /next HTTP/1.1\r\n\r\n"  # a pipelined request follows
        parser = PooledChannel.parser_class(Adjustments(**waitress_options()))
        position = 0
        while not parser.completed:
            step = rng.choice([1, 7, 4096, 65536, 1 << 20, len(data)])
            position += parser.received(data[position : position + step])
        assert parser.error is None
        assert data[position:].startswith(b"GET /next")
        assert parser.get_body_stream().take().to_pybytes() == body
