"""Warm memory: a deleted object's file is reused for a later put only when nobody maps it."""

from __future__ import annotations

import gc
import mmap
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest

from tests.conftest import worker_env
from vgi_rpc.services import objectstore
from vgi_rpc.services.objectstore import ObjectStoreClient, RunningStore
from vgi_rpc.services.objectstore._warm import WARM_PREFIX, leases_work, unused

pytestmark = pytest.mark.skipif(
    not leases_work("/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"),
    reason="file leases are Linux-only; elsewhere the store keeps nothing warm",
)
MiB = 1 << 20


@pytest.fixture
def warm_store(short_dir: str) -> Iterator[RunningStore]:
    with objectstore.start(
        socket=os.path.join(short_dir, "s.sock"),
        memory=100 * MiB,
        warm=40 * MiB,
        warm_idle=60,
    ) as running:
        yield running


def _client(running: RunningStore) -> ObjectStoreClient:
    assert running.socket is not None
    return objectstore.connect(running.socket)


def _inode(client: ObjectStoreClient, oid: objectstore.ObjectID) -> int:
    return os.stat(client.get_meta(oid).path).st_ino


def _object_files(directory: str) -> list[str]:
    """Files of objects: not warm, and not a client's spare for its next put."""
    return [n for n in os.listdir(directory) if not n.startswith((WARM_PREFIX, "spare-"))]


