"""A query's answer is built in memory: its size is bounded before the search runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from tests.services.vectorindex.conftest import random_vectors
from vgi_rpc.services import vectorindex as vix
from vgi_rpc.services.vectorindex import _batches
from vgi_rpc.services.vectorindex.client import VectorIndexClient


@pytest.fixture
def index(tmp_path: str) -> Iterator[VectorIndexClient]:
    with vix.connect(store=str(tmp_path), background=False) as vi:
        vi.create_index("n", 2, metric="l2", kind="exact")
        vi.upsert("n", [f"r{i}" for i in range(10_000)], random_vectors(10_000, 2))
        yield vi


def test_a_small_request_cannot_ask_for_a_billion_matches(index: VectorIndexClient) -> None:
    queries = random_vectors(100_000, 2, seed=1)  # 800 KB of request
    started = time.monotonic()
    with pytest.raises(vix.InvalidArgumentError, match="one answer holds at most 512 MiB"):
        index.query("n", queries, top_k=10_000)
    assert time.monotonic() - started < 5  # refused before searching, not after
    assert index.query("n", queries[:3], top_k=10_000).num_rows == 30_000  # still serving


def test_query_stream_cuts_its_batches_to_what_one_answer_holds(
    index: VectorIndexClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_batches, "MAX_ANSWER_BYTES", 1 << 20)
    queries = random_vectors(200, 2, seed=2)
    with pytest.raises(vix.InvalidArgumentError, match="one answer holds at most 1 MiB"):
        index.query("n", queries, top_k=1000)
    batches = list(index.query_stream("n", queries, top_k=1000, queries_per_batch=1000))
    sizes = [b.num_rows // 1000 for b in batches]
    assert sum(sizes) == 200
    assert len(batches) > 1
    assert all(b.nbytes <= 1 << 20 for b in batches)
    expected = index.query("n", queries[:10], top_k=1000)
    got = batches[0].slice(0, 10_000)
    assert np.array_equal(
        got.column("id").to_numpy(zero_copy_only=False), expected.column("id").to_numpy()
    )


def test_fetch_and_export_are_bounded_like_a_query(
    index: VectorIndexClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_batches, "MAX_ANSWER_BYTES", 64 << 10)
    with pytest.raises(vix.InvalidArgumentError, match="one answer holds at most 64 KiB"):
        index.fetch("n", [f"r{i}" for i in range(5000)])
    assert index.fetch("n", ["r1", "r2"]).table.num_rows == 2
    batches = list(index.export("n", batch_size=10_000))
    assert sum(b.num_rows for b in batches) == 10_000
    assert len(batches) > 1
    assert all(b.nbytes <= 64 << 10 for b in batches)
