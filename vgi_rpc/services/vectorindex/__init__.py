"""The vector index service: namespaces of vectors on faiss, durable through a write-ahead log.

``connect(...)`` yields a ``VectorIndexClient``; ``VectorIndex`` is the wire
Protocol and ``VectorIndexService`` the implementation. The client, server and
Protocol load on first use (they need the ``services`` extra: numpy, faiss-cpu).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vgi_rpc.services.vectorindex._errors import (
    DimensionMismatchError,
    DuplicateIdError,
    FilterError,
    InvalidArgumentError,
    InvalidVectorError,
    NamespaceExistsError,
    NamespaceNotFoundError,
    StorageError,
    VectorIndexError,
)

if TYPE_CHECKING:
    from vgi_rpc.services.vectorindex.client import VectorIndexClient, connect
    from vgi_rpc.services.vectorindex.protocol import VectorIndex
    from vgi_rpc.services.vectorindex.server import VectorIndexService

_LAZY = {
    "connect": "client",
    "VectorIndexClient": "client",
    "VectorIndex": "protocol",
    "VectorIndexService": "server",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "DimensionMismatchError",
    "DuplicateIdError",
    "FilterError",
    "InvalidArgumentError",
    "InvalidVectorError",
    "NamespaceExistsError",
    "NamespaceNotFoundError",
    "StorageError",
    "VectorIndex",
    "VectorIndexClient",
    "VectorIndexError",
    "VectorIndexService",
    "connect",
]
