"""IPC streams and schemas carried inside a value (a dataclass, a batch or schema argument).

Read like any request: bounded by their own size and validated in full. Apart from
the stream reader (``_ipc_reader``): a protocol of plain scalars never reads one.
"""

from __future__ import annotations

import pyarrow as pa

from vgi_rpc._errors import IPCError, TransportError
from vgi_rpc._flat_row import FlatRow
from vgi_rpc._ipc_reader import (
    IpcValidation,
    SchemaCache,
    open_stream_reader,
    read_message,
)
from vgi_rpc._limits import DEFAULT_LIMITS, ResourceLimits
from vgi_rpc._memory_source import memory_source

_SCHEMA = 1  # the Message header type of a schema (Arrow's MessageHeader enum)
_EMBEDDED_SCHEMAS = SchemaCache(DEFAULT_LIMITS.schema_cache_bytes // 4)


def read_embedded_batch(
    data: bytes | pa.Buffer, what: str, validation: IpcValidation = IpcValidation.FULL
) -> pa.RecordBatch:
    """The first batch of an IPC stream carried inside a value (a dataclass, a batch argument).

    Read like any request: bounded by its own size, validated at ``validation``
    (in full unless the caller validates it itself).

    Raises:
        IPCError: The bytes are not a valid stream with a batch.
    """
    source = memory_source(data)
    limits = DEFAULT_LIMITS.for_body(len(memoryview(data)))
    try:
        reader = open_stream_reader(source, limits, _EMBEDDED_SCHEMAS)
        item = reader.read(validation) if reader is not None else None
    except (IPCError, TransportError) as exc:
        raise IPCError(f"{what}: payload is not a valid Arrow IPC stream: {exc}") from None
    if item is None:
        raise IPCError(f"{what}: payload is not a valid Arrow IPC stream: it holds no batch")
    return item[0]


_SMALL = 64 << 10
_SMALL_EMBEDDED = DEFAULT_LIMITS.for_body(_SMALL)


def read_embedded_row(data: bytes | pa.Buffer, what: str) -> pa.RecordBatch | FlatRow:
    """``read_embedded_batch``, but a canonical flat one-row batch comes back as a ``FlatRow``."""
    source = memory_source(data)
    size = len(memoryview(data))
    # Nothing is read past ``data``: a small value shares one bound instead of its own.
    limits = _SMALL_EMBEDDED if size <= _SMALL else DEFAULT_LIMITS.for_body(size)
    try:
        reader = open_stream_reader(source, limits, _EMBEDDED_SCHEMAS)
        item = reader.read(IpcValidation.FULL, True) if reader is not None else None
    except (IPCError, TransportError) as exc:
        raise IPCError(f"{what}: payload is not a valid Arrow IPC stream: {exc}") from None
    if item is None:
        raise IPCError(f"{what}: payload is not a valid Arrow IPC stream: it holds no batch")
    return item[0]


def read_embedded_schema(data: bytes, what: str) -> pa.Schema:
    """A schema carried as an IPC schema message inside a value, bounded like a request's."""
    source = memory_source(data)
    limits = DEFAULT_LIMITS.for_body(len(data))
    try:
        message = read_message(source, limits)
    except (IPCError, TransportError) as exc:
        raise IPCError(f"{what}: payload is not a valid Arrow IPC schema: {exc}") from None
    if message is None or message.header.header_type != _SCHEMA:
        raise IPCError(f"{what}: not an Arrow IPC schema message")
    return _EMBEDDED_SCHEMAS.get(message, limits)[0]


def read_ipc_stream(
    data: bytes | bytearray | memoryview | pa.Buffer,
    limits: ResourceLimits | None = None,
    validation: IpcValidation = IpcValidation.FULL,
) -> tuple[pa.Schema, list[pa.RecordBatch]]:
    """Read a whole Arrow IPC stream from untrusted bytes: its schema and every batch.

    Read as a request is: headers are checked before pyarrow parses them,
    nothing is allocated beyond ``limits`` (default: the defaults, with no
    message larger than ``data``), every batch is validated at
    ``validation`` (in full unless told otherwise), and the batches are
    slices of ``data``, not copies. Bytes read once with full validation read
    the same way again, so a second read of bytes known not to have changed
    may skip it.

    Raises:
        IPCError: ``data`` is not exactly one well-formed stream within ``limits``.
    """
    size = len(memoryview(data))
    source = memory_source(data)
    bounds = (limits or DEFAULT_LIMITS).for_body(size)
    batches: list[pa.RecordBatch] = []
    try:
        reader = open_stream_reader(source, bounds, _EMBEDDED_SCHEMAS)
        if reader is None:
            raise IPCError("it is empty")
        while (item := reader.read(validation)) is not None:
            batches.append(item[0])
        trailing = source.read(1)
    except (IPCError, TransportError) as exc:
        raise IPCError(f"not a valid Arrow IPC stream: {exc}") from None
    if trailing:
        raise IPCError("not a valid Arrow IPC stream: bytes follow its end-of-stream marker")
    return reader.schema, batches


__all__ = ["read_embedded_batch", "read_embedded_row", "read_embedded_schema", "read_ipc_stream"]
