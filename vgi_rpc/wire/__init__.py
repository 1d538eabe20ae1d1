"""The vgi-rpc wire protocol v1: metadata keys, batch classification, log and error batches.

Every name is imported on first use: a worker never loads batch classification.
"""

from vgi_rpc._lazy import lazy_module

TYPE_CHECKING = False  # not ``typing``'s: see vgi_rpc/__init__.py

if TYPE_CHECKING:
    from vgi_rpc.wire._classify import BatchKind, classify
    from vgi_rpc.wire._codec import (
        EMPTY_SCHEMA,
        empty_batch,
        error_metadata,
        log_metadata,
        message_from_metadata,
        new_request_id,
        new_server_id,
        request_metadata,
        rpc_error_from_metadata,
    )

__getattr__, __dir__ = lazy_module(
    __name__,
    {
        "vgi_rpc.wire._classify": ("BatchKind", "classify"),
        "vgi_rpc.wire._codec": (
            "EMPTY_SCHEMA",
            "empty_batch",
            "error_metadata",
            "log_metadata",
            "message_from_metadata",
            "new_request_id",
            "new_server_id",
            "request_metadata",
            "rpc_error_from_metadata",
        ),
    },
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
