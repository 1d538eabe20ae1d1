"""Bad input gets a clear typed error, and the server keeps serving."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import pytest

from tests.conftest import worker_env
from tests.services.objectstore.conftest import open_client
from vgi_rpc import RpcError
from vgi_rpc.services import objectstore
from vgi_rpc.services.objectstore import ObjectID, ObjectStore, ObjectStoreClient, RunningStore
from vgi_rpc.services.objectstore import server as server_module
from vgi_rpc.services.objectstore._errors import typed


def _typed_call(call: Callable[[], object]) -> object:
    """Call the raw proxy, raising our typed errors as the convenience client does."""
    try:
        return call()
    except RpcError as exc:
        raise typed(exc) from None


def _still_serving(client: ObjectStoreClient) -> None:
    assert client.get(client.put([1, "ok"])) == [1, "ok"]


def test_unknown_id_and_delete_twice(client: ObjectStoreClient) -> None:
    with pytest.raises(objectstore.ObjectNotFound) as caught:
        client.get(ObjectID(0x1234))
    assert "o0000000000001234" in str(caught.value)
    assert caught.value.error_type == "ObjectNotFound"
    oid = client.put("x")
    client.delete(oid)
    with pytest.raises(objectstore.ObjectNotFound):
        client.delete(oid)
    with pytest.raises(objectstore.ObjectNotFound):
        client.get_meta(oid)
    _still_serving(client)


def test_over_the_memory_limit_names_the_limit_and_the_size(client: ObjectStoreClient) -> None:
    huge = np.zeros(300 << 17)  # 300 MiB, over the 256 MiB limit; never copied
    with pytest.raises(objectstore.OutOfMemory) as caught:
        client.put(huge)
    message = str(caught.value)
    assert "268435456 bytes (256.0 MiB)" in message
    asked = re.search(r"cannot allocate (\d+) bytes", message)
    assert asked is not None
    assert huge.nbytes < int(asked.group(1)) < huge.nbytes + 4096
    assert isinstance(caught.value, MemoryError)
    with pytest.raises(objectstore.OutOfMemory):
        client.create_blob(1 << 40)
    assert client.proxy.info().memory_used == 0
    _still_serving(client)


def test_a_sealed_blob_cannot_be_written(client: ObjectStoreClient) -> None:
    writer = client.create_blob(16)
    writer.write(b"a" * 16)
    oid = writer.seal()
    with pytest.raises(objectstore.BlobSealed):
        writer.write(b"b")
    with pytest.raises(objectstore.BlobSealed):
        writer.seal()
    # the server refuses too, whoever asks
    put_id = writer._allocation.put_id
    with pytest.raises(objectstore.BlobSealed):
        _typed_call(lambda: client.proxy.write(put_id, 0, b"b"))
    assert bytes(client.get_blob(oid)) == b"a" * 16
    _still_serving(client)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (
            lambda p: p.put_inline(b"not arrow ipc", None, False, ""),
            objectstore.InvalidRequest,
        ),
        (lambda p: p.put_inline(b"", None, False, "[1]"), objectstore.InvalidRequest),
        (lambda p: p.allocate(-1, "blob"), objectstore.InvalidRequest),
        (lambda p: p.get_meta(-5), objectstore.InvalidRequest),
        (lambda p: p.get_meta(0), objectstore.InvalidRequest),
        (lambda p: p.open("bad\x00name"), objectstore.InvalidRequest),
        (lambda p: p.get_name("del\x7fname", False, None), objectstore.InvalidRequest),
        (lambda p: p.put_name(1, "unit\x1fsep", False), objectstore.InvalidRequest),
        (lambda p: p.open(""), objectstore.InvalidRequest),
        (lambda p: p.put_name(1, "x" * 600, False), objectstore.InvalidRequest),
        (lambda p: p.list_objects(None, 10, "garbage"), objectstore.InvalidRequest),
        (lambda p: p.list_objects(None, 0, None), objectstore.InvalidRequest),
        (lambda p: p.list_objects("*x" * 300, 10, None), objectstore.InvalidRequest),
        (lambda p: p.list_names("*x" * 300, 10), objectstore.InvalidRequest),
        (lambda p: p.get_name("n", True, -1.0), objectstore.InvalidRequest),
        (lambda p: p.write(12345, 0, b"x"), objectstore.PutAborted),
        (lambda p: p.seal(12345, None, False, ""), objectstore.PutAborted),
        (lambda p: p.write(p.allocate(4, "blob").put_id, 2, b"xyz"), objectstore.InvalidRequest),
    ],
)
def test_malformed_requests(
    running: RunningStore, call: Callable[[ObjectStore], object], error: type[RpcError]
) -> None:
    with open_client(running, "unix") as client:
        with pytest.raises(error) as caught:
            _typed_call(lambda: call(client.proxy))
        assert caught.value.error_type == error.__name__
        _still_serving(client)


def test_malformed_bytes_on_the_socket_end_only_that_connection(running: RunningStore) -> None:
    assert running.socket is not None
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(running.socket)
    raw.sendall(b"\xff\xff\xff\xff\x10\x00\x00\x00garbage that is not arrow ipc")
    raw.shutdown(socket.SHUT_WR)
    raw.recv(1 << 16)  # an error stream or EOF, never a hang
    raw.close()
    with open_client(running, "unix") as client:
        _still_serving(client)


def test_a_client_killed_mid_put_leaves_nothing(running: RunningStore) -> None:
    assert running.socket is not None
    code = (
        "import os, signal, sys\n"
        "from vgi_rpc.services import objectstore\n"
        "c = objectstore.connect(sys.argv[1])\n"
        "a = c.proxy.allocate(64 << 20, 'value')\n"
        "with open(a.path, 'r+b') as f:\n"
        "    f.write(b'x' * (32 << 20))\n"
        "print(a.path, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, running.socket],
        capture_output=True,
        text=True,
        env=worker_env(),
        check=False,
    )
    assert proc.returncode == -9
    half_written = proc.stdout.strip()
    with open_client(running, "unix") as client:
        deadline = time.monotonic() + 10  # the server notices the closed connection
        while client.proxy.info().memory_used and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.proxy.info().memory_used == 0
        assert not os.path.exists(half_written)
        assert client.list_objects().objects == []
        _still_serving(client)


def test_an_abandoned_http_put_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        objectstore.start(http=("127.0.0.1", 0)) as running,
        open_client(running, "http") as client,
    ):
        client.proxy.allocate(1 << 20, "blob")
        assert client.proxy.info().memory_used == 1 << 20
        monkeypatch.setattr(server_module, "LEASE_SECONDS", 0.0)
        client.proxy.allocate(0, "blob")  # any allocation sweeps expired leases
        assert client.proxy.info().memory_used == 0


def test_ids_drawn_after_a_fork_differ_from_the_parents() -> None:
    """Ids come from a generator seeded by the OS; a forked child reseeds it (no shared sequence)."""
    from vgi_rpc.services.objectstore._ids import ObjectID, random_name

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it draws, then leave at once
        os.close(read_end)
        os.write(write_end, f"{int(ObjectID.generate())} {random_name()}".encode())
        os._exit(0)
    os.close(write_end)
    parent = f"{int(ObjectID.generate())} {random_name()}"
    with os.fdopen(read_end) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    child_id, child_name = child.split()
    parent_id, parent_name = parent.split()
    assert child_id != parent_id
    assert child_name != parent_name
    assert len(child_name) == 16
    assert 0 < int(child_id) < 2**63
