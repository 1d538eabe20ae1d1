"""Issue 9's findings over HTTP: each hostile request gets a 4xx with a message, never a
crash, a 500 or bytes of the server's memory, and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import httpx
import pyarrow as pa
import pytest

from tests import _hostile as hostile
from tests.conftest import serve_wsgi
from tests.http._helpers import ARROW, read_batches, request_body, stream_body, tokens
from vgi_rpc import (
    AuthContext,
    CallContext,
    OutputCollector,
    ProducerState,
    ResourceLimits,
    RpcServer,
    Stream,
    StreamState,
)
from vgi_rpc.http import make_wsgi_app
from vgi_rpc.wire import keys as k


class Texts(Protocol):
    def echo(self, text: str) -> str: ...
    def spell(self, text: str) -> Stream[StreamState]: ...
    def fail(self) -> str: ...
    def count(self, n: int) -> Stream[StreamState]: ...


@dataclass
class Spell(ProducerState):
    text: str
    at: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        if self.at >= len(self.text):
            out.finish()
            return
        out.emit_pydict({"letter": [self.text[self.at]]})
        self.at += 1


class TextsImpl:
    def echo(self, text: str) -> str:
        return text

    def spell(self, text: str) -> Stream[Spell]:
        return Stream(output_schema=pa.schema([("letter", pa.utf8())]), state=Spell(text))

    def fail(self) -> str:
        raise ValueError("the implementation failed")

    def count(self, n: int) -> Stream[Spell]:
        return Stream(output_schema=pa.schema([("letter", pa.utf8())]), state=Spell("x" * n))


def _app(**options: object) -> object:
    server_options = {k: options.pop(k) for k in ("limits", "expose_tracebacks") if k in options}
    server = RpcServer(Texts, TextsImpl(), **server_options)  # type: ignore[arg-type]
    return make_wsgi_app(server, signing_key=b"hardening", **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with serve_wsgi(_app()) as base, httpx.Client(base_url=base + "/vgi") as c:
        yield c


def _error(reply: httpx.Response) -> dict[bytes, bytes]:
    for _, metadata in read_batches(reply.content):
        if metadata.get(k.LOG_LEVEL_KEY) == b"EXCEPTION":
            return metadata
    raise AssertionError(f"no error batch in a {reply.status_code} reply")


def _still_serving(client: httpx.Client) -> None:
    reply = client.post("/echo", content=request_body("echo", {"text": ["ok"]}), headers=ARROW)
    assert reply.status_code == 200
    ((batch, _),) = read_batches(reply.content)
    assert batch.to_pydict() == {"result": ["ok"]}


@pytest.mark.parametrize(("path", "method"), [("/echo", "echo"), ("/spell/init", "spell")])
def test_string_offsets_past_the_data_get_400_not_server_memory(
    client: httpx.Client, path: str, method: str
) -> None:
    body = hostile.string_offsets_past_data(method, "text")
    reply = client.post(path, content=body, headers=ARROW)
    assert reply.status_code == 400
    assert "validation" in _error(reply)[k.LOG_MESSAGE_KEY].decode()
    # The answer is an error stream of a few hundred bytes, not the megabyte the offsets claim.
    assert len(reply.content) < 4096
    _still_serving(client)


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (hostile.odd_int_width_schema, "ArrowNotImplementedError: Integers with less than 8 bits"),
        (hostile.huge_body_length, "exceeds the limit"),
    ],
    ids=["int7", "body2^63"],
)
def test_reader_exceptions_become_400(client: httpx.Client, build: object, says: str) -> None:
    body = build("echo", "text")  # type: ignore[operator]
    reply = client.post("/echo", content=body, headers=ARROW)
    assert reply.status_code == 400
    message = _error(reply)[k.LOG_MESSAGE_KEY].decode()
    assert message.startswith("ProtocolError: ")
    assert says in message
    _still_serving(client)


def test_default_app_caps_request_bodies_at_256_mib(client: httpx.Client) -> None:
    reply = client.get("/health")
    assert reply.headers["VGI-Max-Request-Bytes"] == str(256 << 20)
    assert ResourceLimits().max_request_bytes == 256 << 20


def test_too_wide_and_too_deep_schemas_are_refused_before_parsing(client: httpx.Client) -> None:
    wide = client.post("/echo", content=hostile.wide_schema("echo", 10_001), headers=ARROW)
    assert wide.status_code == 400
    assert "max_columns" in _error(wide)[k.LOG_MESSAGE_KEY].decode()
    _still_serving(client)


def test_schemas_nested_past_the_limit_are_refused() -> None:
    # pyarrow itself writes at most 64 levels, so the default (64) is tested at a lower bound.
    app = _app(limits=ResourceLimits(max_nesting_depth=8))
    with serve_wsgi(app) as base, httpx.Client(base_url=base + "/vgi") as c:
        deep = c.post("/echo", content=hostile.deep_schema("echo", 8), headers=ARROW)
        assert deep.status_code == 400
        assert "max_nesting_depth" in _error(deep)[k.LOG_MESSAGE_KEY].decode()
        fine = c.post("/echo", content=hostile.deep_schema("echo", 7), headers=ARROW)
        assert fine.status_code == 400  # parsed, then refused as an unknown parameter
        assert "unexpected parameters ['deep']" in _error(fine)[k.LOG_MESSAGE_KEY].decode()
        _still_serving(c)


def test_schema_cache_stays_within_its_byte_bound() -> None:
    limits = ResourceLimits(schema_cache_bytes=4 << 20)
    server = RpcServer(Texts, TextsImpl(), limits=limits)
    app = make_wsgi_app(server, signing_key=b"cache")
    with serve_wsgi(app) as base, httpx.Client(base_url=base + "/vgi") as c:
        for i in range(12):
            reply = c.post("/echo", content=hostile.wide_schema(f"echo{i}", 5_000), headers=ARROW)
            assert reply.status_code == 400  # routed to an unknown name: refused after parsing
        cache = server.read_policy.schemas
        assert 0 < cache.size <= limits.schema_cache_bytes
        _still_serving(c)


# -- tracebacks ---------------------------------------------------------------


def test_protocol_errors_carry_no_traceback(client: httpx.Client) -> None:
    reply = client.post(
        "/echo", content=hostile.odd_int_width_schema("echo", "text"), headers=ARROW
    )
    extra = _error(reply)[k.LOG_EXTRA_KEY].decode()
    assert "traceback" not in extra
    assert ".py" not in extra


def test_anonymous_http_callers_get_no_implementation_traceback(client: httpx.Client) -> None:
    reply = client.post("/fail", content=request_body("fail"), headers=ARROW)
    assert reply.status_code == 200
    metadata = _error(reply)
    assert metadata[k.LOG_MESSAGE_KEY] == b"ValueError: the implementation failed"
    assert b"traceback" not in metadata[k.LOG_EXTRA_KEY]


def _authenticated(request: object) -> AuthContext:
    return AuthContext(domain="test", authenticated=True, principal="alice")


def test_authenticated_http_callers_get_the_traceback() -> None:
    with (
        serve_wsgi(_app(authenticate=_authenticated)) as base,
        httpx.Client(base_url=base + "/vgi") as c,
    ):
        reply = c.post("/fail", content=request_body("fail"), headers=ARROW)
        assert (
            b'raise ValueError(\\"the implementation failed\\")' in _error(reply)[k.LOG_EXTRA_KEY]
        )


def test_expose_tracebacks_false_hides_them_from_everyone() -> None:
    app = _app(authenticate=_authenticated, expose_tracebacks=False)
    with serve_wsgi(app) as base, httpx.Client(base_url=base + "/vgi") as c:
        reply = c.post("/fail", content=request_body("fail"), headers=ARROW)
        assert b"traceback" not in _error(reply)[k.LOG_EXTRA_KEY]


# -- cursor replay ------------------------------------------------------------


def _init(c: httpx.Client, n: int) -> dict[bytes, bytes]:
    reply = c.post("/count/init", content=request_body("count", {"n": [n]}), headers=ARROW)
    assert reply.status_code == 200
    return tokens(reply.content)


def _continue(c: httpx.Client, found: dict[bytes, bytes]) -> httpx.Response:
    tick = pa.RecordBatch.from_pydict({})
    return c.post("/count/exchange", content=stream_body(tick, found), headers=ARROW)


def test_without_a_guard_a_cursor_can_be_replayed_as_documented() -> None:
    app = _app(max_stream_response_bytes=1)  # one batch per response, then a cursor
    with serve_wsgi(app) as base, httpx.Client(base_url=base + "/vgi") as c:
        first = _init(c, 5)
        assert _continue(c, first).status_code == 200
        assert _continue(c, first).status_code == 200


def test_replay_guard_accepts_each_cursor_once() -> None:
    app = _app(max_stream_response_bytes=1, replay_guard=True)
    with serve_wsgi(app) as base, httpx.Client(base_url=base + "/vgi") as c:
        found = _init(c, 3)
        turns = []
        while k.STREAM_STATE_KEY in found:
            reply = _continue(c, found)
            assert reply.status_code == 200
            turns.append(found)
            found = {**found, **tokens(reply.content)} if tokens(reply.content) else {}
        assert len(turns) >= 3
        for spent in turns:  # older cursors, and the one that finished the stream
            replay = _continue(c, spent)
            assert replay.status_code == 400
            assert b"already used" in _error(replay)[k.LOG_MESSAGE_KEY]
        assert k.STREAM_STATE_KEY in _init(c, 2)  # new streams still start
