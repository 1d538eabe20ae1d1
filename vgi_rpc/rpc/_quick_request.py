"""A small request read straight out of the channel's buffer, before the general reader.

A small call's request is one stream: a schema message, one row (flat
columns, or none at all for a parameterless call) and the end-of-stream
marker, usually all in the buffer after one read. When it is, and its schema
is one the general reader has already parsed (a parameterless request's must
be exactly the one our client writes), the row is decoded in place with every
check of the flat codec. Anything else, including a request that has not
wholly arrived, is left untouched for ``read_request``.
"""

from __future__ import annotations

import io

from vgi_rpc._errors import IPCError
from vgi_rpc._flat_row import EOS, MAX_ROW_BYTES, FlatRow, flat_layout
from vgi_rpc._ipc import Metadata, encode_stream
from vgi_rpc._ipc_reader import _RECORD_BATCH, ReadPolicy, _parse_header
from vgi_rpc.rpc._request import ONE_EMPTY_ROW, Request

_CONTINUATION = b"\xff\xff\xff\xff"
_MAX_HEADER = 4096
# Headers of parameterless requests, checked once each (one per method and client spelling).
_EMPTY_ROW_HEADERS: dict[bytes, bool] = {}
_MAX_EMPTY_ROW_HEADERS = 256


def _schema_message(stream: bytes) -> bytes:
    return stream[: 8 + int.from_bytes(stream[4:8], "little")]


# The schema message of a parameterless request, as our client writes it.
_NO_PARAMETERS = _schema_message(
    encode_stream(ONE_EMPTY_ROW.schema, [(ONE_EMPTY_ROW, None)]).to_pybytes()
)


def read_plain_request(reader: io.BufferedReader, policy: ReadPolicy) -> Request | None:
    """The request when it is small, plain and wholly buffered; else ``None`` (nothing consumed)."""
    try:
        buffered = reader.peek(1)
    except (OSError, ValueError):
        return None  # the general reader meets the same failure and reports it
    if buffered[:4] != _CONTINUATION:
        return None
    start = 8 + int.from_bytes(buffered[4:8], "little", signed=True)
    if not 8 < start <= 8 + _MAX_HEADER or buffered[start : start + 4] != _CONTINUATION:
        return None
    header_length = int.from_bytes(buffered[start + 4 : start + 8], "little", signed=True)
    if not 0 < header_length <= _MAX_HEADER:
        return None
    meta = buffered[start + 8 : start + 8 + header_length]
    try:
        header = _parse_header(meta)
    except IPCError:
        return None
    body_length = header.body_length
    end = start + 8 + header_length + body_length
    if (
        header.header_type != _RECORD_BATCH
        or body_length > MAX_ROW_BYTES
        or buffered[end : end + 8] != EOS  # not all here yet, or more batches follow
    ):
        return None
    metadata = header.custom_metadata
    row: FlatRow | None = None
    if body_length == 0:
        if buffered[:start] != _NO_PARAMETERS or not _one_empty_row(meta, metadata):
            return None
    else:
        limits = policy.limits
        schema = policy.schemas.flat(buffered[8:start])
        layout = flat_layout(schema) if schema is not None else None
        if layout is None or limits.min_free_rows + limits.max_rows_per_byte * body_length < 1:
            return None
        data = buffered[start:end]
        values = layout.decode(meta, data, metadata)
        if values is None:
            return None
        row = FlatRow(values, layout, data)
    reader.read(end + 8)
    return Request(row if row is not None else ONE_EMPTY_ROW, metadata or {}, 0)


def _one_empty_row(meta: bytes, metadata: Metadata | None) -> bool:
    """Whether ``meta`` is, byte for byte, the header our client writes for a parameterless call."""
    known = _EMPTY_ROW_HEADERS.get(meta)
    if known is None:
        stream = encode_stream(ONE_EMPTY_ROW.schema, [(ONE_EMPTY_ROW, metadata)]).to_pybytes()
        start = len(_NO_PARAMETERS) + 8
        known = stream[start : start + len(meta)] == meta and len(stream) == start + len(meta) + 8
        if len(_EMPTY_ROW_HEADERS) >= _MAX_EMPTY_ROW_HEADERS:
            _EMPTY_ROW_HEADERS.clear()
        _EMPTY_ROW_HEADERS[meta] = known
    return known


__all__ = ["read_plain_request"]
