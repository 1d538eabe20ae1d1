"""A deleted id never comes back: exact and HNSW, before and after a rebuild and a restart."""

from __future__ import annotations

import numpy as np
import pytest

from tests.services.vectorindex.conftest import Open, random_vectors
from vgi_rpc.services.vectorindex.client import VectorIndexClient

N, DIM = 3000, 16


def _assert_gone(vi: VectorIndexClient, deleted: list[str], vectors: np.ndarray) -> None:
    gone = set(deleted)
    rows = [int(i[1:]) for i in deleted]
    # each deleted vector is its own nearest neighbour: it would rank first if it survived
    hits = vi.query("n", vectors[rows], top_k=20)
    assert not gone & set(hits.column("id").to_pylist())
    assert hits.num_rows == 20 * len(rows)  # still a full top_k from the live rows
    filtered = vi.query("n", vectors[rows[:5]], top_k=10, filter={"group": {"$in": [0, 1]}})
    assert not gone & set(filtered.column("id").to_pylist())
    assert vi.fetch("n", deleted).missing == deleted
    assert not gone & set(vi.export_table("n").column("id").to_pylist())
    assert not gone & set(vi.list_ids("n", page_size=10_000).ids)


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_deleted_ids_never_reappear(open_index: Open, kind: str) -> None:
    vectors = random_vectors(N, DIM)
    ids = [f"v{i}" for i in range(N)]
    meta = [{"group": i % 4} for i in range(N)]
    by_id = [f"v{i}" for i in range(0, N, 7)]
    by_filter = [f"v{i}" for i in range(N) if i % 4 == 3]
    # rebuilds only when asked: masked rows stay in the faiss index until compact()
    with open_index(rebuild_fraction=1.0) as vi:
        vi.create_index("n", DIM, kind=kind)
        vi.upsert("n", ids, vectors, meta)
        vi.delete("n", ids=by_id)
        result = vi.delete("n", filter={"group": 3})
        assert result.deleted == len(set(by_filter) - set(by_id))
        deleted = sorted(set(by_id) | set(by_filter))
        before = vi.stats().namespaces[0]
        assert before.masked_rows == len(deleted)
        _assert_gone(vi, deleted, vectors)
        after = vi.compact("n")
        assert after.masked_rows == 0
        assert after.count == N - len(deleted)
        _assert_gone(vi, deleted, vectors)
        vi.upsert("n", ["v1"], vectors[1:2], [{"group": 1}])  # a write after the rebuild
    with open_index() as vi:  # restart: snapshot (written at close) + log replay
        _assert_gone(vi, deleted, vectors)
        assert vi.stats().namespaces[0].count == N - len(deleted)


def test_deletes_survive_restart_from_the_log_alone(open_index: Open) -> None:
    """No snapshot at all: the restart replays upserts and deletes from the log."""
    vectors = random_vectors(N, DIM)
    deleted = [f"v{i}" for i in range(0, N, 3)]
    with open_index(snapshot_on_close=False) as vi:
        vi.create_index("n", DIM, kind="hnsw")
        vi.upsert("n", [f"v{i}" for i in range(N)], vectors, [{"group": i % 4} for i in range(N)])
        vi.delete("n", ids=deleted)
    with open_index(snapshot_on_close=False) as vi:
        assert vi.stats().namespaces[0].snapshot_offset == 0
        _assert_gone(vi, deleted, vectors)


def test_automatic_rebuild_past_the_threshold(open_index: Open) -> None:
    vectors = random_vectors(N, DIM)
    with open_index(rebuild_fraction=0.1) as vi:
        vi.create_index("n", DIM, kind="hnsw")
        vi.upsert("n", [f"v{i}" for i in range(N)], vectors, [{"group": i % 4} for i in range(N)])
        deleted = [f"v{i}" for i in range(1200)]
        vi.delete("n", ids=deleted[:200])
        assert vi.stats().namespaces[0].masked_rows == 200  # under both thresholds
        vi.delete("n", ids=deleted[200:])
        assert vi.stats().namespaces[0].masked_rows == 0  # rebuilt inline
        _assert_gone(vi, deleted, vectors)


def test_delete_all(open_index: Open) -> None:
    with open_index() as vi:
        vi.create_index("n", 4)
        vi.upsert("n", ["a", "b"], random_vectors(2, 4))
        assert vi.delete("n", all=True).deleted == 2
        assert vi.query("n", random_vectors(1, 4), top_k=5).num_rows == 0
        vi.upsert("n", ["c"], random_vectors(1, 4))
    with open_index() as vi:
        assert vi.list_ids("n").ids == ["c"]
