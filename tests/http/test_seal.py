"""The token seal: compression inside the AEAD, codec tags, uniform refusals."""

from __future__ import annotations

import base64
import logging
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tests._services import Service, ServiceImpl
from vgi_rpc import AuthContext, RpcServer
from vgi_rpc.http import TokenError, make_wsgi_app
from vgi_rpc.http._seal import CODEC_RAW, CODEC_ZSTD, NONCE_SIZE, Sealer, derive_key

KEY = derive_key(b"seal test key")
ANON = AuthContext.anonymous()
ALICE = AuthContext(domain="d", authenticated=True, principal="alice")


def _payload(token: bytes, auth: AuthContext = ANON) -> bytes:
    """Decrypt a token by hand to look at the sealed payload (codec tag + body)."""
    raw = base64.b64decode(token)
    aad = b"label\x00" + (b"\x00anonymous" if not auth.authenticated else b"\x01d\x00alice")
    return ChaCha20Poly1305(KEY).decrypt(raw[1 : 1 + NONCE_SIZE], raw[1 + NONCE_SIZE :], aad)


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(KEY, version=7, label=b"label\x00")


def test_a_large_redundant_payload_is_compressed_inside_the_seal(sealer: Sealer) -> None:
    plain = b"the same state, over and over " * 300
    token = sealer.seal(plain, ANON)
    payload = _payload(token)
    assert payload[0] == CODEC_ZSTD
    assert len(token) < len(plain) // 4
    assert sealer.open(token, ANON) == plain


def test_a_tiny_payload_stays_raw_and_never_grows(sealer: Sealer) -> None:
    token = sealer.seal(b"abc", ANON)
    assert _payload(token) == bytes([CODEC_RAW]) + b"abc"
    assert sealer.open(token, ANON) == b"abc"


def test_incompressible_payload_stays_raw(sealer: Sealer) -> None:
    plain = os.urandom(2048)
    assert _payload(sealer.seal(plain, ANON))[0] == CODEC_RAW


def _forge(payload: bytes, auth: AuthContext = ANON) -> bytes:
    """A correctly sealed token around an arbitrary payload (as a buggy minter would make)."""
    nonce = b"\x01" * NONCE_SIZE
    aad = b"label\x00" + (b"\x00anonymous" if not auth.authenticated else b"\x01d\x00alice")
    return base64.b64encode(bytes([7]) + nonce + ChaCha20Poly1305(KEY).encrypt(nonce, payload, aad))


def test_an_unknown_codec_tag_is_refused(sealer: Sealer) -> None:
    with pytest.raises(TokenError, match="unknown codec 9"):
        sealer.open(_forge(b"\x09anything"), ANON)


def test_a_payload_that_does_not_decompress_is_refused(sealer: Sealer) -> None:
    with pytest.raises(TokenError, match="does not decompress"):
        sealer.open(_forge(bytes([CODEC_ZSTD]) + b"not zstd at all"), ANON)


def test_tokens_are_bound_to_the_principal_and_the_version(sealer: Sealer) -> None:
    token = sealer.seal(b"state", ALICE)
    assert sealer.open(token, ALICE) == b"state"
    with pytest.raises(TokenError, match="signature verification failed"):
        sealer.open(token, ANON)
    other_version = Sealer(KEY, version=8, label=b"label\x00")
    with pytest.raises(TokenError, match="version 7 is not 8"):
        other_version.open(token, ALICE)
    other_label = Sealer(KEY, version=7, label=b"other\x00")
    with pytest.raises(TokenError, match="signature verification failed"):
        other_label.open(token, ALICE)


@pytest.mark.parametrize("token", [b"", b"!!!not base64!!!", base64.b64encode(b"\x07short")])
def test_garbage_tokens_are_refused(sealer: Sealer, token: bytes) -> None:
    with pytest.raises(TokenError):
        sealer.open(token, ANON)


def test_an_app_without_a_key_warns_that_it_made_one(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vgi_rpc.http"):
        make_wsgi_app(RpcServer(Service, ServiceImpl()))
    assert any("no signing_key given" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vgi_rpc.http"):
        make_wsgi_app(RpcServer(Service, ServiceImpl()), signing_key=b"k")
    assert not caplog.records
