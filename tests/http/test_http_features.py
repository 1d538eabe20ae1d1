"""HTTP surface: discovery, auth, CORS, compression, response caps, token lifetimes."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import falcon
import httpx
import pyarrow as pa
import pytest

from tests._services import ROWS, Service, ServiceImpl
from tests.conftest import serve_wsgi
from tests.http._helpers import ARROW, error_message, read_batches, request_body
from vgi_rpc import (
    AuthContext,
    CallContext,
    OutputCollector,
    ProducerState,
    RpcError,
    RpcServer,
    Stream,
    StreamState,
    TransportError,
)
from vgi_rpc.http import (
    AuthFailure,
    HttpUnauthorizedError,
    http_capabilities,
    http_connect,
    http_introspect,
    make_wsgi_app,
)
from vgi_rpc.http._body import ChunkFile
from vgi_rpc.http._client import HttpTransport


def _serve(**options: Any) -> AbstractContextManager[str]:
    options.setdefault("signing_key", b"feature key")
    return serve_wsgi(
        make_wsgi_app(RpcServer(Service, ServiceImpl(), enable_describe=True), **options)
    )


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with _serve(cors_origins=["https://app.example"]) as base:
        yield base


def test_health_answers_every_verb_with_capability_headers(url: str) -> None:
    get = httpx.get(url + "/vgi/health")
    assert get.status_code == 200
    assert get.json()["status"] == "ok"
    assert get.json()["protocol"] == "Service"
    for reply in (get, httpx.head(url + "/vgi/health"), httpx.options(url + "/vgi/health")):
        assert reply.status_code == 200
        assert reply.headers["VGI-Supported-Encodings"] == "zstd, gzip"
        assert reply.headers["VGI-Externalization-Enabled"] == "false"
        assert reply.headers["X-Request-ID"]
    assert get.headers["VGI-Max-Request-Bytes"] == str(256 << 20)  # the default cap


def test_capabilities_are_discovered_and_request_ids_echoed() -> None:
    with _serve(max_request_bytes=1000, max_stream_response_bytes=5000) as base:
        caps = http_capabilities(base)
        assert (caps.max_request_bytes, caps.max_response_bytes) == (1000, 5000)
        assert caps.supported_encodings == ("zstd", "gzip")
        reply = httpx.post(
            base + "/vgi/noop",
            content=request_body("noop"),
            headers={**ARROW, "X-Request-ID": "abc123"},
        )
        assert reply.headers["X-Request-ID"] == "abc123"
        assert reply.headers["VGI-Max-Response-Bytes"] == "5000"


def test_token_introspection_is_a_definitive_404(url: str) -> None:
    reply = httpx.post(url + "/vgi/__introspect_token__", json={"token": "x"})
    assert reply.status_code == 404
    assert reply.headers["Content-Type"].startswith("application/json")


def test_cors_exposes_the_vgi_headers(url: str) -> None:
    reply = httpx.post(
        url + "/vgi/noop",
        content=request_body("noop"),
        headers={**ARROW, "Origin": "https://app.example"},
    )
    assert reply.headers["Access-Control-Allow-Origin"] == "https://app.example"
    exposed = reply.headers["Access-Control-Expose-Headers"]
    for name in ("X-VGI-RPC-Error", "X-Request-ID", "VGI-Auth-Reason", "WWW-Authenticate"):
        assert name in exposed
    stranger = httpx.post(
        url + "/vgi/noop",
        content=request_body("noop"),
        headers={**ARROW, "Origin": "https://evil.example"},
    )
    assert "Access-Control-Allow-Origin" not in stranger.headers


def test_introspection_over_http(url: str) -> None:
    description = http_introspect(url)
    assert description.protocol_name == "Service"
    assert "countdown" in description.methods


def _bearer(req: falcon.Request) -> AuthContext:
    header = req.get_header("Authorization")
    if header is None:
        return AuthContext.anonymous()
    if header != "Bearer good":
        raise AuthFailure("invalid_credential", "unknown token")
    return AuthContext(domain="test", authenticated=True, principal="alice")


def _strict(req: falcon.Request) -> AuthContext:
    if req.get_header("Authorization") is None:
        raise AuthFailure("missing_credential", "send a bearer token")
    if req.get_header("Authorization") != "Bearer good":
        raise ValueError("no such token")
    return AuthContext(domain="test", authenticated=True, principal="alice")


def test_missing_and_bad_bearer_tokens_are_401_with_the_envelope() -> None:
    with _serve(authenticate=_strict) as base:
        missing = httpx.post(base + "/vgi/noop", content=request_body("noop"), headers=ARROW)
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert missing.headers["VGI-Auth-Reason"] == "missing_credential"
        assert missing.headers["Cache-Control"] == "no-store"
        assert missing.json() == {
            "error": "unauthorized",
            "reason": "missing_credential",
            "detail": "send a bearer token",
        }
        bad = httpx.post(
            base + "/vgi/noop",
            content=request_body("noop"),
            headers={**ARROW, "Authorization": "Bearer x"},
        )
        assert bad.status_code == 401
        assert bad.json()["reason"] == "unauthorized"
        assert httpx.get(base + "/vgi/health").status_code == 200  # exempt
        with http_connect(Service, base, bearer_token="nope") as svc:
            with pytest.raises(HttpUnauthorizedError, match="no such token") as info:
                svc.noop()
            assert info.value.status == 401
            assert info.value.reason == "unauthorized"
            assert isinstance(info.value, RpcError)
            assert info.value.error_type == "AuthenticationError"
            assert info.value.error_message == "no such token"
        with http_connect(Service, base, bearer_token="good") as svc:
            assert svc.secret() == "secret"
            assert svc.whoami().split("|")[1] == "True"


def test_require_authenticated_raises_permission_error_remotely() -> None:
    with _serve(authenticate=_bearer) as base:
        with http_connect(Service, base) as anonymous:
            with pytest.raises(RpcError) as info:
                anonymous.secret()
            assert info.value.error_type == "PermissionError"
        with http_connect(Service, base, bearer_token="good") as alice:
            assert alice.secret() == "secret"


def test_stream_tokens_are_bound_to_the_principal() -> None:
    with _serve(authenticate=_bearer) as base:
        captured: list[httpx.Request] = []
        with (
            httpx.Client(event_hooks={"request": [captured.append]}) as spy,
            http_connect(Service, base, bearer_token="good", client=spy) as alice,
        ):
            session = alice.running_sum()
            session.exchange(pa.RecordBatch.from_pydict({"value": [1.0]}))
        replay = captured[-1]
        anonymous = httpx.post(str(replay.url), content=replay.content, headers=ARROW)
        assert anonymous.status_code == 400
        assert "signature verification failed" in error_message(anonymous.content)


@pytest.mark.parametrize(
    ("headers", "expected_header", "coding"),
    [
        ({"X-VGI-Accept-Encoding": "zstd"}, "X-VGI-Content-Encoding", "zstd"),
        ({"Accept-Encoding": "gzip"}, "Content-Encoding", "gzip"),
        ({"X-VGI-Accept-Encoding": "identity, zstd", "Accept-Encoding": "gzip"}, None, None),
    ],
)
def test_response_coding_follows_the_client_preference(
    url: str, headers: dict[str, str], expected_header: str | None, coding: str | None
) -> None:
    body = request_body("echo_bytes", {"data": [b"abc" * 10_000]})
    reply = httpx.post(url + "/vgi/echo_bytes", content=body, headers={**ARROW, **headers})
    assert reply.status_code == 200
    for name in ("X-VGI-Content-Encoding", "Content-Encoding"):
        assert reply.headers.get(name) == (coding if name == expected_header else None)
    ((batch, _),) = read_batches(
        reply.content if expected_header != "X-VGI-Content-Encoding" else _unzstd(reply.content)
    )
    assert batch.column(0)[0].as_py() == b"abc" * 10_000


def _unzstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompress(data)


def test_compressed_requests_round_trip(url: str) -> None:
    payload = bytes(range(256)) * 4096
    for coding in ("zstd", "gzip"):
        with http_connect(Service, url, request_compression=coding) as svc:
            assert svc.echo_bytes(data=payload) == payload


def _count_posts() -> tuple[httpx.Client, list[str]]:
    paths: list[str] = []
    client = httpx.Client(event_hooks={"request": [lambda r: paths.append(r.url.path)]})
    return client, paths


def test_producer_without_a_cap_sends_one_batch_per_request(url: str) -> None:
    client, paths = _count_posts()
    with client, http_connect(Service, url, client=client) as svc:
        values = [b.batch.column(0)[0].as_py() for b in svc.countdown(n=5)]
    assert values == [5, 4, 3, 2, 1]
    assert paths == ["/vgi/countdown/init"] + ["/vgi/countdown/exchange"] * 5


def test_producer_continues_past_the_response_cap() -> None:
    with _serve(max_stream_response_bytes=2000) as base:
        client, paths = _count_posts()
        with client, http_connect(Service, base, client=client) as svc:
            values = [b.batch.column(0)[0].as_py() for b in svc.countdown(n=100)]
        assert values == list(range(100, 0, -1))
        continuations = paths.count("/vgi/countdown/exchange")
        assert 2 <= continuations < 50  # several batches per response, more than one response


def test_unary_and_exchange_over_the_cap_fail_naming_it() -> None:
    with _serve(max_stream_response_bytes=10_000) as base, http_connect(Service, base) as svc:
        with pytest.raises(RpcError, match="max_response_bytes"):
            svc.echo_bytes(data=bytes(20_000))
        session = svc.echo_rows()
        big = pa.RecordBatch.from_pydict(
            {
                "label": ["y" * 20_000],
                "at": [None],
                "price": [None],
                "nested": [None],
                "maybe": [1],
            },
            schema=ROWS,
        )
        with pytest.raises(RpcError, match="max_response_bytes"):
            session.exchange(big)
        assert svc.echo_bytes(data=b"small") == b"small"


def test_expired_tokens_are_refused() -> None:
    with _serve(token_ttl=1) as base, http_connect(Service, base) as svc:
        session = svc.running_sum()
        time.sleep(2.1)
        with pytest.raises(RpcError, match="expired"):
            session.exchange(pa.RecordBatch.from_pydict({"value": [1.0]}))


def test_turns_can_land_on_another_process_with_the_same_key() -> None:
    servers = [RpcServer(Service, ServiceImpl()) for _ in range(2)]
    with (
        serve_wsgi(make_wsgi_app(servers[0], signing_key=b"shared")) as first,
        serve_wsgi(make_wsgi_app(servers[1], signing_key=b"shared")) as second,
        http_connect(Service, first) as svc,
    ):
        session = svc.running_sum()
        session.exchange(pa.RecordBatch.from_pydict({"value": [2.0]}))
        # Send the next turn to the second server: its cache has never seen the call.
        connection = session._conn  # type: ignore[attr-defined]  # an HttpStreamSession
        connection.transport.close()
        connection.transport = HttpTransport(second)
        answer = session.exchange(pa.RecordBatch.from_pydict({"value": [3.0]}))
        assert answer.batch.column(0)[0].as_py() == 5.0


def test_a_server_that_is_down_is_a_transport_error() -> None:
    with _serve() as base:
        pass
    with http_connect(Service, base) as svc, pytest.raises(TransportError, match="failed"):
        svc.noop()


class Opaque(ProducerState):
    """Not a dataclass: its state cannot travel between HTTP turns."""

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        out.finish()


@dataclass
class Unmappable(ProducerState):
    handle: object

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        out.finish()


class Odd(Protocol):
    def opaque(self) -> Stream[StreamState]: ...
    def unmappable(self) -> Stream[StreamState]: ...


class OddImpl:
    def opaque(self) -> Stream[Opaque]:
        return Stream(output_schema=pa.schema([("x", pa.int64())]), state=Opaque())

    def unmappable(self) -> Stream[Unmappable]:
        return Stream(output_schema=pa.schema([("x", pa.int64())]), state=Unmappable(object()))


def test_a_state_that_cannot_travel_fails_at_init_with_a_clear_error() -> None:
    app = make_wsgi_app(RpcServer(Odd, OddImpl()), signing_key=b"k")
    with serve_wsgi(app) as base, http_connect(Odd, base) as odd:
        with pytest.raises(RpcError, match="must be a @dataclass"):
            odd.opaque()
        with pytest.raises(RpcError, match="cannot travel over HTTP"):
            odd.unmappable()


class Wider(Protocol):
    def noop(self) -> None: ...
    def not_served(self) -> None: ...


def test_client_errors_for_an_unknown_method_and_an_oversized_body() -> None:
    with _serve(max_request_bytes=50_000) as base:
        with http_connect(Wider, base) as wider, pytest.raises(RpcError) as unknown:
            wider.not_served()
        assert unknown.value.error_kind == "method_not_implemented"
        assert "Unknown method: 'not_served'" in str(unknown.value)
        with http_connect(Service, base) as svc:
            with pytest.raises(RpcError, match="exceeds max_request_bytes"):
                svc.echo_bytes(data=bytes(60_000))
            assert svc.echo_bytes(data=b"fits") == b"fits"


def test_incompressible_bodies_are_sent_as_they_are(url: str) -> None:
    """A body whose sample does not shrink is not compressed, whatever the client accepts."""
    noise = os.urandom(2 << 20)
    text = b"abc" * 700_000
    for payload, compressed in ((noise, False), (text, True)):
        body = request_body("echo_bytes", {"data": [payload]})
        reply = httpx.post(
            url + "/vgi/echo_bytes",
            content=body,
            headers={**ARROW, "X-VGI-Accept-Encoding": "zstd"},
        )
        assert reply.headers.get("X-VGI-Content-Encoding") == ("zstd" if compressed else None)
        content = _unzstd(reply.content) if compressed else reply.content
        ((batch, _),) = read_batches(content)
        assert batch.column(0)[0].as_py() == payload


@pytest.mark.parametrize("size", [3 << 20, 40 << 20])
def test_large_bodies_round_trip_through_the_servers_file_wrapper(url: str, size: int) -> None:
    """Bodies past 1 MiB leave the client unjoined and the server through wsgi.file_wrapper."""
    payload = os.urandom(size)
    with http_connect(Service, url) as svc:
        assert svc.echo_bytes(data=payload) == payload


def test_large_bodies_round_trip_without_a_file_wrapper() -> None:
    """httpx's WSGI transport offers no wsgi.file_wrapper: the buffers go out as an iterable."""
    app = make_wsgi_app(RpcServer(Service, ServiceImpl()), signing_key=b"k" * 32)
    payload = os.urandom(3 << 20)
    with (
        httpx.Client(transport=httpx.WSGITransport(app=app)) as client,
        http_connect(Service, "http://in-process", client=client) as svc,
    ):
        assert svc.echo_bytes(data=payload) == payload


