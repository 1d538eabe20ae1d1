"""A filtered query returns top_k whenever that many rows match, whatever the index kind."""

from __future__ import annotations

import numpy as np
import pytest

from tests.services.vectorindex.conftest import Open, brute_force, random_vectors
from vgi_rpc.services.vectorindex import _engine

N, DIM, K = 6000, 16, 25


def _setup(vi, kind: str):  # type: ignore[no-untyped-def]
    vectors = random_vectors(N, DIM)
    meta = [{"bucket": i % 100, "tag": "rare" if i % 200 == 0 else "common"} for i in range(N)]
    vi.create_index("n", DIM, kind=kind)
    vi.upsert("n", [f"v{i}" for i in range(N)], vectors, meta)
    return vectors


def _check(vi, vectors: np.ndarray, flt: dict[str, object], match: np.ndarray, k: int) -> None:  # type: ignore[no-untyped-def]
    queries = random_vectors(8, DIM, seed=3)
    table = vi.query("n", queries, top_k=k, filter=flt)
    rows = np.flatnonzero(match)
    expect_k = min(k, len(rows))
    assert table.num_rows == 8 * expect_k  # a full top_k for every query
    got = np.array([int(i[1:]) for i in table.column("id").to_pylist()]).reshape(8, expect_k)
    assert np.isin(got, rows).all()  # every hit passes the filter
    exact = rows[brute_force(vectors[rows], queries, expect_k)]
    recall = np.mean([len(set(g) & set(e)) / expect_k for g, e in zip(got, exact, strict=True)])
    assert recall >= 0.9


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_selective_and_broad_filters(open_index: Open, kind: str) -> None:
    with open_index() as vi:
        vectors = _setup(vi, kind)
        bucket = np.arange(N) % 100
        _check(vi, vectors, {"tag": "rare"}, np.arange(N) % 200 == 0, K)  # 30 rows match
        _check(vi, vectors, {"bucket": {"$lt": 50}}, bucket < 50, K)  # half match
        _check(vi, vectors, {"bucket": 7, "tag": "common"}, bucket == 7, K)  # 60 match
        few: dict[str, object] = {"$and": [{"tag": "rare"}, {"bucket": {"$in": [0]}}]}
        _check(vi, vectors, few, np.arange(N) % 200 == 0, K)  # 30 match: rows 0, 200, ...
        assert vi.query("n", vectors[:1], top_k=K, filter={"bucket": 1000}).num_rows == 0


def test_approximate_index_that_comes_back_short_is_completed(
    open_index: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Force HNSW with a 0.5% selector: faiss returns fewer than top_k; the engine completes
    the answer with an exact search over the matching rows."""
    monkeypatch.setattr(_engine, "SUBSET_MIN", 0)
    monkeypatch.setattr(_engine, "SUBSET_FRACTION", 0.0)
    with open_index() as vi:
        vectors = _setup(vi, "hnsw")
        _check(vi, vectors, {"tag": "rare"}, np.arange(N) % 200 == 0, 30)
