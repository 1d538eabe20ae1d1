"""Readers never wait for snapshots or rebuilds; a write becomes visible all at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.services.vectorindex.conftest import random_vectors
from vgi_rpc import serve_pipe
from vgi_rpc.services.vectorindex.client import VectorIndexClient, upsert_batch
from vgi_rpc.services.vectorindex.protocol import VectorIndex
from vgi_rpc.services.vectorindex.server import VectorIndexService


@pytest.fixture
def service(tmp_path: Path) -> Iterator[VectorIndexService]:
    svc = VectorIndexService(str(tmp_path), background=False)
    try:
        yield svc
    finally:
        svc.close()


def _blocked(target: Any, name: str) -> tuple[threading.Event, threading.Event]:
    """Make ``target.name`` stop half way until released; return (entered, release)."""
    entered, release = threading.Event(), threading.Event()
    original = getattr(target, name)

    def stuck(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(30)
        return original(*args, **kwargs)

    setattr(target, name, stuck)
    return entered, release


@pytest.mark.parametrize("stage", ["snapshot", "rebuild"])
def test_reads_go_on_while_a_snapshot_or_rebuild_is_stuck(
    service: VectorIndexService, stage: str
) -> None:
    vectors = random_vectors(2000, 8)
    with serve_pipe(VectorIndex, service) as proxy:
        vi = VectorIndexClient(proxy)
        vi.create_index("n", 8, kind="hnsw")
        vi.upsert("n", [f"v{i}" for i in range(2000)], vectors)
        vi.delete("n", ids=["v0"])
        ns = service.namespace("n")
        if stage == "snapshot":
            entered, release = _blocked(service.store, "write")
            worker = threading.Thread(target=ns.snapshot)
        else:
            entered, release = _blocked(ns.engine, "rebuilt")
            worker = threading.Thread(target=ns.rebuild)
        worker.start()
        try:
            assert entered.wait(30)
            # the namespace's writer lock is held by the stuck snapshot/rebuild: reads still answer
            assert vi.query("n", vectors[1:3], top_k=5).num_rows == 10
            assert vi.fetch("n", ["v1", "v0"]).missing == ["v0"]
            assert len(vi.list_ids("n", page_size=5000).ids) == 1999
            assert vi.export_table("n").num_rows == 1999
            assert vi.stats().namespaces[0].count == 1999
        finally:
            release.set()
            worker.join()
        assert vi.query("n", vectors[:1], top_k=1)["id"].to_pylist() != ["v0"]


def test_concurrent_readers_see_whole_batches(service: VectorIndexService) -> None:
    """Readers run while a writer upserts 20 batches: every count they see is a whole number
    of batches, and every query answers in full."""
    batch, batches = 500, 20
    service.create_index("n", 8)
    vectors = random_vectors(batch * batches, 8)
    query = pa.RecordBatch.from_pydict({"vector": upsert_batch(["q"], vectors[:1]).column(1)})
    done = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not done.is_set():
                count = service.stats().namespaces[0].count
                seen.append(count)
                hits = service.query("n", query, top_k=3)
                assert hits.num_rows == min(3, count) or hits.num_rows == 3
        except BaseException as exc:  # reported below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for r in readers:
        r.start()
    try:
        for b in range(batches):
            ids = [f"b{b}-{i}" for i in range(batch)]
            service.upsert("n", upsert_batch(ids, vectors[b * batch : (b + 1) * batch]))
    finally:
        done.set()
        for r in readers:
            r.join()
    assert not errors, errors
    assert seen
    assert all(count % batch == 0 for count in seen)
    assert service.stats().namespaces[0].count == batch * batches


def test_min_offset_waits_for_a_logged_but_unapplied_write(service: VectorIndexService) -> None:
    service.create_index("n", 4)
    service.upsert("n", upsert_batch(["old"], [[1, 0, 0, 0]]))
    ns = service.namespace("n")
    logged, release = threading.Event(), threading.Event()
    append = ns.wal.append

    def append_then_stall(entry: pa.RecordBatch) -> int:
        offset = append(entry)  # durable and numbered, not applied yet
        logged.set()
        assert release.wait(30)
        return offset

    ns.wal.append = append_then_stall  # type: ignore[method-assign,assignment]  # test seam
    writer = threading.Thread(
        target=service.upsert, args=("n", upsert_batch(["new"], [[0, 1, 0, 0]]))
    )
    writer.start()
    query = pa.RecordBatch.from_pydict({"vector": upsert_batch(["q"], [[0, 1, 0, 0]]).column(1)})
    answers: list[list[object]] = []
    try:
        assert logged.wait(30)
        # without min_offset: the state as applied (the new row is not visible yet)
        assert service.query("n", query, top_k=2)["id"].to_pylist() == ["old"]
        reader = threading.Thread(
            target=lambda: answers.append(
                service.query("n", query, top_k=2, min_offset=2)["id"].to_pylist()
            )
        )
        reader.start()
    finally:
        release.set()
        writer.join()
    reader.join()
    assert answers == [["new", "old"]]  # it waited for entry 2 to be applied
