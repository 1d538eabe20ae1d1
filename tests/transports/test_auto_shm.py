"""Automatic shared memory on every local transport, judged by the bytes that crossed the pipe.

With no option set, a large batch makes the connection set up a segment of its
own; from then on large batches travel through it and only pointer batches
cross the pipe or socket. Small batches never set one up. TCP never does;
``shm_size=0`` turns it off; a worker that cannot map the segment gets
everything inline. Segment names leave ``/dev/shm`` as soon as the worker has
mapped them, so nothing is left after a normal close or a kill -9 of either side.

Bytes are counted by the kernel: ``/proc/thread-self/io`` (``rchar`` +
``wchar``) is every byte the calling thread passed to read and write system
calls, and a blocking socket's channel uses those too, like a pipe's. Segment files are
matched by the pid in their name, so segments of other processes on the machine
do not disturb the checks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests._services import BULK, SHM_SOURCE, Bulk, BulkImpl
from tests.conftest import ROOT, WORKER, worker_env
from vgi_rpc import (
    PeerExitedError,
    RpcServer,
    StderrMode,
    WorkerPool,
    connect,
    serve_pipe,
    tcp_connect,
    tcp_server,
    unix_connect,
    unix_server,
)
from vgi_rpc.rpc import AUTO_SHM_TRIGGER, RpcConnection, connection_of

MiB = 1 << 20
BULK_WORKER = [*WORKER, "bulk"]
BIG = 2 * MiB  # above the 1 MiB trigger
SMALL = 1024

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/thread-self/io") or not os.path.isdir("/dev/shm"),
    reason="counts bytes with /proc/thread-self/io and finds segments in /dev/shm (Linux)",
)


def crossed() -> int:
    """Bytes this thread has read and written through read/write system calls so far."""
    with open("/proc/thread-self/io") as f:
        fields = dict(line.split(": ") for line in f.read().splitlines())
    return int(fields["rchar"]) + int(fields["wchar"])


def segments_of(pid: int) -> set[str]:
    """Automatic segments a process created that still have a name in /dev/shm."""
    return {n for n in os.listdir("/dev/shm") if n.startswith(f"vgi_rpc_{pid}_")}


def mapped_segments(pid: int) -> set[str]:
    """Automatic segments a process has mapped (named or already unlinked)."""
    with open(f"/proc/{pid}/maps") as f:
        return {line.split("/dev/shm/")[1].split()[0] for line in f if "/dev/shm/vgi_rpc_" in line}


@pytest.fixture(autouse=True)
def _no_segment_left() -> Iterator[None]:
    yield
    assert segments_of(os.getpid()) == set()


def segment_name(connection: RpcConnection) -> str | None:
    """The connection's automatic segment, if it has set one up."""
    auto = connection.auto_shm
    assert auto is not None  # a local transport with no option set offers one
    return auto.client.segment.name if auto.client is not None else None


def echo_crossing(proxy: Any, size: int) -> int:
    """Bytes that crossed for one ``echo_big`` of ``size`` bytes (checked)."""
    data = os.urandom(size)
    before = crossed()
    assert proxy.echo_big(data=data) == data
    return crossed() - before


# --- the local transports, each with no shared-memory option set -------------


def _pipe(**options: Any) -> AbstractContextManager[Any]:
    return serve_pipe(Bulk, BulkImpl(), **options)


def _subprocess(**options: Any) -> AbstractContextManager[Any]:
    return connect(Bulk, BULK_WORKER, env=worker_env(), stderr=StderrMode.PIPE, **options)


@contextlib.contextmanager
def _pool(**options: Any) -> Iterator[Any]:
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = worker_env()["PYTHONPATH"]
    try:
        with (
            WorkerPool(stderr=StderrMode.PIPE, **options) as pool,
            pool.connect(Bulk, BULK_WORKER) as proxy,
        ):
            yield proxy
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


@contextlib.contextmanager
def _socket(kind: str, **options: Any) -> Iterator[Any]:
    directory = tempfile.mkdtemp(prefix="vgi-auto-shm-")
    server = RpcServer(Bulk, BulkImpl())
    if kind == "unix":
        listening = unix_server(server, os.path.join(directory, "s.sock"), threaded=True)
    else:
        listening = tcp_server(server, threaded=True)
    thread = threading.Thread(target=listening.serve_forever, daemon=True)
    thread.start()
    try:
        if kind == "unix":
            cm = unix_connect(Bulk, listening.address, **options)
        else:
            host, port = listening.address.rsplit(":", 1)
            cm = tcp_connect(Bulk, host, int(port))
        with cm as proxy:
            yield proxy
    finally:
        listening.close()
        thread.join(timeout=10)
        os.rmdir(directory)


