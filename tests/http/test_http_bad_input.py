"""Bad HTTP input: each case gets the right status and a readable message, and the
server answers the next request normally."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import zstandard

from tests._services import Service, ServiceImpl
from tests.conftest import serve_wsgi
from tests.http._helpers import ARROW, error_message, request_body, stream_body, tokens
from vgi_rpc import RpcServer
from vgi_rpc.http import make_wsgi_app
from vgi_rpc.wire import keys as k

MAX_REQUEST = 1 << 20


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = make_wsgi_app(
        RpcServer(Service, ServiceImpl()),
        signing_key=b"bad-input key",
        max_request_bytes=MAX_REQUEST,
    )
    with serve_wsgi(app) as base:
        yield base + "/vgi"


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url) as c:
        yield c


def _still_serving(client: httpx.Client) -> None:
    reply = client.post(
        "/greet",
        content=request_body("greet", {"name": ["ok"], "punctuation": ["."]}),
        headers=ARROW,
    )
    assert reply.status_code == 200
    assert "X-VGI-RPC-Error" not in reply.headers


def test_wrong_content_type_is_415(client: httpx.Client) -> None:
    reply = client.post("/noop", content=b"{}", headers={"Content-Type": "application/json"})
    assert reply.status_code == 415
    assert "application/vnd.apache.arrow.stream" in error_message(reply.content)
    _still_serving(client)


def test_unsupported_content_encoding_is_415(client: httpx.Client) -> None:
    headers = {**ARROW, "Content-Encoding": "br"}
    reply = client.post("/noop", content=request_body("noop"), headers=headers)
    assert reply.status_code == 415
    assert "unsupported Content-Encoding 'br'" in error_message(reply.content)
    _still_serving(client)


def test_corrupt_compressed_body_is_400(client: httpx.Client) -> None:
    headers = {**ARROW, "Content-Encoding": "zstd"}
    reply = client.post("/noop", content=b"\x28\xb5\x2f\xfd garbage", headers=headers)
    assert reply.status_code == 400
    assert "does not decode as zstd" in error_message(reply.content)
    _still_serving(client)


def test_truncated_body_is_400(client: httpx.Client) -> None:
    body = request_body("greet", {"name": ["x"], "punctuation": ["!"]})
    reply = client.post("/greet", content=body[: len(body) // 2], headers=ARROW)
    assert reply.status_code == 400
    assert "IPC" in error_message(reply.content) or "stream" in error_message(reply.content)
    _still_serving(client)


def test_garbage_body_is_400(client: httpx.Client) -> None:
    reply = client.post("/noop", content=b"GET / HTTP/1.1\r\n\r\n" * 10, headers=ARROW)
    assert reply.status_code == 400
    assert "Arrow IPC" in error_message(reply.content)
    _still_serving(client)


def test_empty_body_is_400(client: httpx.Client) -> None:
    reply = client.post("/noop", content=b"", headers=ARROW)
    assert reply.status_code == 400
    assert "empty" in error_message(reply.content)
    _still_serving(client)


def test_zstd_bomb_over_the_cap_is_413_without_inflating_it(client: httpx.Client) -> None:
    bomb = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(bytes(256 << 20))
    assert len(bomb) < MAX_REQUEST // 10
    reply = client.post("/noop", content=bomb, headers={**ARROW, "Content-Encoding": "zstd"})
    assert reply.status_code == 413
    assert "max_request_bytes" in error_message(reply.content)
    _still_serving(client)


def test_body_over_max_request_bytes_is_413(client: httpx.Client) -> None:
    body = request_body("echo_bytes", {"data": [bytes(MAX_REQUEST + 1)]})
    reply = client.post("/echo_bytes", content=body, headers=ARROW)
    assert reply.status_code == 413
    assert reply.headers["VGI-Max-Request-Bytes"] == str(MAX_REQUEST)
    assert "exceeds max_request_bytes" in error_message(reply.content)
    _still_serving(client)


def test_unknown_method_is_404_with_the_available_methods(client: httpx.Client) -> None:
    reply = client.post("/nope", content=request_body("nope"), headers=ARROW)
    assert reply.status_code == 404
    message = error_message(reply.content)
    assert "Unknown method: 'nope'" in message
    assert "greet" in message
    _still_serving(client)


def test_url_and_batch_naming_different_methods_is_400(client: httpx.Client) -> None:
    reply = client.post("/greet", content=request_body("noop"), headers=ARROW)
    assert reply.status_code == 400
    assert "URL names method 'greet'" in error_message(reply.content)
    _still_serving(client)


def test_wrong_parameter_type_is_400(client: httpx.Client) -> None:
    body = request_body("add", {"a": ["one"], "b": ["two"]})
    reply = client.post("/add", content=body, headers=ARROW)
    assert reply.status_code == 400
    _still_serving(client)


def test_method_error_is_200_with_the_error_header(client: httpx.Client) -> None:
    reply = client.post("/fail", content=request_body("fail", {"message": ["boom"]}), headers=ARROW)
    assert reply.status_code == 200
    assert reply.headers["X-VGI-RPC-Error"] == "true"
    assert "boom" in error_message(reply.content)


def _exchange_tokens(client: httpx.Client) -> dict[bytes, bytes]:
    reply = client.post("/running_sum/init", content=request_body("running_sum"), headers=ARROW)
    assert reply.status_code == 200
    found = tokens(reply.content)
    assert set(found) == {k.STREAM_STATE_KEY, k.CALL_STATE_KEY}
    return found


def _turn(client: httpx.Client, method: str, metadata: dict[bytes, bytes]) -> httpx.Response:
    import pyarrow as pa

    batch = pa.RecordBatch.from_pydict({"value": [1.0]})
    return client.post(f"/{method}/exchange", content=stream_body(batch, metadata), headers=ARROW)


def test_a_valid_token_turns_the_stream(client: httpx.Client) -> None:
    reply = _turn(client, "running_sum", _exchange_tokens(client))
    assert reply.status_code == 200
    assert "X-VGI-RPC-Error" not in reply.headers
    assert k.STREAM_STATE_KEY in tokens(reply.content)


def test_forged_state_token_is_400(client: httpx.Client) -> None:
    found = _exchange_tokens(client)
    cursor = bytearray(found[k.STREAM_STATE_KEY])
    cursor[20] = ord("A") if cursor[20] != ord("A") else ord("B")
    reply = _turn(client, "running_sum", {**found, k.STREAM_STATE_KEY: bytes(cursor)})
    assert reply.status_code == 400
    assert "signature verification failed" in error_message(reply.content)
    _still_serving(client)


def test_truncated_state_token_is_400(client: httpx.Client) -> None:
    found = _exchange_tokens(client)
    reply = _turn(
        client, "running_sum", {**found, k.STREAM_STATE_KEY: found[k.STREAM_STATE_KEY][:12]}
    )
    assert reply.status_code == 400
    _still_serving(client)


def test_missing_state_token_is_400(client: httpx.Client) -> None:
    reply = _turn(client, "running_sum", {})
    assert reply.status_code == 400
    assert "stream_state" in error_message(reply.content)


def test_replayed_call_token_from_another_stream_is_400(client: httpx.Client) -> None:
    first, second = _exchange_tokens(client), _exchange_tokens(client)
    mixed = {
        k.STREAM_STATE_KEY: first[k.STREAM_STATE_KEY],
        k.CALL_STATE_KEY: second[k.CALL_STATE_KEY],
    }
    # A fresh app with the same key has no cache, so the call token must be opened.
    app = make_wsgi_app(RpcServer(Service, ServiceImpl()), signing_key=b"bad-input key")
    with serve_wsgi(app) as other, httpx.Client(base_url=other + "/vgi") as cold:
        reply = _turn(cold, "running_sum", mixed)
        assert reply.status_code == 400
        assert "different streams" in error_message(reply.content)
        assert _turn(cold, "running_sum", first).status_code == 200


def test_token_replayed_on_another_method_is_400(client: httpx.Client) -> None:
    reply = _turn(client, "echo_rows", _exchange_tokens(client))
    assert reply.status_code == 400
    assert "belongs to a running_sum() stream" in error_message(reply.content)
    _still_serving(client)


def test_token_from_a_server_with_another_key_is_400(client: httpx.Client) -> None:
    app = make_wsgi_app(RpcServer(Service, ServiceImpl()), signing_key=b"some other key")
    with serve_wsgi(app) as other, httpx.Client(base_url=other + "/vgi") as foreign:
        reply = _turn(foreign, "running_sum", _exchange_tokens(client))
        assert reply.status_code == 400
        assert "signature verification failed" in error_message(reply.content)
