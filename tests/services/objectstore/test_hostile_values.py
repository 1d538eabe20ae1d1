"""Crafted value streams: refused on every put path, never handed to a reader.

Local gets map an object and read it without checking it again, so the
server's check must refuse every stream a reader could be led outside its
buffers by (a string offset past the data segfaulted a getter before it was
validated in full), and every stream that does not rebuild a value of its
kind. Bytes that cross a connection are checked by the client as well.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests.services.objectstore.conftest import open_client
from vgi_rpc import IPCError, RpcError
from vgi_rpc.services import objectstore
from vgi_rpc.services.objectstore import ObjectID, ObjectStoreClient, RunningStore
from vgi_rpc.services.objectstore._codec import encode
from vgi_rpc.services.objectstore._errors import typed
from vgi_rpc.services.objectstore.protocol import VALUE

EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _patched(value: object, old: bytes, new: bytes) -> bytes:
    data = encode(value).to_bytes()
    assert data.count(old) == 1, "the pattern to patch must be unique"
    assert len(old) == len(new)
    return data.replace(old, new)


def string_offsets_past_data() -> bytes:
    return _patched(
        pa.array(["aaaa", "bbbb", "cccc"]),
        struct.pack("<4i", 0, 4, 8, 12),
        struct.pack("<4i", 0, 1 << 20, 8, 12),
    )


def string_offsets_decreasing() -> bytes:
    return _patched(
        pa.array(["aaaa", "bbbb", "cccc"]),
        struct.pack("<4i", 0, 4, 8, 12),
        struct.pack("<4i", 0, 9, 2, 12),
    )


def dictionary_index_out_of_range() -> bytes:
    return _patched(
        pa.array(["yyy", "xx", "yyy"]).dictionary_encode(),
        struct.pack("<3i", 0, 1, 0),
        struct.pack("<3i", 0, 7000, 0),
    )


def list_offsets_past_child() -> bytes:
    return _patched(
        pa.array([[1, 2], [3]]), struct.pack("<3i", 0, 2, 3), struct.pack("<3i", 0, 2, 300)
    )


def ndarray_larger_than_its_data() -> bytes:
    return _patched(np.arange(4, dtype=np.int64), b'"shape": [4]', b'"shape": [9]')


def ndarray_dtype_numpy_cannot_parse() -> bytes:
    return _patched(np.arange(4, dtype=np.int64), b'"dtype": "<i8"', b'"dtype": "(2,"')


def python_text_dictionary_encoded() -> bytes:
    """One long string shared by many rows: ``to_pylist`` would copy it once per row."""
    honest = encode(["x"])
    tags = honest.batches[0].column(0).to_pylist()  # [LIST, STR]
    rows = 1000
    columns: list[Any] = [
        pa.array([tags[0]] + [tags[1]] * rows, pa.int8()),
        pa.array([rows] + [None] * rows, pa.int64()),
        pa.nulls(rows + 1, pa.float64()),
        pa.DictionaryArray.from_arrays(
            pa.array([None] + [0] * rows, pa.int8()), pa.array(["s" * 10_000], pa.large_string())
        ),
        pa.nulls(rows + 1, pa.large_binary()),
    ]
    batch = pa.RecordBatch.from_arrays(columns, names=honest.schema.names)
    sink = pa.BufferOutputStream()
    schema = batch.schema.with_metadata(honest.schema.metadata)
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(batch.replace_schema_metadata(honest.schema.metadata))
    return sink.getvalue().to_pybytes()


def array_without_a_batch() -> bytes:
    data = encode(pa.array([1, 2])).to_bytes()
    schema_end = 8 + struct.unpack_from("<i", data, 4)[0]
    return data[:schema_end] + EOS


def not_arrow() -> bytes:
    return b"\xff\xff\xff\xff\x10\x00\x00\x00" + b"garbage!" * 8


CRAFTED: dict[str, Callable[[], bytes]] = {
    f.__name__: f
    for f in (
        string_offsets_past_data,
        string_offsets_decreasing,
        dictionary_index_out_of_range,
        list_offsets_past_child,
        ndarray_larger_than_its_data,
        ndarray_dtype_numpy_cannot_parse,
        python_text_dictionary_encoded,
        array_without_a_batch,
        not_arrow,
    )
}


def _put_small(client: ObjectStoreClient, data: bytes) -> object:
    return client.proxy.put_small(data)


def _put_inline_named(client: ObjectStoreClient, data: bytes) -> object:
    return client.proxy.put_inline(data, "crafted", False, "")


def _put_file(client: ObjectStoreClient, data: bytes) -> object:
    """A local put: written into the file the server allocated, then sealed."""
    allocation = client.proxy.allocate(len(data), VALUE)
    with open(allocation.path, "r+b") as f:
        f.write(data)
    return client.proxy.seal(allocation.put_id, None, False, "")


def _put_uploaded(client: ObjectStoreClient, data: bytes) -> object:
    """A remote put: sent in chunks, then sealed."""
    allocation = client.proxy.allocate(len(data), VALUE)
    client.proxy.write(allocation.put_id, 0, data)
    return client.proxy.seal(allocation.put_id, None, False, "")


def _typed_put(
    put: Callable[[ObjectStoreClient, bytes], object], client: ObjectStoreClient, data: bytes
) -> None:
    """Put through the raw proxy, raising our typed errors as the convenience client does."""
    try:
        put(client, data)
    except RpcError as exc:
        raise typed(exc) from None


PATHS = {
    "small/unix": ("unix", _put_small),
    "inline-named/tcp": ("tcp", _put_inline_named),
    "file/unix": ("unix", _put_file),
    "upload/tcp": ("tcp", _put_uploaded),
}


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("crafted", sorted(CRAFTED))
def test_a_crafted_value_is_refused_and_nothing_is_kept(
    running: RunningStore, path: str, crafted: str
) -> None:
    transport, put = PATHS[path]
    data = CRAFTED[crafted]()
    with open_client(running, transport) as client:
        used = running.server.memory.used
        with pytest.raises(objectstore.InvalidRequest, match="malformed object data"):
            _typed_put(put, client, data)
        assert running.server.memory.used == used
        assert client.list_objects().objects == []
        assert client.list_names() == {}
        still = client.get(client.put(pa.array(["still", "serving"])))
        assert isinstance(still, pa.Array)
        assert still.to_pylist() == ["still", "serving"]


def test_what_the_check_accepts_reads_back_equal(running: RunningStore) -> None:
    """The stricter check still takes every kind of value the client writes."""
    values: list[object] = [
        pa.array(["a", None, "ccc"]),
        pa.array(["x", "y", "x"]).dictionary_encode(),
        pa.array([[{"a": [1, None]}], None, []]),
        pa.table({"s": ["p", "q"], "n": [1.5, None]}),
        np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        {"k": [1, "two", b"3", None, (4.5,)]},
    ]
    with open_client(running, "tcp") as remote, open_client(running, "unix") as local:
        for value in values:
            for writer in (remote, local):
                for reader in (remote, local):
                    got = reader.get(writer.put(value))
                    if isinstance(value, np.ndarray):
                        assert isinstance(got, np.ndarray)
                        np.testing.assert_array_equal(got, value)
                        assert got.flags.f_contiguous
                    elif isinstance(value, (pa.Array, pa.Table)):
                        assert value.equals(got)  # type: ignore[arg-type]
                    else:
                        assert got == value


def test_a_client_refuses_a_malformed_value_from_its_server(running: RunningStore) -> None:
    """Over a connection the client checks what it receives (a crafted server answer here)."""
    with open_client(running, "tcp") as client:
        oid = client.put(pa.array(["aaaa", "bbbb", "cccc"]))
        entry = running.server._objects[oid]
        assert entry.data is not None, "a small value is kept inline"
        entry.data = string_offsets_past_data()  # what a broken or hostile server would send
        with pytest.raises(IPCError, match=f"object {oid}: the server sent a malformed value"):
            client.get(oid)
        assert client.get(client.put("next")) == "next"


def test_an_object_damaged_in_the_store_is_not_loaded(short_dir: str) -> None:
    """A second instance reads persisted objects from the store: it checks them like a put."""
    store = os.path.join(short_dir, "store")
    with (
        objectstore.start(socket=os.path.join(short_dir, "a.sock"), store=store) as first,
        objectstore.connect(first.socket) as client,
    ):
        oid = client.put(pa.array(["aaaa", "bbbb", "cccc"]), name="kept", persist=True)
        good = client.put(np.arange(3), persist=True)
    damaged = [
        os.path.join(root, name)
        for root, _, files in os.walk(store)
        for name in files
        if name.startswith(f"{int(oid):016x}") and not name.endswith(".json")
    ]
    assert len(damaged) == 1, os.listdir(store)
    with open(damaged[0], "rb") as f:
        data = f.read()
    offsets = struct.pack("<4i", 0, 4, 8, 12)
    assert data.count(offsets) == 1
    with open(damaged[0], "wb") as f:
        f.write(data.replace(offsets, struct.pack("<4i", 0, 1 << 20, 8, 12)))
    with (
        objectstore.start(socket=os.path.join(short_dir, "b.sock"), store=store) as second,
        objectstore.connect(second.socket) as client,
    ):
        with pytest.raises(objectstore.ObjectNotFound, match="damaged in the store"):
            client.get(ObjectID(oid))
        with pytest.raises(objectstore.ObjectNotFound, match="damaged in the store"):
            client.get("kept")
        np.testing.assert_array_equal(client.get(good), np.arange(3))
        assert second.server.memory.used == client.get_meta(good).nbytes


def test_a_client_refuses_more_bytes_than_the_server_announced(
    running: RunningStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote get receives into memory sized by the announced size: never past it."""
    import dataclasses

    from vgi_rpc.services.objectstore.protocol import Opened

    with open_client(running, "tcp") as client:
        oid = client.put(np.arange(1 << 15, dtype=np.int64))  # 256 KiB: streamed, not inline
        announced = Opened.from_wire

        def understated(raw: bytes) -> Opened:
            return dataclasses.replace(announced(raw), nbytes=1000)

        monkeypatch.setattr(Opened, "from_wire", staticmethod(understated))
        with pytest.raises(IPCError, match="sent more than its 1000 bytes"):
            client.get(oid)
        monkeypatch.undo()
        np.testing.assert_array_equal(client.get(oid), np.arange(1 << 15))
