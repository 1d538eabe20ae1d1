"""Response compression is offered to remote servers and not to loopback ones, unless asked."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests._services import Service, ServiceImpl
from vgi_rpc import RpcServer
from vgi_rpc.http import http_connect, make_wsgi_app
from vgi_rpc.http._serve import serve_in_thread


def _offered(base_url: str, response_compression: bool | None) -> str:
    """The ``X-VGI-Accept-Encoding`` a call to ``base_url`` sends."""
    seen: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("X-VGI-Accept-Encoding", ""))
        return httpx.Response(503, text="not here")

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    with (
        http_connect(
            Service, base_url, client=client, response_compression=response_compression
        ) as proxy,
        pytest.raises(Exception, match=r"503|not here"),
    ):
        proxy.echo_bytes(data=b"x")
    return seen[0]


@pytest.mark.parametrize(
    ("base_url", "choice", "offered"),
    [
        ("http://example.com:8000", None, "zstd, gzip"),
        ("http://10.1.2.3", None, "zstd, gzip"),
        ("http://127.0.0.1:8000", None, "identity"),
        ("http://localhost:8000", None, "identity"),
        ("http://[::1]:8000", None, "identity"),
        ("http://127.0.0.1:8000", True, "zstd, gzip"),
        ("http://example.com", False, "identity"),
    ],
)
def test_what_the_client_offers(base_url: str, choice: bool | None, offered: str) -> None:
    assert _offered(base_url, choice) == offered


@pytest.mark.parametrize(("choice", "compressed"), [(None, False), (True, True)])
def test_a_loopback_server_compresses_only_when_asked(
    choice: bool | None, compressed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_wsgi_app(RpcServer(Service, ServiceImpl()), signing_key=b"k" * 32)
    data = b"compressible " * 100_000
    with (
        serve_in_thread(app) as url,
        http_connect(Service, url, response_compression=choice) as proxy,
        caplog.at_level(logging.DEBUG, logger="vgi_rpc.wire.http"),
    ):
        assert proxy.echo_bytes(data=data) == data
    answers = [r.getMessage() for r in caplog.records if r.name == "vgi_rpc.wire.http"]
    assert answers
    assert any("zstd-encoded" in m for m in answers) is compressed
