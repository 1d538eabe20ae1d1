"""One durable namespace: engine + write-ahead log + snapshots, and its locks.

Owns the write path (validate, append to the log and sync, apply, acknowledge
with the offset), recovery (newest snapshot, then the log after it) and the
concurrency rules: one writer at a time (``_writer``); readers share the engine
under the read side of ``_rw``; only applying a write (or swapping a rebuilt
index in) takes the write side. Snapshots and rebuilds hold the writer lock, never the write side
while they do I/O or build an index, so queries never wait for them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from vgi_rpc.services.vectorindex import _metatypes
from vgi_rpc.services.vectorindex._batches import (
    MAX_EXPANSION_BYTES,
    MAX_METADATA_FIELDS,
    vectors_array,
)
from vgi_rpc.services.vectorindex._engine import Engine, IndexConfig
from vgi_rpc.services.vectorindex._errors import InvalidArgumentError, StorageError
from vgi_rpc.services.vectorindex._snapshots import SnapshotStore
from vgi_rpc.services.vectorindex._wal import WriteAheadLog

log = logging.getLogger("vgi_rpc.services.vectorindex")
_OP = b"vectorindex.op"
MASK_CACHE = 8  # filter masks kept per namespace (one byte per row each)


class ReadWriteLock:
    """Many readers or one writer; not reentrant.

    A waiting writer holds new readers back, so a steady stream of queries cannot
    starve writes (the write side is only held to apply a batch or swap an index
    in, never for I/O).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared."""
        with self._cond:
            while self._writing or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock exclusively."""
        with self._cond:
            self._waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


def _entry(op: str, columns: dict[str, pa.Array[Any]]) -> pa.RecordBatch:
    if not columns:
        batch = pa.RecordBatch.from_pydict({"_": pa.array([], pa.null())})
    else:
        batch = pa.RecordBatch.from_pydict(columns)
    return batch.replace_schema_metadata({_OP: op.encode()})


def _new_field_bytes(current: Any, merged: Any) -> int:
    """Per existing row, what null-filling the fields ``merged`` adds to ``current`` costs."""
    total = 0
    for field in merged:
        index = current.get_field_index(field.name)
        if index < 0:
            total += _metatypes.null_fill_bytes(field.type)
        elif pa.types.is_struct(field.type) and pa.types.is_struct(current.field(index).type):
            total += _new_field_bytes(current.field(index).type, field.type)
    return total


