"""Pointer batches (wire spec section 11): a large batch stored in a segment, named on the pipe.

Both sides use this: a writer stores a batch and sends a zero-row pointer
batch carrying ``vgi_rpc.shm_offset`` / ``vgi_rpc.shm_length``; a reader
turns the pointer back into the batch. Who frees the allocation is the
caller's business (always the reader, at a point where the peer is idle).
"""

from __future__ import annotations

import pyarrow as pa

from vgi_rpc._errors import IPCError
from vgi_rpc._ipc import Metadata
from vgi_rpc._ipc_reader import untrusted
from vgi_rpc._logs import DEBUG, WIRE_RESPONSE_LOGGER, WIRE_TRANSPORT_LOGGER, lazy_logger
from vgi_rpc.rpc._channel import SHM_MIN_BATCH_BYTES
from vgi_rpc.shm import ShmSegment, read_stored_batch
from vgi_rpc.wire import empty_batch
from vgi_rpc.wire import keys as k

_log = lazy_logger(WIRE_TRANSPORT_LOGGER)
_response_log = lazy_logger(WIRE_RESPONSE_LOGGER)


def to_pointer(
    segment: ShmSegment | None,
    batch: pa.RecordBatch,
    metadata: Metadata | None,
    min_bytes: int = SHM_MIN_BATCH_BYTES,
) -> tuple[pa.RecordBatch, Metadata | None]:
    """Store a large ``batch`` in ``segment`` and return its pointer batch.

    Returns ``(batch, metadata)`` unchanged when there is no segment, the
    batch is small or empty, or the segment has no room (inline fallback).
    """
    # The buffers' total size (a slice counts its whole buffers): a cheap upper bound,
    # where ``nbytes`` walks every buffer's referenced range (microseconds per batch).
    if segment is None or batch.num_rows == 0 or batch.get_total_buffer_size() < min_bytes:
        return batch, metadata
    placed = segment.write_batch(batch)
    if placed is None:
        _log.debug(
            "shared memory %s is full: %d-row batch sent inline", segment.name, batch.num_rows
        )
        return batch, metadata
    if _response_log.isEnabledFor(DEBUG):
        _response_log.debug(
            "routed via shared memory %s: %d rows, %d bytes at offset %d",
            segment.name,
            batch.num_rows,
            placed[1],
            placed[0],
        )
    return pointer_to(batch.schema, *placed, metadata)


def pointer_to(
    schema: pa.Schema, offset: int, length: int, metadata: Metadata | None
) -> tuple[pa.RecordBatch, Metadata]:
    """The pointer batch for a batch already stored at ``offset`` (``length`` bytes)."""
    pointer: Metadata = dict(metadata) if metadata else {}
    pointer[k.SHM_OFFSET_KEY] = str(offset).encode()
    pointer[k.SHM_LENGTH_KEY] = str(length).encode()
    return empty_batch(schema), pointer


def pointer_range(metadata: Metadata) -> tuple[int, int]:
    """``(offset, length)`` of a pointer batch.

    Raises:
        IPCError: The pointer keys are missing or not decimal integers.
    """
    try:
        return int(metadata[k.SHM_OFFSET_KEY]), int(metadata[k.SHM_LENGTH_KEY])
    except (KeyError, ValueError) as exc:
        raise IPCError(f"malformed shared-memory pointer: {exc!r}") from exc


def resolved_metadata(metadata: Metadata, segment: ShmSegment) -> Metadata:
    """A pointer's metadata without the pointer keys, plus ``vgi_rpc.shm_source``."""
    rest = {
        key: value
        for key, value in metadata.items()
        if key not in (k.SHM_OFFSET_KEY, k.SHM_LENGTH_KEY)
    }
    rest[k.SHM_SOURCE_KEY] = segment.name.encode()
    return rest


def read_pointed(
    segment: ShmSegment, batch: pa.RecordBatch, metadata: Metadata
) -> tuple[pa.RecordBatch, Metadata, int, memoryview]:
    """Resolve a pointer batch zero-copy: (batch, metadata, offset, the view it references).

    The pointer's length is used, never the allocation's (a writer may reserve more).
    """
    offset, length = pointer_range(metadata)
    view = segment.view(offset, length)
    with untrusted("shared-memory pointer batch"):
        resolved = read_stored_batch(pa.py_buffer(view), offset, batch.schema)
    return resolved, resolved_metadata(metadata, segment), offset, view


__all__ = [
    "SHM_MIN_BATCH_BYTES",
    "pointer_range",
    "pointer_to",
    "read_pointed",
    "resolved_metadata",
    "to_pointer",
]
