"""Presigned URLs: HMAC query-string signing (AWS Signature Version 4, and GCS's HMAC form of it).

A presigned URL lets a reader without credentials GET (or PUT) one object
until it expires. ``pyarrow.fs`` reads and writes the stores but does not
sign URLs, so this module does, for the two signing schemes that use a key
pair: AWS SigV4 (S3 and S3-compatible stores) and GCS V4 with an HMAC key.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import urllib.parse


@dataclasses.dataclass(frozen=True, slots=True)
class Scheme:
    """The names one signing scheme uses."""

    algorithm: str
    param_prefix: str
    key_prefix: str
    terminator: str
    service: str


AWS = Scheme("AWS4-HMAC-SHA256", "X-Amz-", "AWS4", "aws4_request", "s3")
GOOG = Scheme("GOOG4-HMAC-SHA256", "X-Goog-", "GOOG4", "goog4_request", "storage")


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """An access key pair (and session token) that signs requests."""

    access_key: str
    secret_key: str
    session_token: str | None = None


def _quote(text: str, safe: str = "") -> str:
    return urllib.parse.quote(text, safe=safe)  # unreserved characters are never quoted


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def presign(
    method: str,
    endpoint: str,
    path: str,
    credentials: Credentials,
    *,
    region: str,
    expires: int,
    scheme: Scheme = AWS,
    now: datetime.datetime | None = None,
) -> str:
    """A URL that allows ``method`` on ``endpoint`` + ``path`` for ``expires`` seconds.

    Args:
        method: ``GET`` or ``PUT``.
        endpoint: ``scheme://host[:port]`` of the store.
        path: The object's path (``/bucket/key`` or ``/key``), not yet percent-encoded.
        credentials: The key pair that signs.
        region: The signing region (``auto`` for GCS).
        expires: Seconds the URL stays valid (1 to 604800).
        scheme: ``AWS`` (SigV4) or ``GOOG`` (GCS HMAC).
        now: The signing time (the current time by default).
    """
    if not 1 <= expires <= 604800:
        raise ValueError(f"presigned URLs live 1 to 604800 seconds, got {expires}")
    when = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    where = urllib.parse.urlsplit(endpoint)
    host = where.hostname or ""
    if where.port is not None and where.port != {"http": 80, "https": 443}.get(where.scheme):
        host = f"{host}:{where.port}"
    scope = f"{day}/{region}/{scheme.service}/{scheme.terminator}"
    p = scheme.param_prefix
    params = {
        f"{p}Algorithm": scheme.algorithm,
        f"{p}Credential": f"{credentials.access_key}/{scope}",
        f"{p}Date": stamp,
        f"{p}Expires": str(expires),
        f"{p}SignedHeaders": "host",
    }
    if credentials.session_token:
        params[f"{p}Security-Token"] = credentials.session_token
    # Signed in sorted order; sent in the order above (the order botocore sends).
    query = "&".join(f"{_quote(key)}={_quote(value)}" for key, value in params.items())
    signed_query = "&".join(
        f"{_quote(key)}={_quote(value)}" for key, value in sorted(params.items())
    )
    canonical_path = _quote(path, safe="/")
    canonical = "\n".join(
        [method, canonical_path, signed_query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"]
    )
    to_sign = "\n".join(
        [scheme.algorithm, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac((scheme.key_prefix + credentials.secret_key).encode(), day)
    for part in (region, scheme.service, scheme.terminator):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    base = f"{where.scheme}://{host}"
    return f"{base}{canonical_path}?{query}&{p}Signature={signature}"


__all__ = ["AWS", "GOOG", "Credentials", "Scheme", "presign"]
