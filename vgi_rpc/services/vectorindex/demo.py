"""A short tour of the vector index, used by ``examples/vector_index.py`` and ``./run demo``.

Starts the service as a worker process (``python -m vgi_rpc.services.vectorindex``),
upserts a few thousand vectors, runs a filtered query, deletes by filter,
restarts the worker and shows that everything acknowledged is still there.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from vgi_rpc.services.vectorindex.client import connect, upsert_batch

GENRES = ("drama", "comedy", "horror", "documentary")


def run_demo(store: str | None = None, n: int = 5000, dim: int = 64) -> None:
    """Print a few lines showing upsert, filtered query, delete and restart."""
    with tempfile.TemporaryDirectory(prefix="vgi-vectorindex-") as tmp:
        store = store or tmp
        rng = np.random.default_rng(42)
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
        ids = [f"film-{i:05d}" for i in range(n)]
        meta = [{"genre": GENRES[i % 4], "year": 1990 + i % 35} for i in range(n)]
        flt = {"genre": "drama", "year": {"$gte": 2020}}
        started = time.perf_counter()
        with connect(worker_store=store) as vi:
            vi.create_index("films", dim, metric="cosine", kind="hnsw")
            step = 2000
            offsets = vi.upsert_many(
                "films",
                (
                    upsert_batch(ids[lo : lo + step], vectors[lo : lo + step], meta[lo : lo + step])
                    for lo in range(0, n, step)
                ),
            )
            print(
                f"vector index: {n} vectors upserted in {len(offsets)} batches "
                f"(log offsets {offsets[0]}..{offsets[-1]}) in {time.perf_counter() - started:.2f} s"
            )
            hits = vi.query("films", vectors[:1], top_k=5, filter=flt, include_metadata=True)
            found = hits["metadata"].to_pylist()
            matches = all(
                m is not None and m["genre"] == "drama" and m["year"] >= 2020 for m in found
            )
            print(f"filtered query {flt}: {hits.num_rows} hits, all match: {matches}")
            deleted = vi.delete("films", filter={"genre": "horror"})
            print(
                f"delete by filter genre=horror: {deleted.deleted} removed at offset {deleted.offset}"
            )
        with connect(worker_store=store) as vi:  # a new worker process on the same store
            count = vi.stats().namespaces[0].count
            horror = [i for i, m in zip(ids, meta, strict=True) if m["genre"] == "horror"]
            back = vi.fetch("films", horror[:100])
            again = vi.query("films", vectors[:1], top_k=5, filter=flt)
            print(
                f"after restart: {count} vectors, deleted ids found: {back.table.num_rows}, "
                f"same filtered answer: {again['id'].to_pylist() == hits['id'].to_pylist()}"
            )