LOCAL: dict[str, Callable[..., AbstractContextManager[Any]]] = {
    "pipe": _pipe,
    "subprocess": _subprocess,
    "pool": _pool,
    "unix": lambda **options: _socket("unix", **options),
}


@pytest.mark.parametrize("transport", sorted(LOCAL))
def test_a_large_batch_goes_through_an_automatic_segment(transport: str) -> None:
    with LOCAL[transport]() as bulk:
        connection = connection_of(bulk)
        assert echo_crossing(bulk, SMALL) < 64 * 1024  # warms the call path up
        assert segment_name(connection) is None  # small batches set nothing up
        first = echo_crossing(bulk, BIG)
        # the request went inline and set the segment up; the result came back through it
        assert BIG <= first < 2 * BIG
        name = segment_name(connection)
        assert name is not None
        for _ in range(3):  # from now on both ways through the segment
            assert echo_crossing(bulk, BIG) < 64 * 1024
        # the name went from /dev/shm once the worker had mapped it; we still map it
        assert segments_of(os.getpid()) == set()
        assert name in mapped_segments(os.getpid())
        assert SMALL <= echo_crossing(bulk, SMALL) < 64 * 1024  # small ones stay inline
    assert name not in mapped_segments(os.getpid())  # released with the connection


@pytest.mark.parametrize("transport", sorted(LOCAL))
def test_small_batches_never_set_a_segment_up(transport: str) -> None:
    size = AUTO_SHM_TRIGGER // 2  # large enough to count, below the trigger
    with LOCAL[transport]() as bulk:
        for _ in range(4):
            assert echo_crossing(bulk, size) >= 2 * size
        auto = connection_of(bulk).auto_shm
        assert auto is not None
        assert auto.client is None
    assert not mapped_segments(os.getpid())


@pytest.mark.parametrize("transport", sorted(LOCAL))
def test_shm_size_zero_turns_it_off(transport: str) -> None:
    with LOCAL[transport](shm_size=0) as bulk:
        for _ in range(3):
            assert echo_crossing(bulk, BIG) >= 2 * BIG
        connection = connection_of(bulk)
        assert connection.auto_shm is None
        assert connection.shm is None


def test_tcp_never_offers_a_segment() -> None:
    with _socket("tcp") as bulk:
        for _ in range(3):
            assert echo_crossing(bulk, BIG) >= 2 * BIG
        assert connection_of(bulk).auto_shm is None


