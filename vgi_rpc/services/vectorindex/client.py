"""The Python client: ``connect(...)`` yields a ``VectorIndexClient`` over any transport.

Converts numpy arrays, lists and Arrow arrays to the wire columns, turns
remote errors with a known ``error_kind`` back into the service's typed
exceptions, and returns Arrow tables.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import numpy as np
import pyarrow as pa

from vgi_rpc import RpcError, serve_pipe, tcp_connect, unix_connect
from vgi_rpc import connect as connect_worker
from vgi_rpc.services.vectorindex._errors import ERRORS_BY_KIND
from vgi_rpc.services.vectorindex.protocol import (
    DeleteResult,
    IdPage,
    NamespaceStats,
    Stats,
    VectorIndex,
)

VectorsLike = Any  # numpy (n, dim) array, list of lists, or an Arrow (fixed size) list array
MetadataLike: TypeAlias = "Sequence[Mapping[str, object]] | pa.Array[Any] | None"  # struct, map
T = TypeVar("T")


@contextlib.contextmanager
def typed_errors() -> Iterator[None]:
    """Re-raise a remote vector index error as its local class (the RpcError is the cause)."""
    try:
        yield
    except RpcError as exc:
        cls = ERRORS_BY_KIND.get(exc.error_kind or "")
        if cls is None:
            raise
        raise cls(exc.error_message) from exc


def to_vectors(vectors: VectorsLike) -> pa.Array[Any]:
    """Vectors as a fixed_size_list<float32> column."""
    if isinstance(vectors, pa.ChunkedArray):
        vectors = vectors.combine_chunks()
    if isinstance(vectors, pa.Array):
        if pa.types.is_fixed_size_list(vectors.type):
            return vectors.cast(pa.list_(pa.float32(), vectors.type.list_size))
        return vectors
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise ValueError(f"vectors must be 2-D (n, dim), got shape {array.shape}")
    flat = pa.array(np.ascontiguousarray(array).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, array.shape[1])


def upsert_batch(
    ids: Sequence[str] | pa.Array[Any], vectors: VectorsLike, metadata: MetadataLike = None
) -> pa.RecordBatch:
    """The wire batch of an upsert."""
    columns = {"id": pa.array(ids, pa.utf8()) if not isinstance(ids, pa.Array) else ids}
    columns["vector"] = to_vectors(vectors)
    if metadata is not None:
        columns["metadata"] = (
            metadata if isinstance(metadata, pa.Array) else pa.array(list(metadata))
        )
    return pa.RecordBatch.from_pydict(columns)


def _filter_text(filter: Mapping[str, object] | str | None) -> str | None:
    if filter is None or isinstance(filter, str):
        return filter
    return json.dumps(filter)


@dataclass(frozen=True)
class Fetched:
    """Result of ``fetch``: the rows found and the ids that were not."""

    table: pa.Table
    missing: list[str]


class VectorIndexClient:
    """Convenience methods over a ``VectorIndex`` proxy (``proxy`` is the raw one)."""

    def __init__(self, proxy: VectorIndex) -> None:
        self.proxy = proxy

    def create_index(
        self, namespace: str, dim: int, metric: str = "cosine", kind: str = "exact", **knobs: int
    ) -> NamespaceStats:
        """Create a namespace (see ``VectorIndex.create_index``)."""
        with typed_errors():
            return self.proxy.create_index(
                namespace=namespace, dim=dim, metric=metric, kind=kind, **knobs
            )

    def drop_index(self, namespace: str) -> bool:
        """Delete a namespace and its data."""
        with typed_errors():
            return self.proxy.drop_index(namespace=namespace)

    def upsert(
        self,
        namespace: str,
        ids: Sequence[str] | pa.Array[Any],
        vectors: VectorsLike,
        metadata: MetadataLike = None,
    ) -> int:
        """Add or replace rows; returns the log offset once they are durable."""
        batch = upsert_batch(ids, vectors, metadata)
        with typed_errors():
            return self.proxy.upsert(namespace=namespace, data=batch)

    def upsert_many(self, namespace: str, batches: Iterator[pa.RecordBatch]) -> list[int]:
        """Bulk upsert over one exchange stream; one offset per batch (see ``upsert_batch``)."""
        with typed_errors(), self.proxy.upsert_stream(namespace=namespace) as session:
            return [
                int(session.exchange(batch).batch.column("offset")[0].as_py()) for batch in batches
            ]

    def delete(
        self,
        namespace: str,
        ids: Sequence[str] | None = None,
        filter: Mapping[str, object] | str | None = None,
        all: bool = False,
    ) -> DeleteResult:
        """Delete by ids, by filter or everything."""
        with typed_errors():
            return self.proxy.delete(
                namespace=namespace,
                ids=None if ids is None else list(ids),
                filter=_filter_text(filter),
                all=all,
            )

    def fetch(self, namespace: str, ids: Sequence[str]) -> Fetched:
        """Rows by id (``id``, ``vector``, ``metadata``) and the missing ids."""
        with typed_errors():
            result = self.proxy.fetch(namespace=namespace, ids=list(ids))
        return Fetched(pa.Table.from_batches([result.rows]), list(result.missing))

    def query(
        self,
        namespace: str,
        vectors: VectorsLike,
        top_k: int = 10,
        filter: Mapping[str, object] | str | None = None,
        include_data: bool = False,
        include_metadata: bool = False,
        min_offset: int | None = None,
    ) -> pa.Table:
        """One row per match: ``query``, ``rank``, ``id``, ``score`` (+ ``vector``, ``metadata``)."""
        batch = pa.RecordBatch.from_pydict({"vector": to_vectors(vectors)})
        with typed_errors():
            result = self.proxy.query(
                namespace=namespace, vectors=batch, top_k=top_k, filter=_filter_text(filter),
                include_data=include_data, include_metadata=include_metadata,
                min_offset=min_offset,
            )  # fmt: skip
        return pa.Table.from_batches([result])

    def query_stream(
        self, namespace: str, vectors: VectorsLike, top_k: int = 10, **options: Any
    ) -> Iterator[pa.RecordBatch]:
        """Like ``query`` for many vectors: result batches as the server produces them."""
        batch = pa.RecordBatch.from_pydict({"vector": to_vectors(vectors)})
        if "filter" in options:
            options["filter"] = _filter_text(options["filter"])
        with typed_errors():
            for out in self.proxy.query_stream(
                namespace=namespace, vectors=batch, top_k=top_k, **options
            ):
                yield out.batch

    def list_ids(
        self, namespace: str, prefix: str = "", page_size: int = 1000, page_token: str | None = None
    ) -> IdPage:
        """One page of ids in sorted order."""
        with typed_errors():
            return self.proxy.list_ids(
                namespace=namespace, prefix=prefix, page_size=page_size, page_token=page_token
            )

    def export(self, namespace: str, batch_size: int = 10000) -> Iterator[pa.RecordBatch]:
        """Every live row, streamed in id order."""
        with typed_errors():
            for out in self.proxy.export(namespace=namespace, batch_size=batch_size):
                yield out.batch

    def export_table(self, namespace: str) -> pa.Table:
        """The whole namespace as one table."""
        batches = list(self.export(namespace))
        if not batches:
            return pa.table({"id": pa.array([], pa.utf8())})
        return pa.Table.from_batches(batches)

    def snapshot(self, namespace: str) -> int:
        """Snapshot now; returns the offset covered."""
        with typed_errors():
            return self.proxy.snapshot(namespace=namespace)

    def compact(self, namespace: str) -> NamespaceStats:
        """Rebuild the index without masked rows."""
        with typed_errors():
            return self.proxy.compact(namespace=namespace)

    def stats(self) -> Stats:
        """Namespaces and per-method counters."""
        with typed_errors():
            return self.proxy.stats()


@contextlib.contextmanager
def _wrap(cm: AbstractContextManager[VectorIndex]) -> Iterator[VectorIndexClient]:
    with cm as proxy:
        yield VectorIndexClient(proxy)


@contextlib.contextmanager
def _in_process(store: str, **options: Any) -> Iterator[VectorIndexClient]:
    from vgi_rpc.services.vectorindex.server import VectorIndexService

    service = VectorIndexService(store, **options)
    try:
        with _wrap(serve_pipe(VectorIndex, service)) as client:
            yield client
    finally:
        service.close()


def connect(
    target: str | None = None,
    *,
    socket: str | None = None,
    url: str | None = None,
    host: str | None = None,
    port: int | None = None,
    store: str | None = None,
    worker_store: str | None = None,
    prefix: str = "/vgi",
    shm_size: int | None = None,
    **options: Any,
) -> AbstractContextManager[VectorIndexClient]:
    """Connect to a vector index; a context manager yielding a ``VectorIndexClient``.

    Exactly one of: ``socket`` (unix socket path), ``url`` (HTTP, served under
    ``prefix``), ``host`` + ``port`` (TCP), ``store`` (serve in this process over a
    pipe, persisting to that directory) or ``worker_store`` (start
    ``python -m vgi_rpc.services.vectorindex --store DIR`` as a subprocess). A
    positional ``target`` is read as a URL when it has ``://``, else a socket path.
    """
    if target is not None:
        if "://" in target:
            url = target
        else:
            socket = target
    chosen = [x is not None for x in (socket, url, host, store, worker_store)]
    if sum(chosen) != 1:
        raise ValueError(
            "connect() takes exactly one of socket, url, host/port, store, worker_store"
        )
    if socket is not None:
        return _wrap(unix_connect(VectorIndex, socket, shm_size=shm_size, **options))
    if url is not None:
        from vgi_rpc.http import http_connect

        return _wrap(http_connect(VectorIndex, url, prefix=prefix, **options))
    if host is not None:
        if port is None:
            raise ValueError("connect(host=...) needs port=")
        return _wrap(tcp_connect(VectorIndex, host, port, **options))
    if store is not None:
        return _in_process(store, **options)
    assert worker_store is not None
    command = [sys.executable, "-m", "vgi_rpc.services.vectorindex", "--store", worker_store]
    return _wrap(connect_worker(VectorIndex, command, shm_size=shm_size, **options))
