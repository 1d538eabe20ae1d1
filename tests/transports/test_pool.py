"""WorkerPool: reuse, eviction, discard of broken or abandoned workers, exact metrics."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests._services import Service
from tests.conftest import WORKER, worker_env
from vgi_rpc import PoolMetrics, StderrMode, WorkerPool


def _wait_for_zombie(pid: int) -> None:
    """Wait until the killed child can be reaped, without reaping it (the pool must see it).

    ``/proc/<pid>/stat`` says "Z" as soon as the main thread is gone, before ``waitpid`` can
    report the exit, so ask ``waitid`` with ``WNOWAIT`` instead.
    """
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} did not exit after SIGKILL")


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerPool]:
    for key, value in worker_env().items():
        monkeypatch.setenv(key, value)
    with WorkerPool(max_idle=2, idle_timeout=60.0, stderr=StderrMode.DEVNULL) as pool:
        yield pool  # closed here too when a test fails before its own close()


def _alive(pid: int, grace: float = 10.0) -> bool:
    """Whether ``pid`` still exists after up to ``grace`` seconds of waiting for it to go."""
    deadline = time.monotonic() + grace
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)


def test_ten_borrows_spawn_one_worker(pool: WorkerPool) -> None:
    pids = set()
    for i in range(10):
        with pool.connect(Service, WORKER) as svc:
            assert svc.add(a=float(i), b=1.0) == i + 1.0
            pids.add(svc.pid())
    assert len(pids) == 1
    assert pool.metrics == PoolMetrics(
        borrows=10, spawns=1, reuses=9, returns=10, discards=0, evictions=0, idle=1, active=0
    )
    pool.close()
    assert not _alive(pids.pop())


def test_concurrent_borrows_get_distinct_workers_and_the_cap_evicts(pool: WorkerPool) -> None:
    with (
        pool.connect(Service, WORKER) as a,
        pool.connect(Service, WORKER) as b,
        pool.connect(Service, WORKER) as c,
    ):
        pids = {a.pid(), b.pid(), c.pid()}
        assert pool.active_count == 3
    assert len(pids) == 3
    assert pool.idle_count == 2  # max_idle
    assert pool.metrics.evictions == 1
    pool.close()


def test_an_abandoned_stream_discards_the_worker(pool: WorkerPool) -> None:
    with pool.connect(Service, WORKER) as svc:
        first = svc.pid()
        session = iter(svc.countdown(n=100))
        next(session)  # left open on purpose
    assert pool.metrics.discards == 1
    assert pool.idle_count == 0
    assert not _alive(first)
    with pool.connect(Service, WORKER) as svc:
        assert svc.pid() != first
    pool.close()


def test_a_crashed_worker_is_not_reused(pool: WorkerPool) -> None:
    with pool.connect(Service, WORKER) as svc:
        first = svc.pid()
    os.kill(first, signal.SIGKILL)
    _wait_for_zombie(first)
    with pool.connect(Service, WORKER) as svc:
        assert svc.pid() != first
    assert pool.metrics.spawns == 2
    assert pool.metrics.discards == 1
    pool.close()


def test_idle_workers_are_evicted_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in worker_env().items():
        monkeypatch.setenv(key, value)
    with WorkerPool(max_idle=4, idle_timeout=0.5, stderr=StderrMode.DEVNULL) as pool:
        with pool.connect(Service, WORKER) as svc:
            pid = svc.pid()
        assert pool.idle_count == 1
        deadline = time.monotonic() + 5
        while pool.idle_count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pool.idle_count == 0
        assert pool.metrics.evictions == 1
        assert not _alive(pid)