@pytest.mark.parametrize("sizes", [[5, 0, 3, 1], [1 << 20, 7, 1 << 20], [0], [10]])
def test_a_chunk_file_reads_and_seeks_like_the_joined_bytes(sizes: list[int]) -> None:
    chunks: list[bytes | memoryview] = [os.urandom(n) for n in sizes]
    chunks[-1] = memoryview(chunks[-1])
    joined = b"".join(chunks)
    body = ChunkFile(chunks)
    assert body.seek(0, io.SEEK_END) == len(joined)
    for start, step in ((0, 1), (0, 4), (3, 1 << 19), (len(joined) // 2, 3)):
        body.seek(start)
        parts = []
        while part := body.read(step):
            parts.append(part)
        assert b"".join(parts) == joined[start:]
    body.seek(2)
    target = bytearray(len(joined))
    assert body.readinto(target) == max(len(joined) - 2, 0)
    assert bytes(target[: len(joined) - 2]) == joined[2:]
    with pytest.raises(ValueError, match="negative"):
        body.seek(-1)


@pytest.mark.parametrize("views", [False, True])
def test_a_chunk_file_never_copies_a_large_chunk_together_with_another(views: bool) -> None:
    small, large = os.urandom(100), os.urandom(1 << 20)
    chunks: list[bytes | memoryview] = [small, small, large, small, large]
    body = ChunkFile(chunks, views=views)
    parts = []
    while part := body.read(3 << 20):
        parts.append(part)
    assert b"".join(parts) == b"".join(chunks)
    # the two leading headers gathered, then each large chunk alone, the small one between
    assert [len(p) for p in parts] == [200, 1 << 20, 100, 1 << 20]
    assert all(isinstance(p, memoryview) is (views and len(p) == 1 << 20) for p in parts)