def _batch(nbytes: int, seed: int = 0) -> pa.RecordBatch:
    values = np.random.default_rng(seed).random(nbytes // 8)
    return pa.RecordBatch.from_arrays([pa.array(values)], schema=BULK)


def test_stream_inputs_and_outputs_use_the_segment_the_next_stream_sets_up() -> None:
    with _subprocess() as bulk:
        with bulk.echo_batches() as session:
            out = session.exchange(_batch(BIG))  # inline: no segment yet, one is wanted
            assert SHM_SOURCE not in (out.metadata_dict() or {})
        with bulk.echo_batches() as session:  # this request sets it up
            before = crossed()
            for seed in range(3):
                batch = _batch(BIG, seed)
                out = session.exchange(batch)
                assert out.batch.equals(batch)
                metadata = out.metadata_dict() or {}
                name = connection_of(bulk).auto_shm.client.segment.name  # type: ignore[union-attr]
                assert metadata[b"input_shm_source"] == name.encode()  # input by pointer
                assert metadata[SHM_SOURCE] == name.encode()  # output by pointer
            assert crossed() - before < 64 * 1024


def test_the_segment_grows_for_larger_batches_up_to_the_ceiling() -> None:
    with _subprocess(shm_max_size=48 * MiB) as bulk:
        connection = connection_of(bulk)
        echo_crossing(bulk, BIG)
        auto = connection.auto_shm
        assert auto is not None
        assert auto.client is not None
        first = auto.client.segment.size
        assert first < 16 * MiB  # sized for 2 MiB batches
        assert echo_crossing(bulk, 20 * MiB) >= 40 * MiB  # does not fit: both ways inline
        # the next request names a larger segment (itself inline), the result comes through it
        assert 20 * MiB <= echo_crossing(bulk, 20 * MiB) < 40 * MiB
        assert echo_crossing(bulk, 20 * MiB) < 64 * 1024  # and from then on both ways
        assert auto.client.segment.size == 48 * MiB  # grown, to the ceiling
        # beyond the ceiling: inline, correct, and no further growth
        for _ in range(2):
            assert echo_crossing(bulk, 50 * MiB) >= 100 * MiB
        assert auto.client.segment.size == 48 * MiB
        assert echo_crossing(bulk, BIG) < 64 * 1024  # the segment still works


REFUSING_WORKER = textwrap.dedent(
    """
    import sys
    from tests._services import Bulk, BulkImpl
    from vgi_rpc import run_server
    from vgi_rpc.shm import ShmSegment

    def cannot(*args, **kwargs):  # as on another host behind the pipe (ssh, a container)
        raise OSError(2, "No such file or directory")

    if sys.argv[1] == "cannot-map":
        ShmSegment.attach = cannot
    run_server(Bulk, BulkImpl())
    """
)


@pytest.mark.parametrize("why", ["cannot-map"])
def test_a_worker_that_cannot_map_the_segment_gets_everything_inline(why: str) -> None:
    cmd = [sys.executable, "-c", REFUSING_WORKER, why]
    with connect(Bulk, cmd, env=worker_env(), stderr=StderrMode.PIPE) as bulk:
        for _ in range(3):
            assert echo_crossing(bulk, BIG) >= 2 * BIG
        connection = connection_of(bulk)
        assert connection.auto_shm is not None
        assert connection.auto_shm.offer.refused  # asked once, then never again
        assert connection.shm is None
        assert bulk.pid() > 0  # the connection is fine


def test_a_pooled_worker_gets_a_segment_per_borrow_released_when_it_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", worker_env()["PYTHONPATH"])
    names = []
    with WorkerPool(stderr=StderrMode.PIPE) as pool:
        for _ in range(3):
            with pool.connect(Bulk, BULK_WORKER) as bulk:
                echo_crossing(bulk, BIG)
                assert echo_crossing(bulk, BIG) < 64 * 1024
                auto = connection_of(bulk).auto_shm
                assert auto is not None
                assert auto.client is not None
                names.append(auto.client.segment.name)
            assert names[-1] not in mapped_segments(os.getpid())
        assert len(set(names)) == 3
        assert pool.metrics.spawns == 1


# --- nothing left after a kill -9 of either side -----------------------------------

CLIENT = textwrap.dedent(
    """
    import os, sys, time
    from tests._services import Bulk
    from vgi_rpc import StderrMode, connect
    from vgi_rpc.rpc import AutoShm, connection_of

    if sys.argv[1] == "before-unlink":  # as if killed between naming the segment and unlinking it
        AutoShm.response_seen = lambda self: setattr(self, "unlink_pending", False)

    with connect(Bulk, [sys.executable, "-m", "tests._worker", "bulk"], stderr=StderrMode.PIPE) as bulk:
        data = os.urandom(2 << 20)
        for _ in range(3):
            assert bulk.echo_big(data=data) == data
        print(connection_of(bulk).auto_shm.client.segment.name, bulk.pid(), flush=True)
        time.sleep(600)  # holding the segment until killed
    """
)


@pytest.mark.parametrize("when", ["holding-it", "before-unlink"])
def test_nothing_is_left_after_the_client_is_killed(when: str) -> None:
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, when],
        stdout=subprocess.PIPE,
        text=True,
        env=worker_env(),
        cwd=ROOT,
    )
    try:
        assert client.stdout is not None
        name, worker_pid = client.stdout.readline().split()
        assert name in mapped_segments(client.pid)  # the client holds its segment
        assert name in mapped_segments(int(worker_pid))  # and the worker has it mapped
        # the client removes the name once the worker has mapped it; if it could not,
        # the worker removes it when the connection ends
        assert os.path.exists(os.path.join("/dev/shm", name)) == (when == "before-unlink")
        os.kill(client.pid, signal.SIGKILL)
        client.wait(timeout=10)
        _wait_gone(int(worker_pid))  # the worker sees end of file and exits
        assert segments_of(client.pid) == set()
        assert not os.path.exists(os.path.join("/dev/shm", name))
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        if client.stdout is not None:
            client.stdout.close()


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}/maps") or not mapped_segments(pid)


def test_nothing_is_left_after_the_worker_is_killed() -> None:
    with _subprocess() as bulk:
        echo_crossing(bulk, BIG)
        assert echo_crossing(bulk, BIG) < 64 * 1024
        connection: RpcConnection = connection_of(bulk)
        assert connection.auto_shm is not None
        assert connection.auto_shm.client is not None
        name = connection.auto_shm.client.segment.name
        os.kill(bulk.pid(), signal.SIGKILL)
        with pytest.raises(PeerExitedError):
            bulk.echo_big(data=os.urandom(BIG))
    assert not os.path.exists(os.path.join("/dev/shm", name))
    assert name not in mapped_segments(os.getpid())
