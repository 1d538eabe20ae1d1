"""One host: gets are views of the server's shared memory; delete and shutdown give it back."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest

from tests.conftest import worker_env
from tests.services.objectstore.conftest import server_process
from vgi_rpc.services import objectstore
from vgi_rpc.services.objectstore import ObjectStoreClient, RunningStore


def _mappings(directory: str, *, read_only: bool = False) -> list[tuple[int, int, str]]:
    """This process's mappings of files in ``directory``: (start, end, path).

    ``read_only``: only views (``get``), not the writable mappings a client keeps
    of the files it wrote.
    """
    found = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if read_only and len(parts) >= 2 and parts[1].startswith("rw"):
                continue
            if len(parts) >= 6 and parts[5].startswith(directory + "/"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                found.append((start, end, parts[5]))
    return found


def _inside(address: int, size: int, mappings: list[tuple[int, int, str]]) -> bool:
    return any(start <= address and address + size <= end for start, end, _ in mappings)


def test_get_returns_views_of_the_shared_segment(running: RunningStore) -> None:
    assert running.socket is not None
    with objectstore.connect(running.socket) as client:
        assert client.local
        shm_dir = client.server.shm_dir
        array = np.arange(1 << 20, dtype=np.float64)
        table = pa.table({"a": np.arange(1 << 18), "b": np.arange(1 << 18, dtype=np.float32)})
        array_id, table_id = client.put(array), client.put(table)

        got = client.get(array_id)
        assert isinstance(got, np.ndarray)
        assert not got.flags.writeable
        path = client.get_meta(array_id).path
        mappings = [m for m in _mappings(shm_dir) if m[2] == path]
        assert mappings, "the array's segment is not mapped in the client"
        assert _inside(got.ctypes.data, got.nbytes, mappings)

        got_table = client.get(table_id)
        assert isinstance(got_table, pa.Table)
        table_path = client.get_meta(table_id).path
        table_maps = [m for m in _mappings(shm_dir) if m[2] == table_path]
        buffers = [chunk.buffers()[1] for column in got_table.columns for chunk in column.chunks]
        for data in buffers:
            assert data is not None
            assert _inside(data.address, data.size, table_maps)

        client.delete([array_id, table_id])
        # the objects' paths are gone at once. What is left: the spare for this client's
        # next put, and the two files parked (warm, but busy: the views above map them,
        # so no put may have them; test_warm.py), all counted in the server's info
        left = os.listdir(shm_dir)
        info = client.proxy.info()
        assert info.memory_used == 0
        assert len([n for n in left if n.startswith("spare-")]) <= 1
        parked = [n for n in left if n.startswith("warm-")]
        assert len(parked) + len([n for n in left if n.startswith("spare-")]) == len(left)
        assert sum(os.stat(os.path.join(shm_dir, n)).st_size for n in parked) == info.memory_warm
        # a view the caller still holds stays valid after delete, until it is dropped
        assert got[12345] == 12345.0
        del got, got_table, buffers, data
        gc.collect()
        assert _mappings(shm_dir, read_only=True) == []


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _cycle(client: ObjectStoreClient, remote: ObjectStoreClient, size: int) -> None:
    oid = client.put(np.ones(size // 8))
    local, streamed = client.get(oid), remote.get(oid)
    assert isinstance(local, np.ndarray)
    assert isinstance(streamed, np.ndarray)
    assert local[0] == streamed[-1] == 1.0
    del local, streamed  # streamed: the server maps the segment to send it
    client.delete(oid)


def _dev_shm_bytes(directory: str) -> int:
    """Bytes of tmpfs pages held by the files in ``directory``."""
    return sum(os.stat(os.path.join(directory, n)).st_blocks * 512 for n in os.listdir(directory))


@pytest.mark.parametrize("warm", ["0", "200MiB"])
def test_memory_and_dev_shm_return_to_baseline_after_delete_and_shutdown(
    short_dir: str, warm: str
) -> None:
    """``--warm 0``: baseline at once; with warm memory, baseline once it has been idle."""
    socket = os.path.join(short_dir, "s.sock")
    extra = ("--tcp", "127.0.0.1:0", "--warm", warm, "--warm-idle", "1")
    with server_process(socket, os.path.join(short_dir, "store"), *extra) as server:
        host, port = server.lines["TCP"].rsplit(":", 1)
        with (
            objectstore.connect(socket) as client,
            objectstore.connect(host=host, port=int(port)) as remote,
        ):
            shm_dir = client.server.shm_dir
            _cycle(client, remote, 1 << 20)  # warm up code paths and allocator
            gc.collect()
            baseline = _rss_kib(server.proc.pid)
            for _ in range(3):
                _cycle(client, remote, 64 << 20)
            gc.collect()
            info = client.proxy.info()
            assert info.memory_used == 0
            kept = ("warm-", "spare-")
            assert [n for n in os.listdir(shm_dir) if not n.startswith(kept)] == []
            if warm == "0":
                assert os.listdir(shm_dir) == []
                assert info.memory_warm == info.memory_spare == 0
            else:  # 64 MiB files kept warm or as the client's next put, counted as such
                held = info.memory_warm + info.memory_spare
                assert 64 << 20 <= _dev_shm_bytes(shm_dir) <= held + (1 << 20)
                assert info.memory_warm <= 200 << 20
                deadline = time.monotonic() + 15
                while (os.listdir(shm_dir) or _mappings(shm_dir)) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert os.listdir(shm_dir) == []
                info = client.proxy.info()
                assert info.memory_warm == info.memory_spare == 0
            grown = _rss_kib(server.proc.pid) - baseline
            assert grown < 16 << 10, f"server RSS grew by {grown} KiB after delete"
            assert _mappings(shm_dir) == []
            client.delete(client.put(np.ones(1 << 20)))  # warm again, until shutdown
        server.stop()
    assert not os.path.exists(shm_dir)


def test_memory_is_given_back_when_the_client_that_put_it_has_exited(running: RunningStore) -> None:
    assert running.socket is not None
    code = (
        "import numpy as np, sys\n"
        "from vgi_rpc.services import objectstore\n"
        "with objectstore.connect(sys.argv[1]) as c:\n"
        "    print(c.put(np.ones(1 << 20), name='left-behind'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, running.socket],
        capture_output=True,
        text=True,
        env=worker_env(),
        check=True,
    )
    with objectstore.connect(running.socket) as client:
        oid = client.get_name("left-behind")
        assert str(oid) == out.stdout.strip()
        assert client.proxy.info().memory_used > 8 << 20
        client.delete(oid)
        assert client.proxy.info().memory_used == 0
        # nothing left but files kept warm for later puts (test_warm.py): the object's,
        # and the spare the exited client held for its next put
        shm_dir = client.server.shm_dir
        left = os.listdir(shm_dir)
        assert all(n.startswith("warm-") for n in left)
        sizes = sum(os.stat(os.path.join(shm_dir, n)).st_size for n in left)
        assert sizes == client.proxy.info().memory_warm


def test_blobs_are_written_in_place_and_read_zero_copy(running: RunningStore) -> None:
    assert running.socket is not None
    with objectstore.connect(running.socket) as client:
        with client.create_blob(1 << 20) as writer:
            held = writer.buffer
            held[:5] = b"hello"
            writer.write(b"world", offset=(1 << 20) - 5)
        with pytest.raises(ValueError, match="released"):
            held[0] = 0  # sealing released the writable view
        assert writer.id is not None
        blob = client.get_blob(writer.id)
        assert len(blob) == 1 << 20
        assert bytes(blob.buffer.slice(0, 5)) == b"hello"
        assert bytes(blob.buffer.slice((1 << 20) - 5)) == b"world"
        path = client.get_meta(writer.id).path
        assert _inside(
            blob.buffer.address,
            blob.buffer.size,
            [m for m in _mappings(client.server.shm_dir) if m[2] == path],
        )
        with pytest.raises(objectstore.BlobSealed):
            writer.write(b"late")
        assert client.get_meta(writer.id).typename == "blob"
