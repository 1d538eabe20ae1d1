"""``conformance.Secondary.v1``: the second application protocol a conformance worker hosts.

Its method names, signatures and the error contract of ``fail`` are the
suite's (second-generation wire facts); the implementation is ours.

Why it exists: ``echo_string`` has the same name and signature as
``ConformanceService.echo_string`` but answers with a prefix, so a server
that dispatched on the bare method name returns a wrong value instead of a
coincidentally right one. It declares no ``protocol_version``, so a server
that applied the primary's version gate to every call refuses it.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

__all__ = [
    "CANONICAL_CODES",
    "ECHO_PREFIX",
    "INVALID_CODE_KIND",
    "OVERSIZED_KIND",
    "OVERSIZED_PADDING_BYTES",
    "SECONDARY_NAME",
    "Secondary",
    "SecondaryError",
    "SecondaryImpl",
    "fail_details",
]

SECONDARY_NAME = "conformance.Secondary.v1"
ECHO_PREFIX = "secondary:"
INVALID_CODE_KIND = "invalid_code"
OVERSIZED_KIND = "details_oversized"
OVERSIZED_PADDING_BYTES = 5000

#: The closed set of canonical error codes (gRPC's names less ``OK``, spec section 8).
CANONICAL_CODES = frozenset(
    {
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    }
)


class SecondaryError(Exception):
    """An error carrying a canonical code, an optional kind and structured details.

    The server writes ``error_code`` to ``vgi_rpc.error_code`` and
    ``error_kind`` to ``vgi_rpc.error_kind``; ``error_details`` is what
    belongs in ``vgi_rpc.error_details`` (a JSON array of ``@type``'d objects).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        kind: str | None = None,
        details: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_code = code
        self.error_kind = kind
        self.error_details: list[dict[str, object]] = details or []


def _retry_info(seconds: float) -> dict[str, object]:
    # a whole number of seconds is written as a JSON integer ("7", not "7.0")
    value: float | int = int(seconds) if float(seconds).is_integer() else float(seconds)
    return {"@type": "vgi_rpc.RetryInfo", "retry_delay_seconds": value}


def fail_details(retry_delay_seconds: float) -> list[dict[str, object]]:
    """The details ``fail`` attaches, in order: ErrorInfo, RetryInfo (if asked), a probe type."""
    details: list[dict[str, object]] = [
        {"@type": "vgi_rpc.ErrorInfo", "metadata": {"fixture": SECONDARY_NAME}}
    ]
    if retry_delay_seconds > 0:
        details.append(_retry_info(retry_delay_seconds))
    details.append(
        {
            "@type": f"{SECONDARY_NAME}.Probe",
            "note": "clients ignore detail types they do not know",
        }
    )
    return details


class Secondary(Protocol):
    """A second protocol beside ConformanceService (deliberately unversioned)."""

    protocol_name: ClassVar[str] = SECONDARY_NAME

    def echo_string(self, value: str) -> str:
        """``"secondary:" + value``: the primary's method name, answered differently."""
        ...

    def fail(self, code: str, kind: str, retry_delay_seconds: float) -> None:
        """Raise an error with canonical ``code``, ``kind`` (none when empty) and fixed details."""
        ...

    def fail_oversized(self) -> None:
        """Raise an error whose details are larger than the 4 KiB details cap."""
        ...


class SecondaryImpl:
    """Our implementation of ``conformance.Secondary.v1``."""

    def echo_string(self, value: str) -> str:
        return ECHO_PREFIX + value

    def fail(self, code: str, kind: str, retry_delay_seconds: float) -> None:
        if code not in CANONICAL_CODES:
            raise SecondaryError(
                f"{code!r} is not a canonical error code",
                code="INVALID_ARGUMENT",
                kind=INVALID_CODE_KIND,
                details=[
                    {
                        "@type": "vgi_rpc.BadRequest",
                        "field_violations": [
                            {"field": "code", "description": "must be a canonical code name"}
                        ],
                    }
                ],
            )
        raise SecondaryError(
            f"{SECONDARY_NAME} fail: {code} {kind}".rstrip(),
            code=code,
            kind=kind or None,
            details=fail_details(retry_delay_seconds),
        )

    def fail_oversized(self) -> None:
        # RetryInfo first and small: a server that dropped only the oversized
        # element instead of the whole array would leave the error retryable.
        raise SecondaryError(
            f"{SECONDARY_NAME} fail_oversized: details exceed 4 KiB",
            code="RESOURCE_EXHAUSTED",
            kind=OVERSIZED_KIND,
            details=[
                _retry_info(1),
                {
                    "@type": "vgi_rpc.ErrorInfo",
                    "metadata": {"padding": "x" * OVERSIZED_PADDING_BYTES},
                },
            ],
        )
