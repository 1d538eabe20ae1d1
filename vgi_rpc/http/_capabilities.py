"""Capability discovery: ``OPTIONS {prefix}/health`` (wire spec section 10)."""

from __future__ import annotations

import dataclasses

import httpx

from vgi_rpc._errors import TransportError
from vgi_rpc.http import _encoding


@dataclasses.dataclass(frozen=True)
class HttpCapabilities:
    """What an HTTP server advertises in its capability headers."""

    max_request_bytes: int | None
    max_response_bytes: int | None
    externalization_enabled: bool
    supported_encodings: tuple[str, ...]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def http_capabilities(base_url: str, *, prefix: str = "/vgi") -> HttpCapabilities:
    """Probe a server's capabilities.

    Raises:
        TransportError: The server cannot be reached.
    """
    url = f"{base_url.rstrip('/')}{prefix.rstrip('/')}/health"
    try:
        response = httpx.options(url)
    except httpx.HTTPError as exc:
        raise TransportError(f"OPTIONS {url} failed: {exc}") from exc
    headers = response.headers
    encodings = headers.get("VGI-Supported-Encodings")
    return HttpCapabilities(
        max_request_bytes=_int(headers.get("VGI-Max-Request-Bytes")),
        max_response_bytes=_int(headers.get("VGI-Max-Response-Bytes")),
        externalization_enabled=headers.get("VGI-Externalization-Enabled") == "true",
        supported_encodings=(
            ("zstd",) if encodings is None else tuple(_encoding.parse_codings(encodings))
        ),
    )


__all__ = ["HttpCapabilities", "http_capabilities"]
