"""URLs of externalized batches: how they are shown in diagnostics, and which ones may be fetched."""

from __future__ import annotations

import posixpath
import urllib.parse
from collections.abc import Callable

from vgi_rpc._errors import ExternalStorageError

UrlValidator = Callable[[str], None]


def redact(url: str) -> str:
    """``url`` as diagnostics may show it: scheme, host, port and path (spec section 12).

    A presigned query string is a bearer credential, so it never reaches a
    message, a log line or a trace.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def https_only_validator(url: str) -> None:
    """Accept ``https://`` URLs only (raise ``ValueError`` for anything else)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme != "https":
        raise ValueError(f"URL scheme {scheme!r} is not allowed (only 'https')")


def within(url: str, base: str) -> bool:
    """Whether ``url`` names something under ``base`` (same scheme and host, no ``..`` escape)."""
    try:
        target, root = urllib.parse.urlsplit(url), urllib.parse.urlsplit(base)
    except ValueError:
        return False
    if (target.scheme, target.netloc) != (root.scheme, root.netloc):
        return False
    path = urllib.parse.unquote(target.path)
    if ".." in path.split("/") or "\x00" in path:
        return False
    prefix = urllib.parse.unquote(root.path)
    return posixpath.normpath(path).startswith(prefix) and path.startswith(prefix)


def check_fetchable(url: str, owned: bool, validator: UrlValidator | None) -> None:
    """Refuse a URL the reader's policy does not allow, before any request is made.

    A URL inside the reader's own storage is always allowed; any other must
    pass ``validator``, or be ``https://`` when there is none.

    Raises:
        ExternalStorageError: ``reason="refused"``.
    """
    if owned:
        return
    try:
        (validator or https_only_validator)(url)
    except ValueError as exc:
        raise ExternalStorageError(
            f"refused to fetch an external location: {exc}", location=redact(url), reason="refused"
        ) from None


__all__ = ["UrlValidator", "check_fetchable", "https_only_validator", "redact", "within"]
