"""The lean HTTP/1.1 client connection against a scripted server: framing, keep-alive, bad input."""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyarrow as pa
import pytest

from vgi_rpc.http import _http1
from vgi_rpc.http._http1 import Http1Connection, Response

ARROW = "application/vnd.apache.arrow.stream"


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return None
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


Script = Callable[[int], list[bytes]]  # request number -> the parts sent back


@contextmanager
def scripted(
    script: Script, *, close_after: bool = False
) -> Iterator[tuple[int, list[bytes], list[int]]]:
    """A one-thread server answering each request with ``script(n)``'s parts, sent one by one."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    requests: list[bytes] = []
    connections: list[int] = []
    done = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            connections.append(1)
            # a client that gives up on a malformed answer may close first
            with conn, contextlib.suppress(ConnectionError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while (request := _read_request(conn)) is not None:
                    requests.append(request)
                    for part in script(len(requests) - 1):
                        conn.sendall(part)
                    if close_after:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, requests, connections
    finally:
        done.set()
        thread.join(5)
        listener.close()


def _ok(body: bytes, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: {ARROW}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _post(port: int, body: bytes = b"req", **kwargs: object) -> tuple[Http1Connection, Response]:
    connection = Http1Connection("127.0.0.1", port, timeout=5, pooled_type=ARROW, **kwargs)  # type: ignore[arg-type]
    return connection, connection.post("/vgi/m", [("Content-Type", ARROW)], [body])


def test_request_head_and_keep_alive() -> None:
    with scripted(lambda n: [_ok(b"answer %d" % n)]) as (port, requests, connections):
        connection, first = _post(port, b"body one")
        second = connection.post("/vgi/other", [("X-A", "b")], [b"two", b"parts"])
        connection.close()
    assert (first.status, first.body, first.will_close) == (200, b"answer 0", False)
    assert second.body == b"answer 1"
    assert first.headers["content-type"] == ARROW
    assert len(connections) == 1  # the second request reused the connection
    head, _, body = requests[1].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /vgi/other HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}".encode() in lines
    assert b"X-A: b" in lines
    assert b"Content-Length: 8" in lines
    assert body == b"twoparts"


def test_every_split_of_a_response_reads_the_same() -> None:
    whole = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        + b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Y: z\r\n\r\n"
        + b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n"
    )
    with scripted(lambda n: [whole[: n + 1], whole[n + 1 :]]) as (port, _, _):
        for _ in range(1, len(whole)):
            connection, response = _post(port)
            connection.close()
            assert (response.status, response.body, response.headers["x-y"]) == (
                200,
                b"hello world",
                "z",
            )


@pytest.mark.parametrize(
    ("answer", "body", "will_close"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"", False),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil the end", b"until the end", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", b"ok", True),
        (b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nfail", b"fail", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", b"ok", False),
    ],
)
def test_framings(answer: bytes, body: bytes, will_close: bool) -> None:
    with scripted(lambda n: [answer], close_after=will_close) as (port, _, _):
        connection, response = _post(port)
        connection.close()
    assert (response.body, response.will_close) == (body, will_close)


def test_large_arrow_answer_is_pooled_and_small_one_is_bytes() -> None:
    big = bytes(range(256)) * 8192  # 2 MiB
    with scripted(lambda n: [_ok(big if n == 0 else b"tiny")]) as (port, _, _):
        connection, response = _post(port)
        small = connection.post("/vgi/m", [], [b""])
        connection.close()
    assert isinstance(response.body, pa.Buffer)
    assert response.body.to_pybytes() == big
    assert small.body == b"tiny"


def test_a_large_claim_reserves_memory_only_as_bytes_arrive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_http1, "RESERVE_AHEAD", 1 << 20)
    claim = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        ARROW.encode(),
        1 << 40,
    )
    with (
        scripted(lambda n: [claim, b"x" * (3 << 20)], close_after=True) as (port, _, _),
        pytest.raises(http.client.IncompleteRead),
    ):
        _post(port)


@pytest.mark.parametrize(
    "answer",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000,
        b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * (_http1.MAX_HEAD + 10),
    ],
)
def test_malformed_answers_raise_http_errors_and_close(answer: bytes) -> None:
    with scripted(lambda n: [answer], close_after=True) as (port, _, _):
        connection = Http1Connection("127.0.0.1", port, timeout=5)
        with pytest.raises(http.client.HTTPException):
            connection.post("/vgi/m", [], [b"x"])
        assert connection._sock is None  # closed, so a retry starts afresh


def test_bytes_past_the_answer_put_the_connection_out_of_service() -> None:
    with scripted(lambda n: [_ok(b"one") + b"HTTP/1.1 200 OK\r\n"]) as (port, _, connections):
        connection, response = _post(port)
        assert response.body == b"one"
        assert connection._sock is None
        assert connection.post("/vgi/m", [], [b""]).body == b"one"
        connection.close()
    assert len(connections) == 2


def test_header_injection_and_bad_paths_are_refused_before_sending() -> None:
    connection = Http1Connection("127.0.0.1", 9, timeout=1)
    with pytest.raises(ValueError, match="invalid header"):
        connection.post("/vgi/m", [("X", "a\r\nEvil: 1")], [b""])
    with pytest.raises(http.client.InvalidURL):
        connection.post("/vgi/m HTTP/1.1\r\nX: y", [], [b""])


def test_fuzzed_answers_give_a_response_or_an_http_error() -> None:
    """Mutated real answers: never another exception, never a hang.

    120 cases in CI; ``VGI_HTTP1_FUZZ_CASES=100000`` runs a longer search.
    """
    rng = random.Random(int(os.environ.get("VGI_FUZZ_SEED", "1234")))
    seeds = [
        _ok(b"arrow body"),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!",
    ]
    cases = []
    for _ in range(int(os.environ.get("VGI_HTTP1_FUZZ_CASES", "120"))):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            at = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[min(at, len(data) - 1)] = rng.randrange(256)
            elif op == 1:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            else:
                del data[at : at + rng.randint(1, 8)]
        cases.append(bytes(data))
    with scripted(lambda n: [cases[n]], close_after=True) as (port, _, _):
        for _ in cases:
            connection = Http1Connection("127.0.0.1", port, timeout=5)
            try:
                response = connection.post("/vgi/m", [], [b"x"])
            except http.client.HTTPException:
                continue
            finally:
                connection.close()
            assert 100 <= response.status <= 999
