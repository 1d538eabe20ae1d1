"""Persist: durable before it returns, survives kill -9, shared by instances, on S3 too."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from tests._log_records import Keep
from tests.services.objectstore.conftest import server_process
from vgi_rpc import RpcError
from vgi_rpc.services import objectstore


def test_kill_9_right_after_persist_loses_nothing(short_dir: str) -> None:
    socket, store = os.path.join(short_dir, "s.sock"), os.path.join(short_dir, "store")
    table = pa.table({"x": np.arange(100_000), "y": np.arange(100_000) * 0.5})
    with server_process(socket, store) as first:
        with objectstore.connect(socket) as client:
            dead_dir = client.server.shm_dir
            table_id = client.put(table, name="table", persist=True)
            blob = client.create_blob(1000)
            blob.write(b"\x07" * 1000)
            blob_id = blob.seal(persist=True)
            value_id = client.put({"k": (1, 2.5)})
            client.put_name(value_id, "value")
            client.persist(value_id)  # names bound before persist are persisted with it
            unpersisted = client.put("memory only", name="volatile")
        first.kill()
    assert os.path.isdir(dead_dir)  # kill -9: nothing cleaned up
    with server_process(socket, store) as second, objectstore.connect(socket) as client:
        assert not os.path.exists(dead_dir)  # the restarted server swept the dead one's memory
        meta = client.get_meta(table_id)
        assert (meta.isglobal, meta.islocal) == (True, False)
        assert table.equals(client.get("table"))  # type: ignore[arg-type]  # get() is untyped
        assert client.get_meta(table_id).islocal
        assert client.get("value") == {"k": (1, 2.5)}
        assert bytes(client.get_blob(blob_id)) == b"\x07" * 1000
        assert client.list_names() == {"table": table_id, "value": value_id}
        with pytest.raises(objectstore.ObjectNotFound):
            client.get(unpersisted)
        with pytest.raises(objectstore.NameNotFound):
            client.get_name("volatile")
        leftovers = [f for _, _, files in os.walk(store) for f in files if ".tmp-" in f]
        assert leftovers == []
        second.stop()


def test_two_servers_share_one_store_without_a_coordinator(short_dir: str) -> None:
    store = os.path.join(short_dir, "store")
    with (
        objectstore.start(socket=os.path.join(short_dir, "a.sock"), store=store) as a,
        objectstore.start(socket=os.path.join(short_dir, "b.sock"), store=store) as b,
        objectstore.connect(a.socket) as on_a,
        objectstore.connect(b.socket) as on_b,
    ):
        array = np.linspace(0, 1, 1000)
        oid = on_a.put(array, name="shared", persist=True)
        meta = on_b.get_meta(oid)
        assert (meta.isglobal, meta.islocal) == (True, False)
        assert meta.instance_id == a.server.instance_id != b.server.instance_id
        assert np.array_equal(np.asarray(on_b.get("shared")), array)
        assert on_b.get_meta(oid).islocal
        assert on_b.list_names("sha*") == {"shared": oid}
        assert [m.id for m in on_b.list_objects().objects] == [oid]
        local_only = on_a.put(1)
        with pytest.raises(objectstore.ObjectNotFound):
            on_b.get(local_only)
        # a name put on one instance wakes a waiter on the other (through the store)
        later = on_a.put("later", persist=True)
        on_a.put_name(later, "later")
        assert on_b.get_name("later", wait=True, timeout=5) == later
        # deleting on one instance removes the object and its names everywhere
        on_b.delete(oid)
        with pytest.raises(objectstore.ObjectNotFound):
            on_a.get_meta(oid)
        with pytest.raises(objectstore.NameNotFound):
            on_a.get_name("shared")


@pytest.fixture
def s3() -> Iterator[tuple[pafs.FileSystem, str]]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        fs = pafs.S3FileSystem(
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            endpoint_override=f"{host}:{port}",
            scheme="http",
            allow_bucket_creation=True,
        )
        fs.create_dir("objects-bucket")
        yield fs, "objects-bucket/prefix"
    finally:
        server.stop()


def test_persist_to_s3_and_read_back_from_another_instance(
    s3: tuple[pafs.FileSystem, str], short_dir: str
) -> None:
    table = pa.table({"a": list(range(1000))})
    with (
        objectstore.start(socket=os.path.join(short_dir, "a.sock"), store=s3) as a,
        objectstore.connect(a.socket) as client,
    ):
        oid = client.put(table, name="on-s3", persist=True)
        fs, root = s3
        keys = {info.path for info in fs.get_file_info(pafs.FileSelector(root, recursive=True))}
        assert f"{root}/objects/{oid.hex()}.data" in keys
        assert f"{root}/objects/{oid.hex()}.json" in keys
    with (
        objectstore.start(socket=os.path.join(short_dir, "b.sock"), store=s3) as b,
        objectstore.connect(b.socket) as client,
    ):
        assert client.get_meta(oid).isglobal
        assert table.equals(client.get("on-s3"))  # type: ignore[arg-type]  # get() is untyped
        client.delete(oid)
        with pytest.raises(objectstore.NameNotFound):
            client.get_name("on-s3")
        keys = {info.path for info in fs.get_file_info(pafs.FileSelector(root, recursive=True))}
        assert not any(oid.hex() in k for k in keys)


def test_persisted_objects_spill_under_pressure_and_come_back(short_dir: str) -> None:
    with (
        objectstore.start(
            socket=os.path.join(short_dir, "p.sock"),
            store=os.path.join(short_dir, "store"),
            memory=8 << 20,
        ) as running,
        objectstore.connect(running.socket) as client,
    ):
        first = np.full(3 << 17, 1.0)  # 3 MiB each
        kept = client.put(first, persist=True)
        volatile = client.put(np.full(3 << 17, 2.0))
        # a third 3 MiB object does not fit: the persisted one leaves memory, the other cannot
        third = client.put(np.full(3 << 17, 3.0))
        meta = client.get_meta(kept)
        assert (meta.isglobal, meta.islocal) == (True, False)
        assert client.get_meta(volatile).islocal
        with pytest.raises(objectstore.OutOfMemory):
            client.put(np.zeros(3 << 17))  # nothing persisted is left to spill
        client.delete(third)
        back = client.get(kept)  # read back from the store, transparently
        assert isinstance(back, np.ndarray)
        assert np.array_equal(back, first)
        assert client.get_meta(kept).islocal


def test_a_damaged_file_in_a_shared_store_is_skipped_not_fatal(short_dir: str) -> None:
    """Another writer's damaged or foreign file must not break listing and delete for everyone."""
    handler = Keep(logging.WARNING)  # whatever logging other tests configured
    warnings = handler.records
    logger = logging.getLogger("vgi_rpc.services.objectstore")
    logger.addHandler(handler)
    level, disabled = logger.level, logger.disabled
    logger.setLevel(logging.WARNING)
    logger.disabled = False
    try:
        _damaged_files_are_skipped(short_dir)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled
    assert any("skipping the damaged store file" in r.getMessage() for r in warnings)


