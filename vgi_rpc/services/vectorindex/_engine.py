"""The in-memory index of one namespace: rows (id, vector, metadata) plus a faiss index.

Owns search, upsert-replaces, masked deletes and rebuilds. No I/O, no locks,
no RPC: the namespace layer serialises writers and guards readers.

Rows are append-only. An upsert of an existing id marks the old row dead and
appends a new one; a delete marks rows dead. faiss labels are row positions, so
dead rows stay in the faiss index until a rebuild and are masked at query time
with an id selector (and checked again on the way out), so a dead row is never
returned.

The vectors are held once. With ``dot`` and ``l2`` faiss stores them exactly as
upserted, so they are read back from faiss's storage (the flat array of
``exact`` and ``hnsw``, the inverted lists of ``ivf`` through a direct map).
``cosine`` indexes unit vectors, from which the upserted vectors cannot be
recovered bit for bit, so the engine keeps its own copy for ``fetch`` and
``export`` as well (so does an IVF namespace still too small to train).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import faiss as _faiss
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from vgi_rpc.services.vectorindex import _metatypes
from vgi_rpc.services.vectorindex._errors import InvalidArgumentError

faiss: Any = _faiss  # untyped extension module

METRICS = ("cosine", "dot", "l2")
KINDS = ("exact", "hnsw", "ivf")
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]
_EMPTY_META = pa.struct([])
SUBSET_FRACTION = 0.1  # a filter matching at most this share of rows is searched exactly
SUBSET_MIN = 10_000
IVF_MIN_ROWS = 2_048  # below this an IVF namespace is searched exactly
REBUILD_MIN_DEAD = 1_000


@dataclass(frozen=True)
class IndexConfig:
    """How a namespace indexes its vectors."""

    dim: int
    metric: str = "cosine"
    kind: str = "exact"
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    nprobe: int = 32

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise InvalidArgumentError(f"unknown metric {self.metric!r}; use one of {METRICS}")
        if self.kind not in KINDS:
            raise InvalidArgumentError(f"unknown index kind {self.kind!r}; use one of {KINDS}")
        if not 1 <= self.dim <= 65_536:
            raise InvalidArgumentError(f"dim must be between 1 and 65536, got {self.dim}")
        for name in ("hnsw_m", "ef_construction", "ef_search", "nprobe"):
            value = getattr(self, name)
            if not 1 <= value <= 4_096:
                raise InvalidArgumentError(f"{name} must be between 1 and 4096, got {value}")

    def to_json(self) -> str:
        """Serialise for the namespace's config file."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> IndexConfig:
        """Inverse of ``to_json``."""
        return cls(**json.loads(text))


