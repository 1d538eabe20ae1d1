"""The service end to end over a pipe: writes, reads, export, paging, counters."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tests.services.vectorindex.conftest import Open, brute_force, random_vectors
from vgi_rpc.services import vectorindex
from vgi_rpc.services.vectorindex.client import upsert_batch


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_exact_search_matches_brute_force(open_index: Open, metric: str) -> None:
    base, queries = random_vectors(2000, 16), random_vectors(20, 16, seed=1)
    with open_index() as vi:
        vi.create_index("n", 16, metric=metric)
        vi.upsert("n", [f"v{i}" for i in range(2000)], base)
        table = vi.query("n", queries, top_k=10)
    assert table.column_names == ["query", "rank", "id", "score"]
    got = np.array([int(str(i)[1:]) for i in table.column("id").to_pylist()]).reshape(20, 10)
    assert (got == brute_force(base, queries, 10, metric)).mean() > 0.99  # float ties aside
    scores = table.column("score").to_numpy().reshape(20, 10)
    assert (np.diff(scores, axis=1) >= 0).all() if metric == "l2" else (np.diff(scores) <= 0).all()


def test_upsert_replaces_and_fetch_reports_missing(open_index: Open) -> None:
    with open_index() as vi:
        vi.create_index("n", 4)
        vi.upsert("n", ["a", "b"], np.eye(4, dtype=np.float32)[:2], [{"k": 1}, {"k": 2}])
        vi.upsert("n", ["a"], np.array([[0, 0, 5, 0]], np.float32), [{"k": 3}])
        fetched = vi.fetch("n", ["a", "zzz", "b"])
        assert fetched.missing == ["zzz"]
        assert fetched.table.column("id").to_pylist() == ["a", "b"]
        assert fetched.table.column("vector").to_pylist()[0] == [0, 0, 5, 0]
        assert fetched.table.column("metadata").to_pylist() == [{"k": 3}, {"k": 2}]
        hits = vi.query("n", [[0, 0, 1, 0]], top_k=5)
        assert hits.column("id").to_pylist() == ["a", "b"]  # one row per id, the new vector
        assert vi.stats().namespaces[0].count == 2


def test_include_data_and_metadata(open_index: Open) -> None:
    with open_index() as vi:
        vi.create_index("n", 3, metric="l2")
        meta = pa.array([{"tag": "x", "n": 1}, {"tag": "y", "n": 2}])
        vi.upsert(
            "n",
            pa.array(["p", "q"]),
            pa.array([[1, 0, 0], [0, 1, 0]], pa.list_(pa.float32(), 3)),
            meta,
        )
        table = vi.query(
            "n", np.array([[1, 0, 0]]), top_k=1, include_data=True, include_metadata=True
        )
    assert table.to_pylist() == [
        {
            "query": 0,
            "rank": 0,
            "id": "p",
            "score": 0.0,
            "vector": [1, 0, 0],
            "metadata": {"tag": "x", "n": 1},
        }
    ]


def test_export_returns_exactly_what_was_upserted(open_index: Open) -> None:
    vectors = random_vectors(5000, 8)
    ids = [f"id-{i:05d}" for i in range(5000)]
    meta = [{"i": i, "even": i % 2 == 0} for i in range(5000)]
    with open_index() as vi:
        vi.create_index("n", 8)
        for lo in range(0, 5000, 1000):
            vi.upsert("n", ids[lo : lo + 1000], vectors[lo : lo + 1000], meta[lo : lo + 1000])
        vi.upsert("n", ids[:10], vectors[10:20], meta[10:20])  # replace ten
        vi.delete("n", ids=ids[4990:])  # and delete ten
        batches = list(vi.export("n", batch_size=777))
    assert len(batches) == 7
    table = pa.Table.from_batches(batches)
    expected_vectors = np.concatenate([vectors[10:20], vectors[10:4990]])
    expected_meta = meta[10:20] + meta[10:4990]
    assert table.column("id").to_pylist() == ids[:4990]
    got = np.array(table.column("vector").to_pylist(), np.float32)
    assert np.array_equal(got, expected_vectors)
    assert table.column("metadata").to_pylist() == expected_meta


def test_list_ids_pages_and_prefix(open_index: Open) -> None:
    ids = [f"{p}{i:03d}" for p in ("doc-", "img-") for i in range(250)]
    with open_index() as vi:
        vi.create_index("n", 2)
        vi.upsert("n", ids, random_vectors(500, 2))
        seen, token, pages = [], None, 0
        while True:
            page = vi.list_ids("n", prefix="img-", page_size=100, page_token=token)
            seen += page.ids
            pages += 1
            token = page.next_page_token
            if token is None:
                break
        assert seen == ids[250:]
        assert pages == 3
        assert vi.list_ids("n", prefix="nothing").ids == []


def test_min_offset_read_your_writes(open_index: Open) -> None:
    with open_index() as vi:
        vi.create_index("n", 4)
        first = vi.upsert("n", ["a"], [[1, 0, 0, 0]])
        second = vi.upsert("n", ["b"], [[0, 1, 0, 0]])
        assert second == first + 1
        hits = vi.query("n", [[0, 1, 0, 0]], top_k=1, min_offset=second)
        assert hits.column("id").to_pylist() == ["b"]
        deleted = vi.delete("n", ids=["b"])
        assert deleted.offset == second + 1
        assert deleted.deleted == 1
        hits = vi.query("n", [[0, 1, 0, 0]], top_k=2, min_offset=deleted.offset)
        assert hits.column("id").to_pylist() == ["a"]
        with pytest.raises(vectorindex.InvalidArgumentError, match="never written"):
            vi.query("n", [[0, 1, 0, 0]], top_k=1, min_offset=deleted.offset + 5)


def test_bulk_upsert_stream_and_query_stream(open_index: Open) -> None:
    vectors = random_vectors(6000, 8)
    with open_index() as vi:
        vi.create_index("n", 8)
        batches = (
            upsert_batch([f"v{i}" for i in range(lo, lo + 1500)], vectors[lo : lo + 1500])
            for lo in range(0, 6000, 1500)
        )
        offsets = vi.upsert_many("n", batches)
        assert offsets == [1, 2, 3, 4]
        results = list(vi.query_stream("n", vectors[:2500], top_k=3, queries_per_batch=1000))
        assert [b.num_rows for b in results] == [3000, 3000, 1500]
        table = pa.Table.from_batches(results)
        assert table.column("query").to_pylist()[::3] == list(range(2500))
        firsts = table.column("id").to_pylist()[::3]
        assert firsts == [f"v{i}" for i in range(2500)]


def test_stats_counters_and_namespaces(open_index: Open) -> None:
    with open_index() as vi:
        vi.create_index("a", 4, kind="hnsw")
        vi.create_index("b", 8, metric="dot")
        vi.upsert("a", ["x", "y"], random_vectors(2, 4))
        for _ in range(3):
            vi.query("a", random_vectors(1, 4), top_k=1)
        stats = vi.stats()
    by_ns = {n.namespace: n for n in stats.namespaces}
    assert (by_ns["a"].count, by_ns["a"].dim, by_ns["a"].kind) == (2, 4, "hnsw")
    assert (by_ns["b"].count, by_ns["b"].metric) == (0, "dot")
    assert by_ns["a"].memory_bytes > 0
    assert stats.dataset_size == 2
    fns = {f.function: f for f in stats.functions}
    assert (fns["query"].msg_recv, fns["query"].msg_sent, fns["query"].errors) == (3, 3, 0)
    assert fns["upsert"].avg_time_us > 0


def test_create_index_is_idempotent_and_drop(open_index: Open) -> None:
    with open_index() as vi:
        vi.create_index("n", 4)
        vi.create_index("n", 4)
        with pytest.raises(vectorindex.NamespaceExistsError):
            vi.create_index("n", 8)
        vi.upsert("n", ["a"], [[1, 2, 3, 4]])
        assert vi.drop_index("n") is True
        assert vi.drop_index("n") is False
        with pytest.raises(vectorindex.NamespaceNotFoundError):
            vi.query("n", [[1, 2, 3, 4]], top_k=1)
    with open_index() as vi:
        assert vi.stats().namespaces == []


def test_metadata_as_a_map_column(open_index: Open) -> None:
    meta = pa.array(
        [[("genre", "drama"), ("lang", "en")], [("genre", "comedy")], None],
        pa.map_(pa.utf8(), pa.utf8()),
    )
    with open_index() as vi:
        vi.create_index("n", 2, metric="l2")
        vi.upsert("n", ["a", "b", "c"], [[0, 0], [1, 0], [2, 0]], meta)
        hits = vi.query("n", [[0, 0]], top_k=3, filter={"genre": "comedy"}, include_metadata=True)
        assert hits.column("id").to_pylist() == ["b"]
        assert hits.column("metadata").to_pylist() == [{"genre": "comedy", "lang": None}]
        many = pa.array([[(f"k{i}", "v")] for i in range(1001)], pa.map_(pa.utf8(), pa.utf8()))
        with pytest.raises(vectorindex.InvalidArgumentError, match="distinct keys"):
            vi.upsert("n", [f"x{i}" for i in range(1001)], np.zeros((1001, 2)), many)
