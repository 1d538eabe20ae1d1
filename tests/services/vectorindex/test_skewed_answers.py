"""The answer bound is exact: rows with large metadata count at their own size, not the mean;
and a query stream evaluates its filter once, not once per batch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.services.vectorindex.conftest import Open
from vgi_rpc.services import vectorindex as vix
from vgi_rpc.services.vectorindex import _batches
from vgi_rpc.services.vectorindex._engine import Engine
from vgi_rpc.services.vectorindex.client import VectorIndexClient

BIG = 60_000  # bytes of metadata in each "big" row


def column(values: list[float]) -> np.ndarray[Any, Any]:
    return np.asarray(values, np.float32).reshape(-1, 1)


def fill(vi: VectorIndexClient) -> None:
    """1,000 rows with 1-byte notes near 0, 30 rows with 60 KB notes near 1,000."""
    vi.create_index("n", 1, metric="l2")
    vi.upsert("n", [f"s{i:04}" for i in range(1_000)], column([0.0] * 1_000),
              [{"note": "x"}] * 1_000)  # fmt: skip
    vi.upsert("n", [f"b{i:02}" for i in range(30)], column([1_000.0 + i for i in range(30)]),
              [{"note": "y" * BIG}] * 30)  # fmt: skip


@pytest.fixture
def skewed(open_index: Open, monkeypatch: pytest.MonkeyPatch) -> Iterator[VectorIndexClient]:
    """``fill``ed, and answers bounded at 1 MiB."""
    monkeypatch.setattr(_batches, "MAX_ANSWER_BYTES", 1 << 20)
    with open_index() as vi:
        fill(vi)
        yield vi


def check_bounded(vi: VectorIndexClient) -> None:
    queries = column([1_000.0] * 40)  # every query matches the same big row: 40 x 60 KB
    with pytest.raises(vix.InvalidArgumentError, match="one answer holds at most 1 MiB"):
        vi.query("n", queries, top_k=1, include_metadata=True)
    assert vi.query("n", queries[:10], top_k=1, include_metadata=True).num_rows == 10
    assert vi.query("n", queries, top_k=1).num_rows == 40  # without metadata: small


def test_query_counts_each_matched_row_at_its_own_size(skewed: VectorIndexClient) -> None:
    check_bounded(skewed)


def test_the_sizes_survive_compaction_and_a_restart(
    open_index: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_batches, "MAX_ANSWER_BYTES", 1 << 20)
    with open_index() as vi:
        fill(vi)
        vi.delete("n", ids=[f"s{i:04}" for i in range(500)])
        vi.compact("n")
        check_bounded(vi)
        vi.snapshot("n")
    with open_index() as vi:
        check_bounded(vi)


def test_query_stream_cuts_batches_at_the_exact_size(skewed: VectorIndexClient) -> None:
    queries = column([1_000.0] * 40)
    batches = list(
        skewed.query_stream("n", queries, top_k=1, include_metadata=True, queries_per_batch=1000)
    )
    assert len(batches) > 1
    assert all(b.nbytes <= 1 << 20 for b in batches)
    got = [q for b in batches for q in b.column("query").to_pylist()]
    assert got == list(range(40))
    assert {i for b in batches for i in b.column("id").to_pylist()} == {"b00"}


def test_fetch_and_export_count_rows_at_their_own_size(skewed: VectorIndexClient) -> None:
    with pytest.raises(vix.InvalidArgumentError, match="one answer holds at most 1 MiB"):
        skewed.fetch("n", [f"b{i:02}" for i in range(30)])
    assert skewed.fetch("n", ["b00", "b01", "s0001"]).table.num_rows == 3
    batches = list(skewed.export("n", batch_size=10_000))
    assert sum(b.num_rows for b in batches) == 1_030
    assert all(b.nbytes <= 1 << 20 for b in batches)


def test_query_stream_evaluates_its_filter_once(
    open_index: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = Engine.candidates

    def counting(self: Engine, expr: Any) -> Any:
        calls.append(expr)
        return original(self, expr)

    monkeypatch.setattr(Engine, "candidates", counting)
    rng = np.random.default_rng(0)
    with open_index() as vi:
        vi.create_index("n", 2, metric="l2")
        vi.upsert("n", [f"r{i}" for i in range(200)], rng.random((200, 2), np.float32),
                  [{"a": i % 10} for i in range(200)])  # fmt: skip
        queries = rng.random((20, 2), np.float32)
        batches = list(vi.query_stream("n", queries, top_k=3, filter={"a": 3}, queries_per_batch=1))
        assert len(batches) == 20
        assert len(calls) == 1
        expected = vi.query("n", queries, top_k=3, filter={"a": 3})
        assert len(calls) == 1  # the same filter, no write since: the cached mask
        got = [i for b in batches for i in b.column("id").to_pylist()]
        assert got == expected.column("id").to_pylist()
        # a write makes the cached mask stale: the new row is found
        vi.upsert("n", ["new"], queries[:1], [{"a": 3}])
        assert vi.query("n", queries[:1], top_k=1, filter={"a": 3}).column("id")[0].as_py() == "new"
        # so does a rebuild, which renumbers the rows
        vi.delete("n", ids=[f"r{i}" for i in range(0, 200, 2)])
        vi.compact("n")
        hits = vi.query("n", queries[:1], top_k=30, filter={"a": 3}).column("id").to_pylist()
        assert sorted(str(h) for h in hits) == sorted(
            ["new"] + [f"r{i}" for i in range(3, 200, 10)]
        )
