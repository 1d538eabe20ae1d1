"""``WorkerPool(shm_size=...)``: one segment per borrow, gone when the borrow ends."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from tests._services import BULK, Bulk
from tests._shm_leaks import left_behind as shm_left_behind
from tests._shm_leaks import snapshot as shm_snapshot
from tests.conftest import WORKER, worker_env
from vgi_rpc import StderrMode, WorkerPool
from vgi_rpc._errors import PeerExitedError
from vgi_rpc.rpc import connection_of

MiB = 1 << 20
BULK_WORKER = [*WORKER, "bulk"]


@pytest.fixture(autouse=True)
def _no_segment_left() -> Iterator[None]:
    before = shm_snapshot()
    yield
    assert shm_left_behind(before) == []


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerPool]:
    monkeypatch.setenv("PYTHONPATH", worker_env()["PYTHONPATH"])
    with WorkerPool(max_idle=2, shm_size=32 * MiB, stderr=StderrMode.PIPE) as p:
        yield p


def _segment_file(name: str) -> str:
    return os.path.join("/dev/shm", name.lstrip("/"))


def test_each_borrow_gets_its_own_segment_removed_at_the_end(
    pool: WorkerPool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="vgi_rpc.wire.transport")
    names = []
    pids = set()
    data = os.urandom(2 * MiB)
    for _ in range(3):
        with pool.connect(Bulk, BULK_WORKER) as bulk:
            shm = connection_of(bulk).shm
            assert shm is not None
            names.append(shm.segment.name)
            assert os.path.exists(_segment_file(shm.segment.name))
            assert bulk.echo_big(data=data) == data
            assert shm.segment.allocations()  # the result came through the segment
            pids.add(bulk.pid())
        assert not os.path.exists(_segment_file(names[-1]))
    assert len(set(names)) == 3
    assert len(pids) == 1  # one worker, reused
    assert pool.metrics.spawns == 1
    assert pool.metrics.reuses == 2
    # the worker was asked about shared memory once, not per borrow
    asked = [r for r in caplog.records if "__transport_options__" in r.getMessage()]
    assert len(asked) == 1


def test_a_worker_killed_mid_borrow_does_not_leak_its_segment(pool: WorkerPool) -> None:
    batch = pa.RecordBatch.from_arrays([pa.array(np.ones(MiB // 8))], schema=BULK)
    with pool.connect(Bulk, BULK_WORKER) as bulk:
        shm = connection_of(bulk).shm
        assert shm is not None
        name = shm.segment.name
        pid = bulk.pid()
        session = bulk.echo_batches()
        assert session.exchange(batch).batch.equals(batch)  # the worker has the segment mapped
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(PeerExitedError):
            session.exchange(batch)
        assert os.path.exists(_segment_file(name))
    assert not os.path.exists(_segment_file(name))
    assert pool.metrics.discards == 1
    assert pool.idle_count == 0


def test_bad_shm_size_is_refused() -> None:
    with pytest.raises(ValueError, match="shm_size"):
        WorkerPool(shm_size=1024)
