"""Malformed request bodies on the paths that read them without copies: typed errors, bounded memory."""

from __future__ import annotations

import io

import httpx
import pytest
import zstandard

from tests._services import Service, ServiceImpl
from tests.http._helpers import ARROW, request_body
from vgi_rpc import RpcServer
from vgi_rpc._http_errors import RequestRefusedError
from vgi_rpc.http import _encoding, make_wsgi_app
from vgi_rpc.http._body import read_body_into_pool


def test_a_body_shorter_than_its_content_length_is_a_400() -> None:
    with pytest.raises(RequestRefusedError) as refused:
        read_body_into_pool(io.BytesIO(b"abc"), 10)
    assert refused.value.status == 400
    assert "after 3 of its 10 bytes" in refused.value.message


def test_a_zstd_frame_that_lies_about_its_size_is_a_400() -> None:
    frame = bytearray(zstandard.ZstdCompressor().compress(b"x" * 1000))
    honest = zstandard.frame_content_size(bytes(frame))
    assert honest == 1000
    # A frame whose stated size exceeds the cap is refused before anything is decoded.
    with pytest.raises(RequestRefusedError) as too_big:
        _encoding.decode(bytes(frame), "zstd", 100)
    assert too_big.value.status == 413
    # Truncated: the stated size is within the cap, the data is not there.
    with pytest.raises(RequestRefusedError) as truncated:
        _encoding.decode(bytes(frame[: len(frame) // 2]), "zstd", 10_000)
    assert truncated.value.status == 400


@pytest.mark.parametrize("cut", [5, 40, -8])
def test_truncated_bodies_read_in_place_are_refused_and_the_app_keeps_serving(cut: int) -> None:
    app = make_wsgi_app(RpcServer(Service, ServiceImpl()), signing_key=b"k" * 32)
    body = request_body("echo_bytes", {"data": [b"abc" * 1000]})
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
        broken = client.post("/vgi/echo_bytes", content=body[:cut], headers=ARROW)
        assert broken.status_code == 400, broken.text
        whole = client.post("/vgi/echo_bytes", content=body, headers=ARROW)
        assert whole.status_code == 200
