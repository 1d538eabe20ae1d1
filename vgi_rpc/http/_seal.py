"""Sealing and opening stream tokens (wire spec section 10, "State token binary format").

A token is ``version (1) | nonce (12) | AEAD ciphertext + tag``, base64
encoded. The sealed payload is ``codec (1) | body``: the body is
zstd-compressed inside the seal when that makes it smaller. The AAD binds a
token to its kind and to the caller's identity, so a token minted for one
principal (or of the other kind) never opens for another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from vgi_rpc._http_errors import TokenError
from vgi_rpc.rpc import AuthContext

NONCE_SIZE = 12
CODEC_RAW = 0
CODEC_ZSTD = 1
MAX_PLAIN_BYTES = 64 * 1024 * 1024
_COMPRESS_FROM = 128  # smaller payloads never shrink under zstd


def derive_key(signing_key: bytes) -> bytes:
    """A 32-byte AEAD key from a signing key of any length."""
    if not signing_key:
        raise ValueError("signing_key must not be empty")
    return hashlib.sha256(b"vgi_rpc.http.token-key\x00" + signing_key).digest()


def identity_tail(auth: AuthContext) -> bytes:
    """The AAD suffix naming who a token was minted for."""
    if not auth.authenticated:
        return b"\x00anonymous"
    return b"\x01" + (auth.domain or "").encode() + b"\x00" + (auth.principal or "").encode()


class Sealer:
    """Seals and opens tokens of one kind (``version`` and ``label`` differ per kind)."""

    def __init__(self, key: bytes, *, version: int, label: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._version = version
        self._label = label
        self._local = threading.local()  # zstd contexts are not safe to share across threads

    def _zstd(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
        pair: tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor] | None
        pair = getattr(self._local, "pair", None)
        if pair is None:
            pair = (zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor())
            self._local.pair = pair
        return pair

    def seal(self, plaintext: bytes, auth: AuthContext) -> bytes:
        """Compress (when it pays), encrypt and base64-encode ``plaintext``."""
        payload = bytes([CODEC_RAW]) + plaintext
        if len(plaintext) >= _COMPRESS_FROM:
            packed = self._zstd()[0].compress(plaintext)
            if len(packed) < len(plaintext):
                payload = bytes([CODEC_ZSTD]) + packed
        nonce = os.urandom(NONCE_SIZE)
        sealed = self._aead.encrypt(nonce, payload, self._label + identity_tail(auth))
        return base64.b64encode(bytes([self._version]) + nonce + sealed)

    def open(self, token: bytes, auth: AuthContext) -> bytes:
        """Reverse ``seal``; any failure is one uniform ``TokenError``."""
        try:
            raw = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            raise TokenError("state token is not valid base64") from None
        if len(raw) < 1 + NONCE_SIZE + 16 + 1:
            raise TokenError("state token is truncated")
        if raw[0] != self._version:
            raise TokenError(f"state token version {raw[0]} is not {self._version}")
        nonce, sealed = raw[1 : 1 + NONCE_SIZE], raw[1 + NONCE_SIZE :]
        try:
            payload = self._aead.decrypt(nonce, sealed, self._label + identity_tail(auth))
        except InvalidTag:
            raise TokenError("state token signature verification failed") from None
        codec, body = payload[0], payload[1:]
        if codec == CODEC_RAW:
            return body
        if codec == CODEC_ZSTD:
            try:
                return self._zstd()[1].decompress(body, max_output_size=MAX_PLAIN_BYTES)
            except zstandard.ZstdError:
                raise TokenError("state token payload does not decompress") from None
        raise TokenError(f"state token uses unknown codec {codec}")


__all__ = ["Sealer", "TokenError", "derive_key", "identity_tail"]
