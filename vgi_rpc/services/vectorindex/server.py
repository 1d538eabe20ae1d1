"""The vector index service: the implementation of ``protocol.VectorIndex``.

Owns the namespaces (created, recovered at start, dropped), argument checks
at the wire edge, per-method counters and background maintenance (rebuilds
and snapshots). Serve it with any vgi_rpc transport::

    service = VectorIndexService("/var/lib/vectors")
    run_server(VectorIndex, service)        # or serve_unix / make_wsgi_app / ...
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import uuid
import weakref
from contextlib import AbstractContextManager

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from vgi_rpc import Stream
from vgi_rpc.services.vectorindex import _results
from vgi_rpc.services.vectorindex._batches import (
    check_answer_bytes,
    check_answer_size,
    check_ids,
    check_top_k,
    leading_that_fit,
    query_vectors,
    upsert_columns,
)
from vgi_rpc.services.vectorindex._counters import Counters, counted
from vgi_rpc.services.vectorindex._engine import IndexConfig
from vgi_rpc.services.vectorindex._errors import (
    InvalidArgumentError,
    NamespaceExistsError,
    NamespaceNotFoundError,
)
from vgi_rpc.services.vectorindex._filters import compile_filter, parse_filter
from vgi_rpc.services.vectorindex._namespace import Namespace
from vgi_rpc.services.vectorindex._snapshots import SnapshotStore, check_namespace
from vgi_rpc.services.vectorindex._streams import ExportState, QueryState, UpsertState
from vgi_rpc.services.vectorindex.protocol import (
    DeleteResult,
    FetchResult,
    FunctionStats,
    IdPage,
    NamespaceStats,
    Stats,
)

log = logging.getLogger("vgi_rpc.services.vectorindex")
_REGISTRY: weakref.WeakValueDictionary[str, VectorIndexService] = weakref.WeakValueDictionary()
MAX_PAGE = 10_000
MAX_HNSW_M = 256  # for new namespaces (older ones keep what they were created with)
MAX_NAMESPACES = 10_000


def lookup_service(service_id: str) -> VectorIndexService:
    """The service a stream state belongs to (the only one, if the id is from another process)."""
    found = _REGISTRY.get(service_id)
    if found is None:
        live = list(_REGISTRY.values())
        if len(live) != 1:
            raise InvalidArgumentError("this stream belongs to a service that is gone")
        found = live[0]
    return found


class VectorIndexService:
    """Namespaces of vectors on faiss, durable in ``store`` (a directory or a pyarrow.fs URI).

    Args:
        store: Snapshot location: a local directory, a URI such as ``s3://bucket/prefix``,
            or a ``pyarrow.fs.FileSystem`` rooted where snapshots go.
        wal_dir: Local directory for the write-ahead logs (default: inside ``store``;
            required when ``store`` is not local).
        rebuild_fraction: Rebuild a namespace's index when this share of rows is masked.
        snapshot_rows: Snapshot a namespace after this many logged rows.
        background: Run rebuilds and snapshots on a helper thread (else inline,
            before the write that triggered them returns).
        snapshot_on_close: Snapshot namespaces with new writes in ``close()``.
    """

    def __init__(
        self,
        store: str | pafs.FileSystem,
        wal_dir: str | None = None,
        *,
        rebuild_fraction: float = 0.2,
        snapshot_rows: int = 200_000,
        background: bool = True,
        snapshot_on_close: bool = True,
    ) -> None:
        self.store = SnapshotStore(store)
        if wal_dir is None and not self.store.local:
            raise InvalidArgumentError("a non-local store needs a local wal_dir for the log")
        self.wal_root = wal_dir or self.store.root
        self.rebuild_fraction = rebuild_fraction
        self.snapshot_rows = snapshot_rows
        self.snapshot_on_close = snapshot_on_close
        self.service_id = uuid.uuid4().hex
        self._namespaces: dict[str, Namespace] = {}
        self._lock = threading.Lock()
        self.counters = Counters()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None
        for name in self.store.namespaces():
            self._open(name, IndexConfig.from_json(self.store.read_config(name) or "{}"))
        if background:
            self._thread = threading.Thread(
                target=self._maintain, name="vectorindex-maintenance", daemon=True
            )
            self._thread.start()
        _REGISTRY[self.service_id] = self

    # -- plumbing ------------------------------------------------------------------------
    def _open(self, name: str, config: IndexConfig) -> Namespace:
        wal_dir = os.path.join(self.wal_root, name, "wal")
        ns = Namespace(name, config, self.store, wal_dir, rebuild_fraction=self.rebuild_fraction)
        ns.open()
        self._namespaces[name] = ns
        self.after_write(ns)  # a long replayed log or an untrained IVF index: deal with it now
        return ns

    def namespace(self, name: str) -> Namespace:
        """A namespace by name, or ``NamespaceNotFoundError``."""
        ns = self._namespaces.get(name)
        if ns is None:
            raise NamespaceNotFoundError(f"no namespace {name!r}; create it with create_index")
        return ns

    def counting(
        self, function: str, received: int = 1, sent: int = 1
    ) -> AbstractContextManager[None]:
        """Count one call of ``function`` (a context manager); see ``Counters.counting``."""
        return self.counters.counting(function, received, sent)

    def after_write(self, ns: Namespace) -> None:
        """Trigger a rebuild or snapshot if one is due."""
        if not (ns.needs_rebuild() or ns.rows_since_snapshot >= self.snapshot_rows):
            return
        if self._thread is not None:
            self._kick.set()
        else:
            self._maintain_one(ns)

    def _maintain_one(self, ns: Namespace) -> None:
        if ns.needs_rebuild():
            ns.rebuild()
        if ns.rows_since_snapshot >= self.snapshot_rows:
            ns.snapshot()

    def _maintain(self) -> None:
        while not self._stop.is_set():
            self._kick.wait()
            self._kick.clear()
            for ns in list(self._namespaces.values()):
                if self._stop.is_set():
                    return
                try:
                    self._maintain_one(ns)
                except Exception:  # keep serving; the next write retries
                    log.exception("maintenance of namespace %s failed", ns.name)

    def close(self) -> None:
        """Stop maintenance, snapshot namespaces with unsnapshotted writes, close the logs."""
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for ns in list(self._namespaces.values()):
            if self.snapshot_on_close and ns.applied != ns.snapshot_offset:
                ns.snapshot()
            ns.close()
        _REGISTRY.pop(self.service_id, None)

    # -- namespaces ----------------------------------------------------------------------
    @counted
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
        """See ``VectorIndex.create_index``."""
        check_namespace(namespace)
        if not 1 <= hnsw_m <= MAX_HNSW_M:  # each vector keeps 2 x hnsw_m links: memory per row
            raise InvalidArgumentError(f"hnsw_m must be between 1 and {MAX_HNSW_M}, got {hnsw_m}")
        config = IndexConfig(dim, metric, kind, hnsw_m=hnsw_m, ef_search=ef_search, nprobe=nprobe)
        with self._lock:
            existing = self._namespaces.get(namespace)
            if existing is None and len(self._namespaces) >= MAX_NAMESPACES:
                raise InvalidArgumentError(
                    f"this server holds {MAX_NAMESPACES} namespaces, its limit: drop one first"
                )
            if existing is None:
                self.store.write_config(namespace, config.to_json())
                existing = self._open(namespace, config)
            elif existing.config != config:
                raise NamespaceExistsError(
                    f"namespace {namespace!r} exists with {existing.config}; drop it first"
                )
        return self._ns_stats(existing)

    @counted
    def drop_index(self, namespace: str) -> bool:
        """See ``VectorIndex.drop_index``."""
        with self._lock:
            ns = self._namespaces.pop(namespace, None)
        if ns is None:
            return False
        ns.destroy()  # close and remove the log first, then the config (the commit) and snapshots
        self.store.drop(namespace)
        return True

    # -- writes --------------------------------------------------------------------------
    @counted
    def upsert(self, namespace: str, data: pa.RecordBatch) -> int:
        """See ``VectorIndex.upsert``."""
        ns = self.namespace(namespace)
        offset = ns.upsert(*upsert_columns(data, ns.config.dim))
        self.after_write(ns)
        return offset

    def upsert_batch(self, namespace: str, data: pa.RecordBatch) -> int:
        """One batch of an upsert stream (counted under ``upsert_stream``)."""
        with self.counting("upsert_stream"):
            ns = self.namespace(namespace)
            offset = ns.upsert(*upsert_columns(data, ns.config.dim))
            self.after_write(ns)
            return offset

    @counted
    def upsert_stream(self, namespace: str) -> Stream[UpsertState]:
        """See ``VectorIndex.upsert_stream``."""
        self.namespace(namespace)
        return Stream(_results.UPSERT_ACK, UpsertState(self.service_id, namespace))

    @counted
    def delete(
        self,
        namespace: str,
        ids: list[str] | None = None,
        filter: str | None = None,
        all: bool = False,
    ) -> DeleteResult:
        """See ``VectorIndex.delete``."""
        ns = self.namespace(namespace)
        spec = parse_filter(filter)
        if sum((ids is not None, spec is not None, all)) != 1:
            raise InvalidArgumentError("delete takes exactly one of ids, filter or all=True")
        if ids is not None:
            ids = check_ids(ids)
        expr = None
        if spec is not None:
            with ns.reading() as engine:
                expr = compile_filter(spec, pa.schema(list(engine.metadata_type)), ("metadata",))
        offset, deleted = ns.delete(ids, expr, all)
        self.after_write(ns)
        return DeleteResult(offset, deleted)

    # -- reads ---------------------------------------------------------------------------
    @counted
    def fetch(self, namespace: str, ids: list[str]) -> FetchResult:
        """See ``VectorIndex.fetch``."""
        ns = self.namespace(namespace)
        check_ids(ids)
        with ns.reading() as engine:
            rows = [engine.position.get(i, -1) for i in ids]
            found = [r for r in rows if r >= 0]
            missing = [i for i, r in zip(ids, rows, strict=True) if r < 0]
            index = np.asarray(found, np.int64)
            check_answer_bytes(len(found), int(engine.row_bytes(index, True, True).sum()))
            batch = _results.rows_batch(engine, found, engine.metadata_type)
        return FetchResult(batch, missing)

    def run_query(
        self,
        ns: Namespace,
        vectors: pa.RecordBatch,
        top_k: int,
        filter: str | None,
        include: tuple[bool, bool],
        first_query: int = 0,
        meta_type: pa.StructType | None = None,
        cut: bool = False,
    ) -> tuple[pa.RecordBatch, int]:
        """Search under the read lock and shape the answer; return it and the queries it answers.

        The answer's exact size is checked after the search: past 512 MiB it is
        an error, or with ``cut`` only the leading queries that fit are answered.
        """
        with ns.reading() as engine:
            queries = query_vectors(vectors, ns.config.dim)
            check_answer_size(len(queries), min(top_k, engine.count), engine.hit_bytes(*include))
            mask = None
            if filter:
                text = filter

                def compiled() -> pc.Expression:
                    spec = parse_filter(text) or {}
                    schema = pa.schema(list(engine.metadata_type))
                    return compile_filter(spec, schema, ("metadata",))

                mask = ns.filter_mask(engine, text, compiled)
            rows, scores = engine.search(queries, top_k, mask)
            sizes = engine.row_bytes(rows.reshape(-1), *include).reshape(rows.shape).sum(axis=1)
            if not cut:
                answered = len(queries)
                check_answer_bytes(int(rows.size), int(sizes.sum()))
            else:
                answered = leading_that_fit(sizes)
                if answered == 0 and len(sizes):  # not even one query's matches fit: refused
                    check_answer_bytes(int(rows.shape[1]), int(sizes[0]))
            rows, scores = rows[:answered], scores[:answered]
            batch = _results.query_batch(
                engine, rows, scores, first_query, include, meta_type or engine.metadata_type
            )
            return batch, answered

    @counted
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
        """See ``VectorIndex.query``."""
        ns = self.namespace(namespace)
        check_top_k(top_k)
        parse_filter(filter)  # a malformed filter is refused before waiting
        if min_offset is not None:
            ns.wait_applied(min_offset)
        include = (include_data, include_metadata)
        return self.run_query(ns, vectors, top_k, filter, include)[0]

    @counted
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
    ) -> Stream[QueryState]:
        """See ``VectorIndex.query_stream``."""
        ns = self.namespace(namespace)
        check_top_k(top_k)
        if not 1 <= queries_per_batch <= 100_000:
            raise InvalidArgumentError("queries_per_batch must be between 1 and 100000")
        parse_filter(filter)
        query_vectors(vectors, ns.config.dim)  # refuse bad input at init
        if min_offset is not None:
            ns.wait_applied(min_offset)
        with ns.reading() as engine:
            meta_type = engine.metadata_type
        schema = _results.query_schema(ns.config.dim, (include_data, include_metadata), meta_type)
        state = QueryState(
            self.service_id, namespace, vectors, top_k, filter, include_data, include_metadata,
            queries_per_batch,
        )  # fmt: skip
        return Stream(schema, state)

    @counted
    def list_ids(
        self,
        namespace: str,
        prefix: str = "",
        page_size: int = 1000,
        page_token: str | None = None,
    ) -> IdPage:
        """See ``VectorIndex.list_ids``."""
        ns = self.namespace(namespace)
        if not 1 <= page_size <= MAX_PAGE:
            raise InvalidArgumentError(f"page_size must be between 1 and {MAX_PAGE}")
        with ns.reading() as engine:
            ids = engine.sorted_ids()
            start = bisect.bisect_left(ids, prefix)
            if page_token:
                start = max(start, bisect.bisect_right(ids, page_token))
            page = [i for i in ids[start : start + page_size] if i.startswith(prefix)]
            more = start + page_size < len(ids) and ids[start + page_size].startswith(prefix)
        return IdPage(page, page[-1] if more and page else None)

    @counted
    def export(self, namespace: str, batch_size: int = 10000) -> Stream[ExportState]:
        """See ``VectorIndex.export``."""
        ns = self.namespace(namespace)
        if not 1 <= batch_size <= 1_000_000:
            raise InvalidArgumentError("batch_size must be between 1 and 1000000")
        with ns.reading() as engine:
            meta_type = engine.metadata_type
        schema = _results.rows_schema(ns.config.dim, meta_type)
        return Stream(schema, ExportState(self.service_id, namespace, batch_size))

    @counted
    def snapshot(self, namespace: str) -> int:
        """See ``VectorIndex.snapshot``."""
        return self.namespace(namespace).snapshot()

    @counted
    def compact(self, namespace: str) -> NamespaceStats:
        """See ``VectorIndex.compact``."""
        ns = self.namespace(namespace)
        ns.rebuild()
        return self._ns_stats(ns)

    def _ns_stats(self, ns: Namespace) -> NamespaceStats:
        with ns.reading() as engine:
            c = ns.config
            return NamespaceStats(
                ns.name, c.dim, c.metric, c.kind, engine.count, engine.dead,
                engine.memory_bytes(), ns.applied, ns.snapshot_offset,
            )  # fmt: skip

    @counted
    def stats(self) -> Stats:
        """See ``VectorIndex.stats``."""
        namespaces = [self._ns_stats(ns) for ns in list(self._namespaces.values())]
        functions = [FunctionStats(*row) for row in self.counters.rows()]
        return Stats(namespaces, functions, sum(n.count for n in namespaces))