def test_unused_sees_a_mapping_kept_after_its_descriptor_is_closed(short_dir: str) -> None:
    path = os.path.join("/dev/shm", f"vgi-warm-test-{os.getpid()}")
    with open(path, "wb") as f:
        f.truncate(MiB)
    try:
        assert unused(path)
        code = (
            "import mmap, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
            "m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)\n"
            "os.close(fd)\n"
            "print('mapped', flush=True)\n"
            "sys.stdin.readline()\n"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", code, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline().strip() == "mapped"
        assert not unused(path)  # another process maps it, with no descriptor open
        child.stdin.write("\n")
        child.stdin.close()
        child.wait(timeout=10)
        child.stdout.close()
        assert unused(path)
        fd = os.open(path, os.O_RDONLY)
        mapping = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        os.close(fd)
        assert not unused(path)  # this process's own read-only mapping counts too
        mapping.close()
        assert unused(path)
    finally:
        os.unlink(path)


def test_a_deleted_objects_file_is_reused_when_nobody_maps_it(warm_store: RunningStore) -> None:
    assert warm_store.socket is not None
    with (
        objectstore.connect(warm_store.socket, warm=0) as writer,  # keeps no mapping
        _client(warm_store) as client,
    ):
        first = writer.put(np.full(MiB // 8, 1.0))
        inode = _inode(client, first)
        client.delete(first)
        info = client.proxy.info()
        assert info.memory_used == 0
        assert 0 < info.memory_warm <= 40 * MiB
        assert _object_files(client.server.shm_dir) == []
        second = client.put(np.full(MiB // 8, 2.0))  # a new connection: it has no spare yet
        assert _inode(client, second) == inode  # the same pages, written again
        got = client.get(second)
        assert isinstance(got, np.ndarray)
        assert got.shape == (MiB // 8,)
        assert np.all(got == 2.0)
        assert client.proxy.info().memory_warm == 0


def test_a_segment_still_mapped_by_another_process_is_never_reused(
    warm_store: RunningStore,
) -> None:
    assert warm_store.socket is not None
    with _client(warm_store) as client:
        old = client.put(np.full(MiB // 8, 7.0))
        inode = _inode(client, old)
        code = (
            "import sys\n"
            "from vgi_rpc.services import objectstore\n"
            "c = objectstore.connect(sys.argv[1])\n"
            "view = c.get(sys.argv[2])\n"
            "c.close()\n"
            "print('holding', flush=True)\n"
            "sys.stdin.readline()\n"
            "print(float(view.min()), float(view.max()), flush=True)\n"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", code, warm_store.socket, str(old)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=worker_env(),
        )
        assert child.stdout is not None
        assert child.stdin is not None
        try:
            assert child.stdout.readline().strip() == "holding"
            client.delete(old)  # mapped elsewhere: parked at most, never handed out
            with _client(warm_store) as fresh:  # no spare: it allocates, warm memory first
                new = fresh.put(np.full(MiB // 8, 9.0))
            assert _inode(client, new) != inode
            for _ in range(3):  # its writer keeps it mapped, but cannot claim it back
                again = client.put(np.full(MiB // 8, 8.0))
                assert _inode(client, again) != inode
                client.delete(again)
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.stdout.readline().split() == ["7.0", "7.0"]  # the view is intact
        finally:
            child.stdin.close()
            child.wait(timeout=20)
            child.stdout.close()


def test_a_view_held_in_this_process_keeps_its_bytes(warm_store: RunningStore) -> None:
    with _client(warm_store) as client:
        old = client.put(np.full(MiB // 8, 3.0))
        inode = _inode(client, old)
        view = client.get(old)
        client.delete(old)
        for _ in range(4):  # the writer would claim its file back: the view forbids it
            new = client.put(np.full(MiB // 8, 4.0))
            assert _inode(client, new) != inode
            client.delete(new)
        assert isinstance(view, np.ndarray)
        assert np.all(view == 3.0)
        del view
        gc.collect()


def test_blobs_never_get_warm_memory(warm_store: RunningStore) -> None:
    with _client(warm_store) as client:
        client.delete(client.put(np.full(MiB // 8, 5.0)))
        assert client.proxy.info().memory_warm > 0
        with client.create_blob(MiB) as writer:
            pass
        assert writer.id is not None
        assert bytes(client.get_blob(writer.id).buffer) == bytes(MiB)


def test_warm_memory_counts_in_the_limit(warm_store: RunningStore) -> None:
    with _client(warm_store) as client:
        kept = client.put(np.ones(30 * MiB // 8))
        client.delete(client.put(np.ones(30 * MiB // 8)))
        assert client.proxy.info().memory_warm > 29 * MiB
        with client.create_blob(65 * MiB) as writer:  # 30 + 65 + 30 warm > 100: warm goes
            info = client.proxy.info()
            assert info.memory_warm == 0
            assert info.memory_used > 95 * MiB
        client.delete([kept, writer.id or 0])


def test_warm_memory_is_given_back_when_idle_and_at_shutdown(short_dir: str) -> None:
    with (
        objectstore.start(
            socket=os.path.join(short_dir, "s.sock"), memory=100 * MiB, warm=40 * MiB, warm_idle=0.3
        ) as running,
        _client(running) as client,
    ):
        shm_dir = client.server.shm_dir
        client.delete(client.put(np.ones(MiB)))
        assert client.proxy.info().memory_warm > 0
        assert os.listdir(shm_dir)
        deadline = time.monotonic() + 10
        while os.listdir(shm_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.listdir(shm_dir) == []
        assert client.proxy.info().memory_warm == 0
        client.delete(client.put(np.ones(MiB)))
        assert client.proxy.info().memory_warm > 0
    assert not os.path.exists(shm_dir)


def test_remote_gets_reuse_the_buffers_of_dropped_values_only(running: RunningStore) -> None:
    assert running.tcp is not None
    with (
        _client(running) as local,
        objectstore.connect(host=running.tcp[0], port=running.tcp[1], warm=64 * MiB) as remote,
    ):
        first = local.put(np.full(8 * MiB // 8, 1.0))
        second = local.put(np.full(8 * MiB // 8, 2.0))
        held = remote.get(first)
        assert isinstance(held, np.ndarray)
        address = held.ctypes.data
        other = remote.get(second)  # ``held`` is alive: its buffer is not reused
        assert isinstance(other, np.ndarray)
        assert other.ctypes.data != address
        assert np.all(held == 1.0)
        assert np.all(other == 2.0)
        assert remote._receive.kept == 0
        del held
        gc.collect()
        assert remote._receive.kept >= 8 * MiB
        again = remote.get(second)
        assert isinstance(again, np.ndarray)
        assert again.ctypes.data == address  # the dropped value's buffer, written again
        assert np.all(again == 2.0)
        assert np.all(other == 2.0)
        del other, again
        gc.collect()
        assert remote._receive.kept <= 64 * MiB
        remote.close()
        assert remote._receive.kept == 0


def test_a_put_of_a_repeated_size_writes_the_spare_handed_out_by_the_last_one(
    warm_store: RunningStore,
) -> None:
    with _client(warm_store) as client:
        shm_dir = client.server.shm_dir
        first = client.put(np.full(MiB // 8, 1.0))
        size = client.get_meta(first).nbytes
        assert client.proxy.info().memory_spare == size
        (spare,) = [n for n in os.listdir(shm_dir) if n.startswith("spare-")]
        second = client.put(np.full(MiB // 8, 2.0))  # no allocate call: the spare's file
        assert client.get_meta(second).path == os.path.join(shm_dir, spare)
        got = client.get(second)
        assert isinstance(got, np.ndarray)
        assert np.all(got == 2.0)
        assert client.proxy.info().memory_spare == size  # and a new spare for the next one
        other = client.put(np.full(3 * MiB // 8, 3.0))  # another size: allocated, old spare dropped
        info = client.proxy.info()
        assert info.memory_spare == client.get_meta(other).nbytes
        assert info.memory_used == size * 2 + client.get_meta(other).nbytes
    with _client(warm_store) as observer:
        assert observer.proxy.info().memory_spare == 0  # given back when its client left


def test_spares_make_room_for_other_clients_puts(warm_store: RunningStore) -> None:
    with _client(warm_store) as holder, _client(warm_store) as other:
        holder.put(np.ones(30 * MiB // 8))
        assert holder.proxy.info().memory_spare > 29 * MiB
        big = other.put(np.ones(60 * MiB // 8))  # 30 used + 30 spare + 60 > 100: the spare goes
        assert holder.proxy.info().memory_spare < 30 * MiB
        other.delete(big)
        again = holder.put(np.full(30 * MiB // 8, 7.0))  # its spare is gone: it allocates
        got = holder.get(again)
        assert isinstance(got, np.ndarray)
        assert np.all(got == 7.0)


def test_a_writer_writes_its_deleted_objects_file_again_through_the_mapping_it_kept(
    warm_store: RunningStore,
) -> None:
    with _client(warm_store) as client:
        inodes = []
        for i in range(6):
            oid = client.put(np.full(MiB // 8, float(i)))
            inodes.append(_inode(client, oid))
            got = client.get(oid)
            assert isinstance(got, np.ndarray)
            assert np.all(got == float(i))
            del got
            client.delete(oid)
        # two files take turns: each is written again once its object is deleted
        assert len(set(inodes[2:])) == 2
        assert set(inodes[2:]) <= set(inodes[:2])


def _mapped_here(directory: str) -> list[str]:
    with open("/proc/self/maps") as maps:
        return [line for line in maps if f" {directory}/" in line]


def test_a_writer_keeps_no_mapping_of_a_file_too_large_to_be_kept_warm(
    warm_store: RunningStore,
) -> None:
    with _client(warm_store) as client:
        shm_dir = client.server.shm_dir
        oid = client.put(np.ones(50 * MiB // 8))  # over the 40 MiB of warm memory
        assert _mapped_here(shm_dir) == []
        client.delete(oid)
        small = client.put(np.ones(MiB // 8))
        assert len(_mapped_here(shm_dir)) == 1  # this one it keeps, to write it again
        client.delete(small)
    assert _mapped_here(shm_dir) == []  # and lets go when it closes
