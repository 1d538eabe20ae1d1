"""Subprocess workers: clean shutdown, crashes, leaks, stray prints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable

import pytest

from tests._services import Service
from tests.conftest import ROOT, WORKER, worker_env
from vgi_rpc import PeerExitedError, StderrMode, TransportError, connect, serve_pipe


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it must have been reaped
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_leaving_the_block_ends_and_reaps_the_worker(open_fds: Callable[[], set[str]]) -> None:
    before, threads = open_fds(), threading.active_count()
    with connect(Service, WORKER, env=worker_env(), stderr=StderrMode.PIPE) as svc:
        pid = svc.pid()
        assert _alive(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped: no zombie left behind
    assert open_fds() <= before
    assert threading.active_count() <= threads


def test_serve_pipe_leaves_no_thread_or_descriptor(open_fds: Callable[[], set[str]]) -> None:
    from tests._services import ServiceImpl

    before = open_fds()
    threads = threading.active_count()
    with serve_pipe(Service, ServiceImpl()) as svc:
        svc.noop()
    assert open_fds() <= before
    assert threading.active_count() <= threads


def test_a_crashed_worker_reports_its_exit_status_and_stderr() -> None:
    with connect(Service, WORKER, env=worker_env(), stderr=StderrMode.PIPE) as svc:
        started = time.monotonic()
        with pytest.raises(PeerExitedError) as info:
            svc.crash(code=3)
        assert time.monotonic() - started < 10
        assert info.value.returncode == 3
        assert "worker crashing with code 3" in info.value.stderr_tail
        assert "exit status 3" in str(info.value)


def test_a_worker_killed_mid_stream_gives_a_clear_error() -> None:
    with connect(Service, WORKER, env=worker_env(), stderr=StderrMode.PIPE) as svc:
        stream = iter(svc.die_mid_stream(after=2))
        assert [next(stream).batch.num_rows, next(stream).batch.num_rows] == [1, 1]
        with pytest.raises(PeerExitedError) as info:
            next(stream)
        assert info.value.returncode == 7


def test_a_worker_killed_by_a_signal_is_reported() -> None:
    with connect(Service, WORKER, env=worker_env(), stderr=StderrMode.PIPE) as svc:
        os.kill(svc.pid(), signal.SIGKILL)
        with pytest.raises(PeerExitedError) as info:
            svc.add(a=1.0, b=2.0)
        assert info.value.returncode == -signal.SIGKILL


def test_a_command_that_cannot_start_is_a_transport_error() -> None:
    with pytest.raises(TransportError, match="cannot start worker"):
        connect(Service, ["/nonexistent/worker-binary"])


def test_a_worker_that_exits_at_once_is_reported_not_awaited() -> None:
    cmd = [sys.executable, "-c", "import sys; sys.stderr.write('no service here\\n'); sys.exit(4)"]
    with (
        connect(Service, cmd, stderr=StderrMode.PIPE) as svc,
        pytest.raises(PeerExitedError) as info,
    ):
        svc.noop()
    assert info.value.returncode == 4
    assert "no service here" in info.value.stderr_tail


def test_stray_prints_in_the_worker_go_to_stderr_not_the_protocol() -> None:
    with connect(Service, WORKER, env=worker_env(), stderr=StderrMode.PIPE) as svc:
        assert svc.shout(text="hi") == "HI"
        assert svc.greet(name="next") == "hello next!"


def test_the_worker_exits_when_its_client_process_dies() -> None:
    client = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {ROOT!r})
        from tests._services import Service
        from tests.conftest import WORKER, worker_env
        from vgi_rpc import connect
        svc = connect(Service, WORKER, env=worker_env()).__enter__()
        print(svc.pid(), flush=True)
        os._exit(0)  # no cleanup: the worker must notice on its own
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", client], capture_output=True, text=True, timeout=60, check=True
    )
    worker_pid = int(proc.stdout.strip())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"worker {worker_pid} outlived its client")


def _children() -> set[int]:
    pids: set[int] = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
            pids.update(int(p) for p in f.read().split())
    return pids


def test_stream_scenarios_leave_no_threads_processes_or_descriptors(
    open_fds: Callable[[], set[str]],
) -> None:
    import pyarrow as pa

    from vgi_rpc import AnnotatedBatch, RpcError

    fds, threads, children = open_fds(), threading.active_count(), _children()
    with connect(Service, WORKER, env=worker_env(), stderr=StderrMode.PIPE) as svc:
        for _ in svc.countdown(n=1000):  # early exit
            break
        with pytest.raises(RpcError), svc.running_sum() as session:  # wrong input schema
            session.exchange(
                AnnotatedBatch.from_pydict({"x": [1]}, schema=pa.schema([("x", pa.int64())]))
            )
        assert sum(1 for _ in svc.countdown(n=10_000)) == 10_000  # long producer
        assert sum(1 for _ in svc.chatty(batches=10, logs_per_batch=1000)) == 10  # log storm
    dying = connect(Service, WORKER, env=worker_env(), stderr=StderrMode.PIPE)
    with dying as svc, pytest.raises(PeerExitedError):
        list(svc.die_mid_stream(after=1))  # worker dies mid-stream
    assert open_fds() <= fds
    assert threading.active_count() <= threads
    assert _children() == children