class Namespace:
    """A namespace's data, durable through its log and snapshots."""

    def __init__(
        self,
        name: str,
        config: IndexConfig,
        store: SnapshotStore,
        wal_dir: str,
        *,
        rebuild_fraction: float = 0.2,
    ) -> None:
        self.name = name
        self.config = config
        self.store = store
        self.wal = WriteAheadLog(wal_dir)
        self.wal_dir = wal_dir
        self.engine = Engine(config, rebuild_fraction)
        self.rebuild_fraction = rebuild_fraction
        self.applied = 0
        self.snapshot_offset = 0
        self.rows_since_snapshot = 0
        self._writer = threading.Lock()
        self._rw = ReadWriteLock()
        self._applied_cv = threading.Condition()
        self.generation = 0  # changes whenever row positions or their metadata may change
        self._masks: OrderedDict[tuple[int, str], npt.NDArray[np.bool_]] = OrderedDict()
        self._masks_lock = threading.Lock()

    # -- recovery ------------------------------------------------------------------------
    def open(self) -> None:
        """Load the newest snapshot and replay the log after it."""
        snap = self.store.latest(self.name)
        if snap is not None:
            trained = int(str(snap.info.get("trained_rows", 0)))
            try:
                self.engine = Engine.from_table(
                    self.config, snap.table, snap.index, self.rebuild_fraction, trained
                )
            except (ValueError, RuntimeError) as exc:  # a bad index: rebuild it from the rows
                log.warning("snapshot index of %s unusable (%s); rebuilding", self.name, exc)
                self.engine = Engine.from_table(
                    self.config, snap.table, None, self.rebuild_fraction
                )
            self.snapshot_offset = self.applied = snap.offset
        for offset, batch in self.wal.replay(after=self.applied):
            self._apply(batch)
            self.applied = offset
            self.rows_since_snapshot += batch.num_rows

    def _apply(self, batch: pa.RecordBatch) -> int:
        op = (batch.schema.metadata or {}).get(_OP, b"").decode()
        self.generation += 1
        engine = self.engine
        if op == "upsert":
            flat = pc.list_flatten(batch.column("vector")).to_numpy(zero_copy_only=False)
            vectors = flat.astype(np.float32, copy=False).reshape(batch.num_rows, self.config.dim)
            meta = batch.column("metadata") if "metadata" in batch.schema.names else None
            engine.upsert([str(i) for i in batch.column("id").to_pylist()], vectors, meta)
            return batch.num_rows
        if op == "delete":
            return engine.delete(str(i) for i in batch.column("id").to_pylist())
        if op == "delete_all":
            count = engine.count
            self.engine = Engine(self.config, self.rebuild_fraction)
            return count
        raise StorageError(f"unknown log entry kind {op!r} in namespace {self.name}")

    # -- writes --------------------------------------------------------------------------
    def _commit(self, entry: pa.RecordBatch) -> tuple[int, int]:
        """Log (synced), then apply; the caller holds ``_writer``. Returns (offset, count)."""
        offset = self.wal.append(entry)
        with self._rw.write():
            count = self._apply(entry)
        with self._applied_cv:
            self.applied = offset
            self._applied_cv.notify_all()
        self.rows_since_snapshot += entry.num_rows
        return offset, count

    def upsert(
        self, ids: list[str], vectors: npt.NDArray[np.float32], metadata: pa.Array[Any] | None
    ) -> int:
        """Durably add or replace rows; return the log offset."""
        columns: dict[str, pa.Array[Any]] = {
            "id": pa.array(ids, pa.utf8()),
            "vector": vectors_array(vectors),
        }
        with self._writer:
            if metadata is not None:
                self._check_metadata_type(metadata)
                columns["metadata"] = metadata
            return self._commit(_entry("upsert", columns))[0]

    def _check_metadata_type(self, incoming: pa.Array[Any]) -> None:
        """Refuse metadata the namespace's rows cannot be concatenated with (before logging it).

        A field seen with two types is widened when the rows are concatenated;
        whether that works can depend on the values (int64 2**60 does not fit
        float64 exactly), so the values of every changed field are cast for real.
        """
        current = self.engine.metadata_type
        try:
            merged = (
                pa.unify_schemas(
                    [pa.schema([("m", current)]), pa.schema([("m", incoming.type)])],
                    promote_options="permissive",
                )
                .field("m")
                .type
            )
        except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidArgumentError(
                f"metadata does not fit the namespace's fields ({current}): {exc}"
            ) from None
        fields = _metatypes.count_fields(merged)
        if merged != current and fields > MAX_METADATA_FIELDS:
            raise InvalidArgumentError(
                f"metadata would have {fields} fields in namespace {self.name!r} (nested ones "
                f"included); a namespace holds at most {MAX_METADATA_FIELDS}"
            )
        fill = self.engine.rows * _new_field_bytes(current, merged)
        if fill > MAX_EXPANSION_BYTES:
            raise InvalidArgumentError(
                f"new metadata fields would be null-filled for {self.engine.rows} rows "
                f"(about {fill >> 20} MiB); at most {MAX_EXPANSION_BYTES >> 20} MiB per upsert: "
                "add fields in an earlier, smaller namespace state or reuse existing fields"
            )
        for path, was in _metatypes.leaves(current):
            now = _metatypes.field_at(merged, path)
            sent = _metatypes.field_at(incoming.type, path)
            if (
                sent is None
                or now is None
                or now == was == sent
                or pa.types.is_null(was)
                or pa.types.is_null(sent)
            ):
                continue
            for what, array, their in (
                ("stored", self.engine.metadata, was),
                ("sent", incoming, sent),
            ):
                if their == now:
                    continue
                try:
                    _metatypes.child(array, path).cast(now)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                    raise InvalidArgumentError(
                        f"metadata field {'.'.join(path)} is {was} in namespace {self.name!r} "
                        f"and {sent} in this batch; the {what} values do not all fit {now}: {exc}"
                    ) from None

    def delete(
        self, ids: list[str] | None, expr: pc.Expression | None, everything: bool
    ) -> tuple[int, int]:
        """Durably delete by ids, by filter, or all; return (offset, rows deleted)."""
        with self._writer:
            if everything:
                return self._commit(_entry("delete_all", {}))
            if expr is not None:
                rows = np.flatnonzero(self.engine.candidates(expr))
                ids = self.engine.id_list(rows)
            present = [i for i in ids or [] if i in self.engine.position]
            if not present:
                return self.applied, 0
            return self._commit(_entry("delete", {"id": pa.array(present, pa.utf8())}))

    # -- reads ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self) -> Iterator[Engine]:
        """The engine, held stable for the duration of a read."""
        with self._rw.read():
            yield self.engine

    def filter_mask(
        self, engine: Engine, text: str, compile: Callable[[], pc.Expression]
    ) -> npt.NDArray[np.bool_]:
        """Live rows matching filter ``text`` (call under ``reading``; never modify the result).

        Cached per write generation, so the batches of one query stream evaluate
        their filter once, not once per batch; a write makes older masks stale.
        """
        key = (self.generation, text)
        with self._masks_lock:
            mask = self._masks.get(key)
            if mask is not None:
                self._masks.move_to_end(key)
                return mask
        mask = engine.candidates(compile())
        with self._masks_lock:
            for stale in [k for k in self._masks if k[0] != self.generation]:
                del self._masks[stale]
            self._masks[key] = mask
            while len(self._masks) > MASK_CACHE:
                self._masks.popitem(last=False)
        return mask

    def wait_applied(self, offset: int, timeout: float = 30.0) -> None:
        """Block until log entry ``offset`` is applied (read-your-writes)."""
        if offset > self.wal.last_offset:
            raise InvalidArgumentError(
                f"min_offset {offset} was never written to namespace {self.name!r} "
                f"(newest offset {self.wal.last_offset})"
            )
        deadline = time.monotonic() + timeout
        with self._applied_cv:
            while self.applied < offset:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"offset {offset} not applied within {timeout} s")
                self._applied_cv.wait(remaining)

    # -- maintenance ---------------------------------------------------------------------
    def needs_rebuild(self) -> bool:
        """Whether dead rows or IVF growth call for a rebuild."""
        return self.engine.needs_rebuild()

    def rebuild(self) -> None:
        """Rebuild the index from the live rows; queries keep using the old one meanwhile."""
        with self._writer:
            fresh = self.engine.rebuilt()
            with self._rw.write():
                self.engine = fresh
                self.generation += 1

    def snapshot(self) -> int:
        """Write a snapshot of the applied state; drop the log it covers. Returns its offset."""
        with self._writer:
            engine, offset = self.engine, self.applied
            if offset == self.snapshot_offset and offset:
                return offset
            # The writer lock keeps the engine still; readers go on in parallel.
            table, index = engine.to_table(), engine.index_bytes()
            info: dict[str, object] = {"trained_rows": engine.trained_rows, "rows": table.num_rows}
            self.store.write(self.name, offset, table, index, info)
            self.wal.roll()
            self.snapshot_offset = offset
            self.rows_since_snapshot = 0
        self.wal.drop_through(offset)
        self.store.prune(self.name)
        return offset

    def close(self) -> None:
        """Close the log file."""
        with self._writer:
            self.wal.close()

    def destroy(self) -> None:
        """Close and delete the log (the caller drops the store side)."""
        self.close()
        shutil.rmtree(self.wal_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(self.wal_dir))
