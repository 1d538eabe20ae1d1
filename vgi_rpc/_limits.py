"""``ResourceLimits``: what one peer's input may cost the process that reads it.

Every bound is checked before the memory it guards is allocated: message
sizes from the 8-byte prefix and the header, schema width and depth from
the flatbuffer before pyarrow parses it, HTTP bodies while they are read or
decompressed. Imports nothing from vgi_rpc.
"""

from __future__ import annotations

import functools

from vgi_rpc._record import record

MiB = 1 << 20


@record(frozen=True)
class ResourceLimits:
    """Bounds on untrusted input, checked before anything is allocated.

    Attributes:
        max_request_bytes: HTTP: largest request body, compressed or decoded
            (413 past it); ``None`` removes the bound.
        max_message_bytes: Largest single Arrow IPC message (header and body)
            read from a peer on any transport.
        max_metadata_bytes: Largest flatbuffer header of one IPC message.
        max_columns: Most fields one schema may declare, nested ones included.
        max_nesting_depth: Deepest nesting of fields in one schema.
        max_rows_per_byte: With ``min_free_rows``, bounds a batch's row count by
            its body size, so a tiny message cannot claim billions of null rows.
        min_free_rows: Rows any batch may have regardless of its body size.
        schema_cache_bytes: Memory the cache of parsed request schemas may hold.
    """

    __slots__ = _FIELDS = (
        "max_request_bytes",
        "max_message_bytes",
        "max_metadata_bytes",
        "max_columns",
        "max_nesting_depth",
        "max_rows_per_byte",
        "min_free_rows",
        "schema_cache_bytes",
    )

    max_request_bytes: int | None
    max_message_bytes: int
    max_metadata_bytes: int
    max_columns: int
    max_nesting_depth: int
    max_rows_per_byte: int
    min_free_rows: int
    schema_cache_bytes: int

    def __init__(
        self,
        max_request_bytes: int | None = 256 * MiB,
        max_message_bytes: int = 2048 * MiB,
        max_metadata_bytes: int = 16 * MiB,
        max_columns: int = 10_000,
        max_nesting_depth: int = 64,
        max_rows_per_byte: int = 8,
        min_free_rows: int = 1 << 16,
        schema_cache_bytes: int = 64 * MiB,
    ) -> None:
        values: tuple[object, ...] = (
            max_request_bytes,
            max_message_bytes,
            max_metadata_bytes,
            max_columns,
            max_nesting_depth,
            max_rows_per_byte,
            min_free_rows,
            schema_cache_bytes,
        )
        for name, value in zip(self._FIELDS, values, strict=True):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"ResourceLimits.{name} must be a non-negative int, got {value!r}")
            object.__setattr__(self, name, value)

    def for_body(self, size: int) -> ResourceLimits:
        """These limits, with no message larger than a body of ``size`` bytes."""
        if size >= self.max_message_bytes:
            return self
        return _for_body(self, size)

    def max_rows(self, body_bytes: int) -> int:
        """Most rows a batch whose message body has ``body_bytes`` bytes may claim."""
        return self.min_free_rows + self.max_rows_per_byte * body_bytes


@functools.lru_cache(maxsize=256)
def _for_body(limits: ResourceLimits, size: int) -> ResourceLimits:
    # per HTTP request; small requests of one method repeat their body size
    changed = [
        size if name == "max_message_bytes" else getattr(limits, name) for name in limits._FIELDS
    ]
    return ResourceLimits(*changed)


DEFAULT_LIMITS = ResourceLimits()

# Responses come from the server the client chose to call: no request cap, the rest as above.
CLIENT_LIMITS = ResourceLimits(
    max_request_bytes=None,
    max_message_bytes=1 << 62,
    max_columns=1 << 20,
    schema_cache_bytes=16 * MiB,
)

__all__ = ["CLIENT_LIMITS", "DEFAULT_LIMITS", "ResourceLimits"]
