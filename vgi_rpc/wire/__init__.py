"""The vgi-rpc wire protocol v1: metadata keys, batch classification, log and error batches."""

from vgi_rpc.wire._codec import (
    EMPTY_SCHEMA,
    BatchKind,
    classify,
    empty_batch,
    error_metadata,
    log_metadata,
    message_from_metadata,
    new_request_id,
    new_server_id,
    request_metadata,
    rpc_error_from_metadata,
)

__all__ = [
    "EMPTY_SCHEMA",
    "BatchKind",
    "classify",
    "empty_batch",
    "error_metadata",
    "log_metadata",
    "message_from_metadata",
    "new_request_id",
    "new_server_id",
    "request_metadata",
    "rpc_error_from_metadata",
]
