"""The service page (``GET {prefix}/``) and its JSON call endpoint, without a browser.

The browser test (``test_page_browser.py``) shows the page working in Chromium;
these check what it is made of: every hosted protocol and method, readable
types, escaping of everything the service supplies, authentication, and the
call endpoint's answers to bad input.
"""

from __future__ import annotations

import html
import html.parser
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import falcon
import httpx
import pyarrow as pa
import pytest

from tests._services import Service, ServiceImpl
from vgi_rpc import AuthContext, CallContext, RpcServer
from vgi_rpc.http import AuthFailure, make_wsgi_app
from vgi_rpc.rpc import CallRecord

JSON = {"Content-Type": "application/json"}


class Greeter(Protocol):
    """Greets people."""

    protocol_name: ClassVar[str] = "demo.Greeter"
    protocol_version: ClassVar[str] = "1.2.0"

    def hello(self, name: str, times: int = 1) -> str:
        """Say hello ``times`` times."""
        ...

    def caller(self) -> str: ...
    def rows(self, batch: pa.RecordBatch) -> pa.RecordBatch: ...


class GreeterImpl:
    def hello(self, name: str, times: int = 1) -> str:
        return " ".join([f"hello {name}"] * times)

    def caller(self, ctx: CallContext) -> str:
        return f"{ctx.auth.principal or 'anonymous'}|{ctx.auth.authenticated}"

    def rows(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch


def _server() -> RpcServer:
    return RpcServer({Service: ServiceImpl(), Greeter: GreeterImpl()}, enable_describe=True)


class _Page(html.parser.HTMLParser):
    """The page's methods, forms, scripts and every tag/attribute, as parsed by a real HTML parser."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.methods: dict[tuple[str, str], str] = {}
        self.forms: list[str] = []
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        found = dict(attrs)
        if tag == "article":
            self.methods[(found["data-protocol"] or "", found["data-method"] or "")] = (
                found["data-kind"] or ""
            )
        if tag == "form":
            self.forms.append(found["data-url"] or "")


def _client(app: object, script_name: str = "") -> httpx.Client:
    """An in-process client of a WSGI app (no sockets, no threads)."""
    transport = httpx.WSGITransport(app=app, script_name=script_name)  # type: ignore[arg-type]  # a WSGI callable
    return httpx.Client(transport=transport, base_url="http://page.test")


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with _client(make_wsgi_app(_server(), signing_key=b"k")) as c:
        yield c


def _call(client: httpx.Client, path: str, body: object, **headers: str) -> httpx.Response:
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(f"/vgi/page-call/{path}", content=content, headers={**JSON, **headers})


def test_the_page_lists_every_hosted_protocol_and_method_with_its_kind(
    client: httpx.Client,
) -> None:
    server = _server()
    reply = client.get("/vgi/", headers={"Accept": "text/html"})
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    page = _Page(reply.text)
    expected = {
        (name, method): (
            "unary"
            if not info.is_stream
            else {True: "exchange", False: "producer", None: "stream"}[info.is_exchange]
        )
        for name, hosted in server.hosted.items()
        for method, info in hosted.methods.items()
    }
    assert page.methods == expected
    assert {"Service", "demo.Greeter", "vgi_rpc.Reflection.v1"} == {p for p, _ in expected}
    # One form per unary method, posting to the routed call endpoint of its protocol.
    unary = sorted(
        f"/vgi/page-call/{p}/{m}" for (p, m), kind in expected.items() if kind == "unary"
    )
    assert sorted(page.forms) == unary
    assert _Page(client.get("/vgi").text).methods == expected  # with or without the slash


def _nonce(reply: httpx.Response) -> str:
    match = re.search(r"'nonce-([^']+)'", reply.headers["Content-Security-Policy"])
    assert match is not None
    return match.group(1)


def test_types_docs_defaults_and_stream_schemas_are_readable(client: httpx.Client) -> None:
    text = client.get("/vgi/").text
    assert "add(a: double, b: double) → double" in text
    assert "Add two numbers." in text
    assert "Say hello ``times`` times." in text
    assert "echo_map(mapping: map&lt;string, list&lt;int64&gt;&gt;)" in text
    assert "echo_set(values: list&lt;string&gt;)" in text
    assert "echo_money(amount: decimal128(12, 2))" in text
    # A dataclass parameter: its name, that it travels as IPC, and its fields' Arrow types.
    order = text[text.index("<code>Order</code>") :]
    order = order[: order.index("</details>")]
    assert "(a dataclass, as Arrow IPC in <code>binary</code>)" in order
    assert "<summary>4 fields</summary>" in order
    assert (
        "<td><code>items</code></td><td><code>list&lt;struct&lt;name: string, qty: int64, "
        "tags: list&lt;string&gt;&gt;&gt;</code></td><td>required</td>"
    ) in order
    assert "<td><code>note</code></td><td><code>string</code></td><td>nullable</td>" in order
    assert "enum Color: RED, GREEN" in text
    assert "default <code>&quot;!&quot;</code>" in text  # greet(punctuation="!")
    assert "demo.Greeter<span class='ver'>1.2.0</span>" in text
    # Streams: kind, header schema, and how to call them.
    counted = text[text.index("<article class='method' id='p-Service-counted'") :]
    counted = counted[: counted.index("</article>")]
    assert "producer stream" in counted
    assert "<code>CountHeader</code>" in counted
    assert "<td><code>total</code></td><td><code>int64</code></td>" in counted
    assert "POST /vgi/Service/counted/init" in counted
    running = text[text.index("<article class='method' id='p-Service-running_sum'") :]
    assert "exchange stream" in running[: running.index("</article>")]


class Hostile(Protocol):
    """</style><script>alert('protocol')</script>"""

    def trap(self, label: str = "<script>alert('default')</script>") -> str:
        """<img src=x onerror=alert('doc')> '"><svg onload=alert(1)> &amp; </textarea><b>"""
        ...


class HostileImpl:
    def trap(self, label: str = "") -> str:
        return "</pre><script>alert('result')</script>"


def test_everything_the_service_supplies_is_escaped() -> None:
    with _client(make_wsgi_app(RpcServer(Hostile, HostileImpl()), signing_key=b"k")) as c:
        reply = c.get("/vgi/")
        called = _call(c, "Hostile/trap", {"label": "<i>x</i>"})
    text = reply.text
    page = _Page(text)
    tags = [tag for tag, _ in page.tags]
    assert tags.count("script") == 1
    assert tags.count("style") == 1
    assert not {"img", "svg", "i"} & set(tags)
    assert not [name for _, attrs in page.tags for name, _ in attrs if name.startswith("on")]
    assert tags.count("textarea") == 1  # the docstring's </textarea> did not close the form's
    assert "&lt;/style&gt;&lt;script&gt;alert(&#x27;protocol&#x27;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(&#x27;doc&#x27;)&gt;" in text
    assert "&amp;amp;" in text
    # The default lands in the form's JSON, escaped.
    assert (
        "&quot;label&quot;: &quot;&lt;script&gt;alert(&#x27;default&#x27;)&lt;/script&gt;&quot;"
        in text
    )
    # Results travel as JSON; the page's script shows them with textContent.
    assert called.json()["result"] == "</pre><script>alert('result')</script>"
    assert called.headers["Content-Type"].startswith("application/json")


def test_the_page_has_no_external_assets_and_a_strict_policy(client: httpx.Client) -> None:
    reply = client.get("/vgi/")
    nonce = _nonce(reply)
    policy = reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Cache-Control"] == "no-store"
    page = _Page(reply.text)
    for tag, attrs in page.tags:
        found = dict(attrs)
        if tag in ("script", "style"):
            assert found.get("nonce") == nonce
            assert "src" not in found
        for name in ("src", "href"):
            value = found.get(name)
            assert value is None or value.startswith(("#", "data:")), (tag, name, value)
    assert _nonce(client.get("/vgi/")) != nonce  # fresh per response
    head = client.head("/vgi/")
    assert head.status_code == 200
    assert head.content == b""


def test_other_routes_answer_as_before(client: httpx.Client) -> None:
    health = client.get("/vgi/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert client.get("/vgi/add").status_code == 405
    assert client.get("/elsewhere").status_code == 404


def test_service_page_false_removes_the_page_and_its_endpoint() -> None:
    app = make_wsgi_app(_server(), signing_key=b"k", service_page=False)
    with _client(app) as c:
        assert c.get("/vgi/").status_code == 404
        refused = _call(c, "Service/add", {"a": 1, "b": 2})
        assert refused.status_code == 404
        assert "result" not in refused.text


def test_the_page_follows_the_mount_point_and_an_empty_prefix() -> None:
    app = make_wsgi_app(RpcServer(Greeter, GreeterImpl()), signing_key=b"k", prefix="")
    # Mounted under /mounted by the WSGI server (SCRIPT_NAME): the forms post back through it.
    with _client(app, script_name="/mounted") as mounted:
        page = _Page(mounted.get("/").text)
        assert page.forms == [
            "/mounted/page-call/demo.Greeter/caller",
            "/mounted/page-call/demo.Greeter/hello",
            "/mounted/page-call/demo.Greeter/rows",
        ]
        answer = mounted.post(
            page.forms[1].removeprefix("/mounted"), json={"name": "ann", "times": 2}
        )
        assert answer.json()["result"] == "hello ann hello ann"


def _strict(req: falcon.Request) -> AuthContext:
    token = req.get_header("Authorization")
    if token is None:
        raise AuthFailure("missing_credential", "send a bearer token")
    if token != "Bearer good":
        raise ValueError("no such token")
    return AuthContext(domain="test", authenticated=True, principal="alice")


def test_the_page_and_its_calls_respect_authenticate() -> None:
    with _client(make_wsgi_app(_server(), signing_key=b"k", authenticate=_strict)) as c:
        for reply in (
            c.get("/vgi/"),
            c.head("/vgi/"),
            _call(c, "demo.Greeter/caller", {}),
        ):
            assert reply.status_code == 401
            assert reply.headers["VGI-Auth-Reason"] == "missing_credential"
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
            assert "hello" not in reply.text
            assert "<html" not in reply.text
        bad = _call(c, "demo.Greeter/caller", {}, Authorization="Bearer nope")
        assert bad.status_code == 401
        assert bad.json()["reason"] == "unauthorized"
        good = {"Authorization": "Bearer good"}
        assert c.get("/vgi/", headers=good).status_code == 200
        # The caller the page's endpoint authenticated is the one the method sees.
        assert _call(c, "demo.Greeter/caller", {}, **good).json()["result"] == "alice|True"


@dataclass
class _Seen:
    calls: list[CallRecord]

    def start(self, call: CallRecord, metadata: Any, auth: AuthContext | None) -> None:
        self.calls.append(call)


def test_a_page_call_is_an_ordinary_call_of_the_server() -> None:
    server = _server()
    seen = _Seen([])
    server.add_observer(seen)
    with _client(make_wsgi_app(server, signing_key=b"k")) as c:
        answer = _call(c, "demo.Greeter/hello", {"name": "bo"}).json()
        logged = _call(c, "Service/logs", {"count": 2}).json()
    assert answer["result"] == "hello bo"  # the default times=1 came from the Protocol
    [hello, logs] = seen.calls
    assert (hello.protocol, hello.method, hello.request_id) == (
        "demo.Greeter",
        "hello",
        answer["request_id"],
    )
    assert logs.method == "logs"
    assert logs.stats.output_rows == 1
    assert logged["result"] == 2
    assert logged["logs"] == [
        {"level": "INFO", "message": "log 0", "extra": {"index": 0}},
        {"level": "INFO", "message": "log 1", "extra": {"index": 1}},
    ]


def test_a_batch_argument_is_an_array_of_rows(client: httpx.Client) -> None:
    rows = [{"a": 1, "b": "x"}, {"a": None, "b": "y"}]
    assert _call(client, "demo.Greeter/rows", {"batch": rows}).json()["result"] == rows
    refused = _call(client, "demo.Greeter/rows", {"batch": [1, 2]})
    assert refused.status_code == 400
    assert "expected a JSON array of row objects" in refused.json()["error"]["message"]


def test_every_prefilled_form_is_accepted_by_the_conformance_service() -> None:
    """The placeholders have the right types: no form starts out as a request error."""
    from conformance.impl import ConformanceImpl
    from conformance.protocol import ConformanceService, ConformanceServiceV2
    from conformance.secondary import Secondary, SecondaryImpl

    impl = ConformanceImpl()
    server = RpcServer(
        {ConformanceServiceV2: impl, Secondary: SecondaryImpl()},
        default_protocol=(ConformanceService, impl),
        enable_describe=True,
    )
    with _client(make_wsgi_app(server, signing_key=b"k")) as c:
        text = c.get("/vgi/").text
        forms = re.findall(r"data-url='([^']+)'.*?<textarea[^>]*>(.*?)</textarea>", text, re.S)
        assert len(forms) == len(_Page(text).forms) > 100
        refused = []
        for url, body in forms:
            reply = c.post(html.unescape(url), content=html.unescape(body), headers=JSON)
            if reply.status_code != 200:
                refused.append((url, reply.json()["error"]))
    assert refused == []


@pytest.mark.parametrize(
    ("path", "params", "result"),
    [
        ("Service/add", {"a": 1.5, "b": 2}, 3.5),
        ("Service/noop", {}, None),
        ("Service/greet", {"name": "ann"}, "hello ann!"),
        ("Service/echo_bytes", {"data": "base64:AP8="}, "base64:AP8="),
        ("Service/echo_bytes", {"data": "plain"}, "plain"),
        ("Service/echo_big", {"data": "big"}, "big"),
        ("Service/echo_color", {"color": "GREEN"}, "GREEN"),
        ("Service/echo_optional", {}, None),
        ("Service/echo_optional", {"value": "9007199254740993"}, "9007199254740993"),
        ("Service/echo_map", {"mapping": {"a": [1, 2]}}, {"a": [1, 2]}),
        ("Service/echo_set", {"values": ["x"]}, ["x"]),
        (
            "Service/echo_when",
            {"when": "2024-05-17T12:30:00", "day": "2024-05-18"},
            "2024-05-17T12:30:00 2024-05-18",
        ),
        ("Service/echo_money", {"amount": "12.50"}, "12.50"),
        (
            "Service/echo_order",
            {"order": {"id": 7, "items": [{"name": "nut", "qty": 2, "tags": []}], "color": "RED"}},
            {
                "id": 7,
                "items": [{"name": "nut", "qty": 2, "tags": []}],
                "color": "RED",
                "note": None,
            },
        ),
    ],
)
def test_json_arguments_and_results_round_trip(
    client: httpx.Client, path: str, params: dict[str, object], result: object
) -> None:
    reply = _call(client, path, params)
    assert reply.status_code == 200, reply.text
    assert reply.json()["result"] == result
    assert "error" not in reply.json()


@pytest.mark.parametrize(
    ("path", "body", "status", "error_type", "message"),
    [
        ("Service/add", "{bad", 400, "BadRequest", "not valid JSON: Expecting property name"),
        ("Service/add", "[1, 2]", 400, "BadRequest", "must be a JSON object of parameters"),
        ("Service/add", b"\xff\xfe\xfd", 400, "BadRequest", "not valid JSON"),
        ("Service/add", "[" * 100_000, 400, "BadRequest", "not valid JSON"),
        ("Service/add", {"a": 1}, 400, "TypeError", "add() needs 'b'"),
        (
            "Service/add",
            {"a": 1, "b": 2, "c": 3},
            400,
            "TypeError",
            "no parameter 'c'; parameters: a, b",
        ),
        ("Service/add", {"a": "one", "b": 2}, 400, "TypeError", "parameter 'a': expected a number"),
        ("Service/greet", {"name": None}, 400, "TypeError", "null is not allowed"),
        (
            "Service/echo_color",
            {"color": "BLUE"},
            400,
            "TypeError",
            "'BLUE' is not a member of Color",
        ),
        (
            "Service/echo_order",
            {"order": {"id": 1, "items": [], "colour": "RED"}},
            400,
            "TypeError",
            "unknown field(s) 'colour'",
        ),
        (
            "Service/echo_money",
            {"amount": "1.234"},
            400,
            "TypeError",
            "does not fit decimal128(12, 2)",
        ),
        (
            "Service/echo_when",
            {"when": "noon", "day": "2024-01-01"},
            400,
            "TypeError",
            "ISO string",
        ),
        ("Service/countdown", {"n": 1}, 400, "BadRequest", "stream method"),
        ("Service/nope", {}, 404, "NotFound", "unknown method 'nope'; methods: add,"),
        ("Elsewhere/add", {}, 404, "NotFound", "does not host protocol 'Elsewhere'"),
        ("Service/fail", {"message": "boom"}, 200, "ValueError", "boom"),
    ],
)
def test_the_call_endpoint_explains_what_is_wrong(
    client: httpx.Client, path: str, body: object, status: int, error_type: str, message: str
) -> None:
    reply = _call(client, path, body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["type"] == error_type
    assert message in error["message"]


def test_the_call_endpoint_takes_only_json_within_max_request_bytes() -> None:
    app = make_wsgi_app(_server(), signing_key=b"k", max_request_bytes=1000)
    with _client(app) as c:
        plain = c.post(
            "/vgi/page-call/Service/add",
            content='{"a": 1, "b": 2}',
            headers={"Content-Type": "text/plain"},
        )
        assert plain.status_code == 415
        assert "application/json" in plain.json()["error"]["message"]
        big = _call(c, "Service/greet", {"name": "x" * 2000})
        assert big.status_code == 413
        assert big.json()["error"] == {
            "type": "RequestTooLarge",
            "message": "request body of 2012 bytes exceeds max_request_bytes (1000)",
        }
        assert _call(c, "Service/greet", {"name": "x" * 100}).status_code == 200
