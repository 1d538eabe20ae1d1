"""The HTTP branch of the error tree (``vgi_rpc._errors`` has the rest).

Kept apart so that a worker serving over a pipe does not create classes only
the HTTP transport raises (each exception class costs about 0.1 M instructions
to create at start-up).
"""

from __future__ import annotations

from typing import Literal

from vgi_rpc._errors import RpcError, VgiRpcError


class ExternalResponseTooLargeError(VgiRpcError):
    """Externalized output of one HTTP response would exceed ``max_externalized_response_bytes``."""

    error_kind = "response_too_large"
    error_code = "RESOURCE_EXHAUSTED"


class HttpError(RpcError):
    """The HTTP server answered with a status and no Arrow body to read an error from.

    ``error_type`` is ``"HttpError"`` and ``error_message`` starts with
    ``"HTTP <status>: "``, followed by what the server said.

    Attributes:
        status: The HTTP status code.
    """

    def __init__(self, status: int, message: str, *, error_type: str = "HttpError") -> None:
        super().__init__(
            error_type, f"HTTP {status}: {message}" if error_type == "HttpError" else message
        )
        self.status = status


class AuthenticationError(HttpError, PermissionError):
    """HTTP 401: ``authenticate`` refused the request (``error_type`` ``"AuthenticationError"``).

    Attributes:
        reason: The server's reason code (``missing_credential``, ``invalid_credential`` ...).
        detail: The server's explanation (also ``error_message``; the reason when empty).
    """

    def __init__(self, reason: str, detail: str, *, request_id: str = "") -> None:
        super().__init__(401, detail or reason, error_type="AuthenticationError")
        self.request_id = request_id
        self.reason = reason
        self.detail = detail


HttpUnauthorizedError = AuthenticationError  # the name earlier versions raised


class RequestTooLargeError(HttpError):
    """HTTP 413: the request body exceeds the server's ``max_request_bytes``.

    ``error_type`` is ``"RequestTooLarge"``; ``error_message`` is the server's.
    """

    def __init__(self, message: str) -> None:
        super().__init__(413, message, error_type="RequestTooLarge")


class HttpNotFoundError(HttpError, LookupError):
    """HTTP 404 with no Arrow body: nothing is served at that URL (a wrong prefix or base URL).

    An unknown method on a served prefix is a ``RpcError`` with ``error_type``
    ``"MethodNotImplementedError"`` instead: the server answers that itself.
    """

    def __init__(self, message: str) -> None:
        super().__init__(404, message)


class TokenError(VgiRpcError, ValueError):
    """An HTTP stream token this server did not mint (forged, truncated, foreign or expired)."""


class RequestRefusedError(VgiRpcError):
    """Server side: an HTTP request refused before (or instead of) dispatch, answered with ``status``."""

    def __init__(self, status: int, message: str, *, error_kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_kind = error_kind  # type: ignore[misc]  # instance value shadows the ClassVar default


class PageCallRefusedError(RequestRefusedError):
    """Server side: the service page's JSON call endpoint refused a call (``error_type`` names why)."""

    def __init__(self, status: int, message: str, error_type: str) -> None:
        super().__init__(status, message)
        self.error_type = error_type


class JsonArgumentError(VgiRpcError, ValueError):
    """A JSON argument does not fit its parameter (the message names where and why)."""


class ResponseTooLargeError(VgiRpcError):
    """Server side: one batch of a response would exceed the caller's or the server's cap."""

    error_kind = "response_too_large"
    error_code = "RESOURCE_EXHAUSTED"


AuthReason = Literal[
    "missing_credential",
    "invalid_credential",
    "expired_credential",
    "insufficient_scope",
    "unauthorized",
]
AUTH_REASONS: frozenset[str] = frozenset(
    (
        "missing_credential",
        "invalid_credential",
        "expired_credential",
        "insufficient_scope",
        "unauthorized",
    )
)


class AuthFailure(VgiRpcError, PermissionError):  # noqa: N818  # the name other vgi-rpc ports use
    """Raise from ``authenticate`` to refuse a request with a specific reason code."""

    def __init__(self, reason: AuthReason, detail: str = "") -> None:
        if reason not in AUTH_REASONS:
            raise ValueError(
                f"unknown auth failure reason {reason!r}; use one of {sorted(AUTH_REASONS)}"
            )
        super().__init__(detail or reason)
        self.reason: str = reason
        self.detail = detail


__all__ = [
    "AUTH_REASONS",
    "AuthFailure",
    "AuthReason",
    "AuthenticationError",
    "ExternalResponseTooLargeError",
    "HttpError",
    "HttpNotFoundError",
    "HttpUnauthorizedError",
    "JsonArgumentError",
    "PageCallRefusedError",
    "RequestRefusedError",
    "RequestTooLargeError",
    "ResponseTooLargeError",
    "TokenError",
]