class Engine:
    """Rows and faiss index of one namespace."""

    def __init__(self, config: IndexConfig, rebuild_fraction: float = 0.2) -> None:
        self.config = config
        self.rebuild_fraction = rebuild_fraction
        self.rows = 0
        self._id_chunks: list[pa.Array[Any]] = []
        self._ids: pa.Array[Any] | None = pa.array([], pa.utf8())
        self.position: dict[str, int] = {}
        self._vectors: F32 = np.zeros((0, config.dim), dtype=np.float32)  # see owns_vectors
        self._alive: BOOL = np.zeros(0, dtype=np.bool_)
        self._id_len: npt.NDArray[np.int32] = np.zeros(0, dtype=np.int32)  # utf8 bytes per id
        self._meta_var: I64 = np.zeros(0, dtype=np.int64)  # string/list bytes per row's metadata
        self._meta_chunks: list[pa.Array[Any]] = []
        self._meta: pa.Array[Any] | None = pa.array([], _EMPTY_META)
        self._sorted: list[str] | None = None
        self.index: Any = self._new_index(0) if config.kind != "ivf" else None
        self.trained_rows = 0

    # -- shape ---------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Live rows."""
        return len(self.position)

    def hit_bytes(self, include_data: bool, include_metadata: bool) -> int:
        """About what one match costs in a query's answer (ids and metadata at their mean size)."""
        rows = max(self.rows, 1)
        size = 24 + sum(chunk.nbytes for chunk in self._id_chunks) // rows
        if include_data:
            size += 4 * self.config.dim
        if include_metadata:
            size += sum(chunk.nbytes for chunk in self._meta_chunks) // rows
        return size

    def row_bytes(self, rows: I64, include_data: bool, include_metadata: bool) -> I64:
        """What each of the given rows costs in an answer (exactly, not at the mean)."""
        fixed = 24 + (4 * self.config.dim if include_data else 0)
        sizes: I64 = self._id_len[rows].astype(np.int64) + fixed
        if include_metadata:
            sizes += self._meta_var[rows] + _metatypes.fixed_bytes(self.metadata_type)
        return sizes

    @property
    def dead(self) -> int:
        """Rows masked as deleted or replaced, not yet rebuilt away."""
        return self.rows - self.count

    @property
    def owns_vectors(self) -> bool:
        """Whether the engine keeps its own copy (faiss's is not the vectors as upserted)."""
        return self.config.metric == "cosine" or self.index is None

    def vectors_of(self, rows: I64) -> F32:
        """The vectors of the given rows as upserted (a new array)."""
        if self.owns_vectors:
            return self._vectors[rows]
        if self.config.kind == "ivf":
            if not len(rows):
                return np.zeros((0, self.config.dim), np.float32)
            found: F32 = self.index.reconstruct_batch(np.asarray(rows, np.int64))
            return found
        return self._flat_view()[rows]

    def all_vectors(self) -> F32:
        """Every row's vector (dead ones included) as upserted, in row order (a new array)."""
        if self.owns_vectors:
            return self._vectors[: self.rows].copy()
        if self.config.kind == "ivf":
            every: F32 = self.index.reconstruct_n(0, self.rows)
            return every
        return self._flat_view().copy()

    def _flat_view(self) -> F32:
        """Faiss's flat storage as a numpy view: valid only until the next add (caller copies)."""
        storage = self.index if self.config.kind == "exact" else self.index.storage
        storage = faiss.downcast_index(storage)
        n, dim = storage.ntotal, self.config.dim
        if n == 0:
            return np.zeros((0, dim), np.float32)
        view: F32 = faiss.rev_swig_ptr(storage.get_xb(), n * dim).reshape(n, dim)
        return view

    @property
    def alive(self) -> BOOL:
        """Which rows are live."""
        return self._alive[: self.rows]

    @property
    def ids(self) -> pa.Array[Any]:
        """All rows' ids (dead ones included) as one utf8 array, by row position."""
        if self._ids is None:
            self._ids = pa.concat_arrays(self._id_chunks)
            self._id_chunks = [self._ids]
        return self._ids

    def id_list(self, rows: I64) -> list[str]:
        """The ids of the given rows."""
        return [str(i) for i in self.ids.take(pa.array(rows, pa.int64())).to_pylist()]

    @property
    def metadata(self) -> pa.Array[Any]:
        """All rows' metadata as one struct array."""
        if self._meta is None:
            table = pa.concat_tables(
                [pa.table({"m": chunk}) for chunk in self._meta_chunks],
                promote_options="permissive",
            )
            self._meta = table.column("m").combine_chunks()
            self._meta_chunks = [self._meta]
        return self._meta

    @property
    def metadata_type(self) -> pa.StructType:
        """The namespace's metadata struct type so far."""
        meta_type = self.metadata.type
        assert isinstance(meta_type, pa.StructType)
        return meta_type

    def memory_bytes(self) -> int:
        """An estimate of the memory this namespace holds."""
        total: float = self._vectors.nbytes + self._alive.nbytes + self.metadata.nbytes
        total += self._id_len.nbytes + self._meta_var.nbytes
        total += self.ids.nbytes + sum(len(i) + 90 for i in self.position)  # + str, dict entry
        if self.config.kind == "exact":
            total += self.rows * self.config.dim * 4
        elif self.config.kind == "hnsw":
            total += self.rows * (self.config.dim * 4 + self.config.hnsw_m * 2 * 4 * 1.1)
        elif self.index is not None:  # vectors and ids in the lists, plus the direct map
            total += self.rows * (self.config.dim * 4 + 8 + (0 if self.owns_vectors else 8))
        return int(total)

    # -- faiss ---------------------------------------------------------------------------
    def _faiss_metric(self) -> int:
        return int(faiss.METRIC_L2 if self.config.metric == "l2" else faiss.METRIC_INNER_PRODUCT)

    def _new_index(self, rows: int) -> Any:
        c = self.config
        if c.kind == "exact":
            return faiss.IndexFlat(c.dim, self._faiss_metric())
        if c.kind == "hnsw":
            index = faiss.IndexHNSWFlat(c.dim, c.hnsw_m, self._faiss_metric())
            index.hnsw.efConstruction = c.ef_construction
            return index
        nlist = max(8, min(4_096, int(np.sqrt(rows))))
        quantizer = faiss.IndexFlat(c.dim, self._faiss_metric())
        return faiss.IndexIVFFlat(quantizer, c.dim, nlist, self._faiss_metric())

    def prepare(self, vectors: F32) -> F32:
        """Queries and stored vectors in the form the index compares (unit length for cosine)."""
        if self.config.metric != "cosine":
            return vectors
        # float64: the squares of finite float32 values can overflow float32
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64))[:, None]
        return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)

    def _index_add(self, start: int, vectors: F32) -> None:
        if self.index is None:
            return
        if self.index.ntotal != start:
            raise RuntimeError(f"faiss holds {self.index.ntotal} rows, expected {start}")
        self.index.add(vectors)  # faiss labels = row positions (IVF: through its direct map)

    # -- writes --------------------------------------------------------------------------
    def upsert(self, ids: Sequence[str], vectors: F32, metadata: pa.Array[Any] | None) -> None:
        """Add rows; an id already present is replaced (its old row is masked)."""
        n = len(ids)
        if metadata is None:
            metadata = pa.array([{}] * n, _EMPTY_META) if n else pa.array([], _EMPTY_META)
        start = self.rows
        self._grow(start + n)
        if self.owns_vectors:
            self._vectors[start : start + n] = vectors
        self._alive[start : start + n] = True
        for i, id_ in enumerate(ids):
            old = self.position.get(id_)
            if old is not None:
                self._alive[old] = False
            else:
                self._sorted = None
            self.position[id_] = start + i
        id_array = pa.array(ids, pa.utf8())
        self._id_chunks.append(id_array)
        self._ids = None
        self._id_len[start : start + n] = _metatypes.byte_lengths(id_array)
        self._meta_var[start : start + n] = _metatypes.variable_bytes(metadata)
        self._meta_chunks.append(metadata)
        self._meta = None
        self.rows = start + n
        self._index_add(start, self.prepare(vectors))

    def _grow(self, rows: int) -> None:
        if rows <= len(self._alive):
            return
        capacity = max(rows, len(self._alive) * 5 // 4, 1_024)  # bounded slack: 25% at most
        if self.owns_vectors:
            vectors = np.zeros((capacity, self.config.dim), dtype=np.float32)
            vectors[: self.rows] = self._vectors[: self.rows]
            self._vectors = vectors
        alive = np.zeros(capacity, dtype=np.bool_)
        alive[: self.rows] = self._alive[: self.rows]
        self._alive = alive
        id_len = np.zeros(capacity, dtype=np.int32)
        id_len[: self.rows] = self._id_len[: self.rows]
        self._id_len = id_len
        meta_var = np.zeros(capacity, dtype=np.int64)
        meta_var[: self.rows] = self._meta_var[: self.rows]
        self._meta_var = meta_var

    def delete(self, ids: Iterable[str]) -> int:
        """Mask rows by id; return how many existed."""
        removed = 0
        for id_ in ids:
            row = self.position.pop(id_, None)
            if row is not None:
                self._alive[row] = False
                removed += 1
        if removed:
            self._sorted = None
        return removed

    def needs_rebuild(self) -> bool:
        """True when dead rows pass the threshold, or an IVF index should be (re)trained."""
        if self.dead >= max(REBUILD_MIN_DEAD, self.rebuild_fraction * self.rows) or (
            self.dead and self.count == 0
        ):
            return True
        if self.config.kind == "ivf":
            if self.index is None:
                return self.count >= IVF_MIN_ROWS
            return self.count > 4 * self.trained_rows
        return False

    def rebuilt(self) -> Engine:
        """A new engine holding only the live rows, with a fresh faiss index."""
        keep = np.flatnonzero(self.alive)
        fresh = Engine(self.config, self.rebuild_fraction)
        if self.config.kind == "ivf" and len(keep) >= IVF_MIN_ROWS:
            fresh.index = fresh._new_index(len(keep))
            fresh.index.nprobe = self.config.nprobe
            sample = keep if len(keep) <= 100_000 else keep[:: len(keep) // 100_000 + 1]
            fresh.index.train(fresh.prepare(self.vectors_of(sample)))
            if self.config.metric != "cosine":  # the lists hold the vectors as upserted
                fresh.index.set_direct_map_type(faiss.DirectMap.Array)
            fresh.trained_rows = len(keep)
        ids = self.id_list(keep)
        meta = self.metadata.take(pa.array(keep, pa.int64()))
        fresh.upsert(ids, self.vectors_of(keep), meta)
        return fresh

    # -- reads ---------------------------------------------------------------------------
    def candidates(self, expr: pc.Expression | None) -> BOOL:
        """Live rows matching a compiled filter expression (over the ``metadata`` column)."""
        if expr is None:
            return self.alive
        table = pa.table({"metadata": self.metadata, "__row": np.arange(self.rows)})
        rows = table.filter(expr).column("__row").to_numpy()
        mask = np.zeros(self.rows, dtype=np.bool_)
        mask[rows] = True
        return mask & self.alive

    def search(self, queries: F32, top_k: int, mask: BOOL | None) -> tuple[I64, F32]:
        """Top ``top_k`` live rows per query among ``mask`` (default: all live rows).

        Returns row positions and scores, shape ``(len(queries), k)`` with ``k``
        = min(top_k, candidates); every row of the result is full.
        """
        queries = self.prepare(queries)
        candidates = self.alive if mask is None else mask
        matching = self.count if mask is None else int(candidates.sum())
        k = min(top_k, matching)
        if k == 0:
            return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
        selective = mask is not None and matching <= max(SUBSET_MIN, SUBSET_FRACTION * self.count)
        if self.index is None or (selective and self.config.kind != "exact"):
            return self._exact(queries, np.flatnonzero(candidates), k)
        masked = mask is not None or self.dead > 0
        params, bits = self._params(candidates if masked else None)
        scores, labels = self.index.search(queries, k, params=params)
        del bits  # the selector pointed into it until here
        labels = labels.astype(np.int64, copy=False)
        valid = labels >= 0
        if masked:  # belt and braces: the selector already kept these out
            valid &= candidates[np.where(valid, labels, 0)]
        elif valid.all():
            return labels, scores
        short = np.flatnonzero(valid.sum(axis=1) < k)
        if len(short):  # an approximate index came back short: search those exactly
            ex_labels, ex_scores = self._exact(queries[short], np.flatnonzero(candidates), k)
            labels[short], scores[short] = ex_labels, ex_scores
            valid[short] = True
        if not valid.all():  # push masked entries (only possible past the k valid ones) out
            order = np.argsort(~valid, axis=1, kind="stable")
            labels = np.take_along_axis(labels, order, axis=1)
            scores = np.take_along_axis(scores, order, axis=1)
        return labels[:, :k], scores[:, :k].astype(np.float32, copy=False)

    def _params(self, mask: BOOL | None) -> tuple[Any, object]:
        """Faiss search parameters, and the bitmap their selector points into."""
        kwargs: dict[str, Any] = {}
        bits = None
        if mask is not None:
            bits = np.packbits(mask, bitorder="little")  # must outlive the search call
            kwargs["sel"] = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
        if self.config.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=self.config.ef_search, **kwargs), bits
        if self.config.kind == "ivf":
            return faiss.SearchParametersIVF(nprobe=self.config.nprobe, **kwargs), bits
        return (faiss.SearchParameters(**kwargs) if kwargs else None), bits

    def _exact(self, queries: F32, rows: I64, k: int) -> tuple[I64, F32]:
        """Brute force over the given rows."""
        base = self.prepare(self.vectors_of(rows))
        out_rows = np.empty((len(queries), k), np.int64)
        out_scores = np.empty((len(queries), k), np.float32)
        step = max(1, 20_000_000 // max(1, len(rows)))
        l2 = self.config.metric == "l2"
        base_sq = (base * base).sum(axis=1) if l2 else None
        for lo in range(0, len(queries), step):
            q = queries[lo : lo + step]
            scores = q @ base.T
            if base_sq is not None:  # squared L2, smaller is better: negate to rank
                scores = -((q * q).sum(axis=1, keepdims=True) - 2 * scores + base_sq)
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < len(rows) else None
            if top is None:
                top = np.tile(np.arange(len(rows)), (len(q), 1))
            picked = np.take_along_axis(scores, top, axis=1)
            order = np.argsort(-picked, axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
            picked = np.take_along_axis(picked, order, axis=1)
            out_rows[lo : lo + step] = rows[top]
            out_scores[lo : lo + step] = -picked if l2 else picked
        return out_rows, out_scores

    def sorted_ids(self) -> list[str]:
        """Live ids in sorted order (cached until the next write)."""
        if self._sorted is None:
            self._sorted = sorted(self.position)
        return self._sorted

    # -- snapshots -----------------------------------------------------------------------
    def to_table(self) -> pa.Table:
        """Every row (dead ones flagged) as a table: id, vector, metadata, alive."""
        flat = pa.array(self.all_vectors().reshape(-1), pa.float32())
        return pa.table(
            {
                "id": self.ids,
                "vector": pa.FixedSizeListArray.from_arrays(flat, self.config.dim),
                "metadata": self.metadata,
                "alive": pa.array(self.alive, pa.bool_()),
            }
        )

    def index_bytes(self) -> bytes | None:
        """The serialised faiss index, or None while an IVF index is untrained."""
        if self.index is None:
            return None
        return bytes(faiss.serialize_index(self.index))

    @classmethod
    def from_table(
        cls,
        config: IndexConfig,
        table: pa.Table,
        index: bytes | None,
        rebuild_fraction: float = 0.2,
        trained_rows: int = 0,
    ) -> Engine:
        """Restore what ``to_table`` and ``index_bytes`` saved."""
        engine = cls(config, rebuild_fraction)
        rows = table.num_rows
        column = table.column("vector")
        vectors = pc.list_flatten(column).to_numpy().reshape(rows, config.dim)
        if index is not None:
            engine.index = faiss.deserialize_index(np.frombuffer(index, dtype=np.uint8))
            engine.trained_rows = trained_rows
            if engine.index.ntotal != rows:
                raise ValueError(f"index holds {engine.index.ntotal} rows, table {rows}")
            if config.kind == "ivf" and config.metric != "cosine":
                engine.index.set_direct_map_type(faiss.DirectMap.Array)
        elif config.kind != "ivf":
            engine.index.add(engine.prepare(vectors))
        engine._grow(rows)
        engine.rows = rows
        if engine.owns_vectors:
            engine._vectors[:rows] = vectors
        elif not np.array_equal(engine.all_vectors().view(np.uint32), vectors.view(np.uint32)):
            raise ValueError("the index's vectors differ from the snapshot's")
        del vectors, column
        engine._alive[:rows] = table.column("alive").to_numpy(zero_copy_only=False)
        ids = table.column("id").combine_chunks().cast(pa.utf8())
        engine._id_chunks, engine._ids = [ids], ids
        engine._id_len[:rows] = _metatypes.byte_lengths(ids)
        live = np.flatnonzero(engine.alive)
        engine.position = dict(zip(engine.id_list(live), live.tolist(), strict=True))
        engine._meta_chunks = [table.column("metadata").combine_chunks()]
        engine._meta = None
        engine._meta_var[:rows] = _metatypes.variable_bytes(engine._meta_chunks[0])
        return engine