def _damaged_files_are_skipped(short_dir: str) -> None:
    store = os.path.join(short_dir, "store")
    with (
        objectstore.start(socket=os.path.join(short_dir, "s.sock"), store=store) as running,
        objectstore.connect(running.socket) as client,
    ):
        named = client.put([1, 2], name="mine", persist=True)
        other = client.put(3, persist=True)
        with open(os.path.join(store, "names", "0" * 64 + ".json"), "w") as f:
            f.write("[]")
        with open(os.path.join(store, "objects", "0" * 15 + "1.json"), "w") as f:
            f.write("{")
        with open(os.path.join(store, "names", "1" * 64 + ".json"), "w") as f:
            f.write(" " * (2 << 20))  # larger than any record: not read whole
        assert client.list_names() == {"mine": named}
        assert {m.id for m in client.list_objects().objects} == {named, other}
        client.delete(other)
        assert client.get_meta(named).names == ["mine"]
        assert client.get("mine") == [1, 2]


def test_a_delete_the_store_fails_still_gives_the_memory_back(
    short_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = os.path.join(short_dir, "store")
    with (
        objectstore.start(socket=os.path.join(short_dir, "s.sock"), store=store) as running,
        objectstore.connect(running.socket) as client,
    ):
        used = running.server.memory.used
        oid = client.put(np.arange(1 << 16), persist=True)
        assert running.server.memory.used > used
        assert running.server.store is not None

        def unreachable(oid: int) -> None:
            raise OSError("the store is unreachable")

        monkeypatch.setattr(running.server.store, "delete_object", unreachable)
        with pytest.raises(RpcError, match="the store is unreachable"):
            client.delete(oid)
        assert running.server.memory.used == used
