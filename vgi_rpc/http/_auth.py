"""Authentication failures and the 401 envelope (the reference's ``unauthorized-spec``)."""

from __future__ import annotations

import json

from vgi_rpc._http_errors import AUTH_REASONS, AuthFailure, AuthReason

Reason = AuthReason
REASONS = AUTH_REASONS


def unauthorized_body(reason: str, detail: str) -> str:
    """The JSON body of a 401."""
    return json.dumps({"error": "unauthorized", "reason": reason, "detail": detail})


__all__ = ["REASONS", "AuthFailure", "Reason", "unauthorized_body"]
