"""The vector index wire API: one ``typing.Protocol`` and its result dataclasses.

This module is the contract any vgi-rpc client can call. Batches use these
columns: ``id`` utf8, ``vector`` fixed_size_list<float32>[dim], ``metadata``
struct. Filters travel as JSON text (MongoDB/Pinecone operators). Imports
only the public vgi_rpc API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from vgi_rpc import ArrowSerializableDataclass, Stream, StreamState


@dataclass(frozen=True)
class NamespaceStats(ArrowSerializableDataclass):
    """One namespace: configuration, size and log position."""

    namespace: str
    dim: int
    metric: str
    kind: str
    count: int
    masked_rows: int
    memory_bytes: int
    offset: int
    snapshot_offset: int


@dataclass(frozen=True)
class FunctionStats(ArrowSerializableDataclass):
    """Per-method counters (core.proto's ``Status``)."""

    function: str
    msg_recv: int
    msg_sent: int
    errors: int
    avg_time_us: float


@dataclass(frozen=True)
class Stats(ArrowSerializableDataclass):
    """Answer of ``stats()``: every namespace and every method's counters."""

    namespaces: list[NamespaceStats]
    functions: list[FunctionStats]
    dataset_size: int


@dataclass(frozen=True)
class DeleteResult(ArrowSerializableDataclass):
    """Log offset of a delete and how many live rows it removed."""

    offset: int
    deleted: int


@dataclass(frozen=True)
class FetchResult(ArrowSerializableDataclass):
    """Rows found (``id``, ``vector``, ``metadata``, in request order) and the ids not found."""

    rows: pa.RecordBatch
    missing: list[str]


@dataclass(frozen=True)
class IdPage(ArrowSerializableDataclass):
    """One page of ids; pass ``next_page_token`` back for the next (None at the end)."""

    ids: list[str]
    next_page_token: str | None


class VectorIndex(Protocol):
    """Vector search per namespace on faiss, durable through a write-ahead log."""

    def create_index(
        self,
        namespace: str,
        dim: int,
        metric: str = "cosine",
        kind: str = "exact",
        ef_search: int = 64,
        nprobe: int = 32,
        hnsw_m: int = 32,
    ) -> NamespaceStats:
        """Create a namespace (idempotent with the same settings).

        ``metric`` is cosine, dot or l2; ``kind`` exact (faiss IndexFlat), hnsw or ivf.
        ``ef_search`` (HNSW) and ``nprobe`` (IVF) trade speed for recall.
        """
        ...

    def drop_index(self, namespace: str) -> bool:
        """Delete a namespace with its log and snapshots; False if it did not exist."""
        ...

    def upsert(self, namespace: str, data: pa.RecordBatch) -> int:
        """Add or replace rows (``id``, ``vector``, optional ``metadata``); return the log offset."""
        ...

    def upsert_stream(self, namespace: str) -> Stream[StreamState]:
        """Exchange: upsert batches in; one ``offset``, ``count`` row out per batch."""
        ...

    def delete(
        self,
        namespace: str,
        ids: list[str] | None = None,
        filter: str | None = None,
        all: bool = False,
    ) -> DeleteResult:
        """Delete by ids, by a metadata filter (JSON), or everything (exactly one of them)."""
        ...

    def fetch(self, namespace: str, ids: list[str]) -> FetchResult:
        """Rows by id; unknown ids are listed in ``missing``."""
        ...

    def query(
        self,
        namespace: str,
        vectors: pa.RecordBatch,
        top_k: int = 10,
        filter: str | None = None,
        include_data: bool = False,
        include_metadata: bool = False,
        min_offset: int | None = None,
    ) -> pa.RecordBatch:
        """Nearest neighbours of each row of ``vectors`` (column ``vector``).

        One row per match: ``query``, ``rank``, ``id``, ``score`` (+ ``vector``,
        ``metadata``). ``min_offset`` waits until that log entry is applied.
        """
        ...

    def query_stream(
        self,
        namespace: str,
        vectors: pa.RecordBatch,
        top_k: int = 10,
        filter: str | None = None,
        include_data: bool = False,
        include_metadata: bool = False,
        min_offset: int | None = None,
        queries_per_batch: int = 1000,
    ) -> Stream[StreamState]:
        """Producer: like ``query``, results streamed ``queries_per_batch`` queries at a time."""
        ...

    def list_ids(
        self,
        namespace: str,
        prefix: str = "",
        page_size: int = 1000,
        page_token: str | None = None,
    ) -> IdPage:
        """Live ids in sorted order, a page at a time."""
        ...

    def export(self, namespace: str, batch_size: int = 10000) -> Stream[StreamState]:
        """Producer: every live row (``id``, ``vector``, ``metadata``) in id order."""
        ...

    def snapshot(self, namespace: str) -> int:
        """Write a snapshot now and trim the log; return the offset it covers."""
        ...

    def compact(self, namespace: str) -> NamespaceStats:
        """Rebuild the index without masked rows now."""
        ...

    def stats(self) -> Stats:
        """Per namespace: size, dimension, kind, memory; per method: counters."""
        ...
