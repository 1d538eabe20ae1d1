"""The wire debug loggers and the access logger, and how a batch is shown in their lines.

Apart from the access records (``_accounting``), which a server builds only
while the access log or a call observer wants them: serving a call consults
these loggers on every call, the records' classes only when enabled.
"""

from __future__ import annotations

import pyarrow as pa

from vgi_rpc._logs import (
    ACCESS_LOGGER,
    WIRE_BATCH_LOGGER,
    WIRE_REQUEST_LOGGER,
    WIRE_RESPONSE_LOGGER,
    lazy_logger,
)

access_log = lazy_logger(ACCESS_LOGGER)
wire_request_log = lazy_logger(WIRE_REQUEST_LOGGER)
wire_response_log = lazy_logger(WIRE_RESPONSE_LOGGER)
wire_batch_log = lazy_logger(WIRE_BATCH_LOGGER)

_SHOWN_VALUES = 300  # characters of a one-row batch's values shown by the wire loggers

_URL_KEYS = (b"vgi_rpc.location", b"vgi_rpc.location.source")


def _shown(key: bytes, value: bytes) -> bytes:
    """A metadata value as logs may show it: a pointer's URL loses its (signed) query."""
    if key in _URL_KEYS:
        return value.split(b"?", 1)[0].split(b"#", 1)[0]
    return value


def describe_batch(batch: pa.RecordBatch, metadata: dict[bytes, bytes] | None) -> str:
    """One-line rendering of a batch for the wire debug loggers (call only when enabled).

    A small one-row batch (a request's arguments, a unary result) shows its
    values too, cut at a few hundred characters.
    """
    md = {
        key.decode(errors="replace"): _shown(key, value)[:200].decode(errors="replace")
        for key, value in (metadata or {}).items()
    }
    text = f"{batch.num_rows} rows x {batch.num_columns} cols {batch.schema.names}"
    if batch.num_rows == 1 and batch.num_columns and batch.nbytes <= 64 * 1024:
        values = repr(batch.to_pylist()[0])
        if len(values) > _SHOWN_VALUES:
            values = values[:_SHOWN_VALUES] + "…"
        text += f" values={values}"
    return f"{text} metadata={md}"


__all__ = [
    "access_log",
    "describe_batch",
    "wire_batch_log",
    "wire_request_log",
    "wire_response_log",
]
