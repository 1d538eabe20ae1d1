"""Batch classification (spec section 7): what a received batch means. The receiving side's."""

from __future__ import annotations

import enum

import pyarrow as pa

from vgi_rpc._ipc import Metadata
from vgi_rpc.wire import keys as k


class BatchKind(enum.Enum):
    """What a received batch means (spec section 7)."""

    DATA = "data"
    LOG = "log"
    ERROR = "error"
    EXTERNAL_POINTER = "external_pointer"
    SHM_POINTER = "shm_pointer"
    STATE_TOKEN = "state_token"


def classify(batch: pa.RecordBatch, metadata: Metadata | None) -> BatchKind:
    """Classify a received batch exactly as spec section 7 prescribes."""
    if not metadata or batch.num_rows > 0:
        return BatchKind.DATA
    level = metadata.get(k.LOG_LEVEL_KEY)
    if level is not None and k.LOG_MESSAGE_KEY in metadata:
        return BatchKind.ERROR if level == b"EXCEPTION" else BatchKind.LOG
    if k.LOCATION_KEY in metadata:
        return BatchKind.EXTERNAL_POINTER
    if k.SHM_OFFSET_KEY in metadata:
        return BatchKind.SHM_POINTER
    if k.STREAM_STATE_KEY in metadata:
        return BatchKind.STATE_TOKEN
    return BatchKind.DATA


__all__ = ["BatchKind", "classify"]
