"""Durability: kill -9 mid-upsert loses nothing acknowledged and leaves nothing half-visible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.conftest import worker_env
from tests.services.vectorindex.conftest import Open, random_vectors
from vgi_rpc import VgiRpcError
from vgi_rpc.services import vectorindex
from vgi_rpc.services.vectorindex.client import upsert_batch

N, DIM, BATCH = 100_000, 32, 2_000


def _start_worker(store: Path, sock: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "vgi_rpc.services.vectorindex", "--store", str(store)]
    proc = subprocess.Popen([*cmd, "--socket", str(sock)], stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()  # printed once the socket listens
    assert line.startswith("UNIX:"), line
    return proc


@pytest.mark.parametrize(
    ("kill_after", "crash_at"),
    [(20, 0), (35, 0), (0, 23)],
    ids=["kill-after-20-acks", "kill-after-35-acks", "self-kill-mid-log-write-23"],
)
def test_kill_9_during_a_100k_vector_upsert(tmp_path: Path, kill_after: int, crash_at: int) -> None:
    """kill -9 from outside right after an ack, or from inside half way through a log write."""
    store, sock = tmp_path / "store", tmp_path / "vi.sock"
    vectors = random_vectors(N, DIM, seed=7)
    ids = [f"id{i:06d}" for i in range(N)]
    batches = [
        upsert_batch(ids[lo : lo + BATCH], vectors[lo : lo + BATCH], [{"b": lo // BATCH}] * BATCH)
        for lo in range(0, N, BATCH)
    ]
    env = worker_env()
    if crash_at:
        env["VGI_VECTORINDEX_WAL_CRASH_AT"] = str(crash_at)
    proc = _start_worker(store, sock, env)
    acked: dict[int, int] = {}  # batch number -> log offset
    go = threading.Event()

    def kill() -> None:
        go.wait()
        os.kill(proc.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill)
    killer.start()
    failure: BaseException | None = None
    try:
        with vectorindex.connect(socket=str(sock)) as vi:
            vi.create_index("n", DIM, metric="l2")
            try:
                with vi.proxy.upsert_stream(namespace="n") as session:
                    for number, batch in enumerate(batches):
                        ack = session.exchange(batch).batch
                        acked[number] = ack.column("offset")[0].as_py()
                        if number + 1 == kill_after:
                            go.set()  # kill while the next batches are on their way
            except (VgiRpcError, OSError) as exc:
                failure = exc
    finally:
        go.set()
        killer.join()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert failure is not None, "the worker died, so the stream must have failed"
    assert (kill_after or crash_at - 1) <= len(acked) < len(batches)
    if crash_at:  # entry crash_at was torn: its batch is not acknowledged and must vanish
        assert len(acked) == crash_at - 1
    assert list(acked) == list(range(len(acked)))

    # restart: a fresh worker over the pipe recovers from the same store
    with vectorindex.connect(worker_store=str(store), env=worker_env()) as vi:
        table = vi.export_table("n")
    present = table.column("id").to_pylist()
    rows = {i: n for n, i in enumerate(present)}
    got = np.asarray(pc.list_flatten(table.column("vector"))).reshape(-1, DIM)
    for number in acked:  # every acknowledged vector is there, bit for bit
        lo = number * BATCH
        where = [rows[i] for i in ids[lo : lo + BATCH]]
        assert np.array_equal(got[where], vectors[lo : lo + BATCH])
    # unacknowledged batches: each entirely present (logged, ack lost) or entirely absent
    for number in range(len(acked), len(batches)):
        lo = number * BATCH
        count = sum(i in rows for i in ids[lo : lo + BATCH])
        assert count in (0, BATCH), f"batch {number} is half there: {count} of {BATCH}"
    assert len(present) - BATCH * len(acked) in (0, BATCH)  # at most the one in flight
    assert len(present) % BATCH == 0
    if crash_at:
        assert len(present) == BATCH * len(acked)


def _segments(store: Path) -> list[Path]:
    return sorted((store / "n" / "wal").glob("wal-*.log"))


def test_torn_last_entry_is_dropped_on_restart(open_index: Open, tmp_path: Path) -> None:
    vectors = random_vectors(300, 8)
    with open_index(snapshot_on_close=False) as vi:
        vi.create_index("n", 8)
        offsets = [
            vi.upsert("n", [f"b{b}-{i}" for i in range(100)], vectors[b * 100 : b * 100 + 100])
            for b in range(3)
        ]
    assert offsets == [1, 2, 3]
    (segment,) = _segments(tmp_path / "store")
    os.truncate(segment, segment.stat().st_size - 37)  # the crash tore the last write
    with open_index(snapshot_on_close=False) as vi:
        ids = vi.list_ids("n", page_size=1000).ids
        assert len(ids) == 200
        assert not any(i.startswith("b2-") for i in ids)
        assert vi.stats().namespaces[0].offset == 2
        assert vi.upsert("n", ["again"], vectors[:1]) == 3  # the torn offset is reused


def test_corrupt_last_entry_is_dropped_on_restart(open_index: Open, tmp_path: Path) -> None:
    with open_index(snapshot_on_close=False) as vi:
        vi.create_index("n", 8)
        vi.upsert("n", ["a"], random_vectors(1, 8))
        vi.delete("n", ids=["a"])
    (segment,) = _segments(tmp_path / "store")
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0x55  # one flipped bit pattern inside the delete entry
    segment.write_bytes(bytes(data))
    with open_index() as vi:
        assert vi.fetch("n", ["a"]).missing == []  # the delete was never acknowledged-and-kept
        assert vi.stats().namespaces[0].offset == 1


def test_snapshot_plus_log_replay(open_index: Open, tmp_path: Path) -> None:
    vectors = random_vectors(1000, 8)
    with open_index(snapshot_on_close=False) as vi:
        vi.create_index("n", 8, kind="hnsw")
        vi.upsert("n", [f"a{i}" for i in range(500)], vectors[:500])
        assert vi.snapshot("n") == 1
        vi.upsert("n", [f"b{i}" for i in range(500)], vectors[500:])
        vi.delete("n", ids=["a0", "b0"])
    assert len(_segments(tmp_path / "store")) == 1  # the log before the snapshot is gone
    with open_index() as vi:
        ns = vi.stats().namespaces[0]
        assert (ns.count, ns.offset, ns.snapshot_offset) == (998, 3, 1)
        hits = vi.query("n", vectors[[1, 501]], top_k=1)
        assert hits.column("id").to_pylist() == ["a1", "b1"]
    table = pa.ipc.open_file(
        str(sorted((tmp_path / "store" / "n" / "snapshots").glob("*.arrow"))[-1])
    ).read_all()
    assert table.column_names == ["id", "vector", "metadata", "alive"]


def test_snapshots_through_any_pyarrow_filesystem(tmp_path: Path) -> None:
    """A non-local store (here a SubTreeFileSystem standing in for S3) with a local log."""
    import pyarrow.fs as pafs

    from vgi_rpc.services.vectorindex.server import VectorIndexService

    (tmp_path / "bucket").mkdir()
    fs = pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())
    with pytest.raises(vectorindex.InvalidArgumentError, match="wal_dir"):
        VectorIndexService(fs)
    vectors = random_vectors(100, 8)
    service = VectorIndexService(fs, str(tmp_path / "wal"), background=False)
    try:
        service.create_index("n", 8)
        service.upsert("n", upsert_batch([f"v{i}" for i in range(100)], vectors))
        assert service.snapshot("n") == 1
        service.upsert("n", upsert_batch(["extra"], vectors[:1]))
    finally:
        service.close()
    written = sorted(p.name for p in (tmp_path / "bucket" / "n" / "snapshots").iterdir())
    assert written == [f"{o:020d}.{ext}" for o in (1, 2) for ext in ("arrow", "faiss")]
    reopened = VectorIndexService(fs, str(tmp_path / "wal"), background=False)
    try:
        assert reopened.stats().namespaces[0].count == 101
        assert (
            reopened.fetch("n", ["v5"]).rows.column("vector").to_pylist()[0] == vectors[5].tolist()
        )
    finally:
        reopened.close()
