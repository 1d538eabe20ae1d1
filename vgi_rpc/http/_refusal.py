"""Failures of the HTTP layer that map to a status code (wire spec section 13)."""

from __future__ import annotations


class RequestRefusedError(Exception):
    """A request refused before (or instead of) dispatch, answered with ``status``."""

    def __init__(self, status: int, message: str, *, error_kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_kind = error_kind


__all__ = ["RequestRefusedError"]
