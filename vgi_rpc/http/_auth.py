"""Authentication failures and the 401 envelope (the reference's ``unauthorized-spec``)."""

from __future__ import annotations

import json
from typing import Literal

Reason = Literal[
    "missing_credential",
    "invalid_credential",
    "expired_credential",
    "insufficient_scope",
    "unauthorized",
]
REASONS: frozenset[str] = frozenset(
    (
        "missing_credential",
        "invalid_credential",
        "expired_credential",
        "insufficient_scope",
        "unauthorized",
    )
)


class AuthFailure(PermissionError):  # noqa: N818  # the name other vgi-rpc ports use
    """Raise from ``authenticate`` to refuse a request with a specific reason code."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(
                f"unknown auth failure reason {reason!r}; use one of {sorted(REASONS)}"
            )
        super().__init__(detail or reason)
        self.reason: str = reason
        self.detail = detail


def unauthorized_body(reason: str, detail: str) -> str:
    """The JSON body of a 401."""
    return json.dumps({"error": "unauthorized", "reason": reason, "detail": detail})


__all__ = ["REASONS", "AuthFailure", "Reason", "unauthorized_body"]
