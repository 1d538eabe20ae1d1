"""The hot calls' wire shapes: prebuilt scalar streams, ``open``'s answer, spares, properties."""

from __future__ import annotations

import math
import os
import struct
import threading
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from tests.services.objectstore.conftest import open_client
from vgi_rpc import RpcError
from vgi_rpc.services import objectstore
from vgi_rpc.services.objectstore import RunningStore
from vgi_rpc.services.objectstore._codec import decode, decode_small, encode, encode_small
from vgi_rpc.services.objectstore._errors import typed
from vgi_rpc.services.objectstore.protocol import Opened

MiB = 1 << 20
SCALARS = [None, True, False, 0, 7, -1, 2**63 - 1, -(2**63), 0.0, -0.0, 1.5, math.inf, 1e-310]


def _typed_call(call: Callable[[], object]) -> object:
    try:
        return call()
    except RpcError as exc:
        raise typed(exc) from None


def _general_stream(value: object) -> bytes:
    sink = pa.BufferOutputStream()
    encode(value).write_to(sink)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("value", SCALARS, ids=repr)
def test_a_prebuilt_scalar_stream_is_the_general_encoders_byte_for_byte(value: object) -> None:
    small = encode_small(value)
    assert small is not None
    typename, data = small
    assert data == _general_stream(value)
    assert typename == encode(value).typename
    known, back = decode_small(data)
    assert known
    assert type(back) is type(value)
    assert back == value or (isinstance(value, float) and math.isnan(value))
    assert decode(pa.py_buffer(data)) == back


def test_nan_and_values_without_a_template() -> None:
    small = encode_small(math.nan)
    assert small is not None
    known, back = decode_small(small[1])
    assert known
    assert isinstance(back, float)
    assert math.isnan(back)
    for value in (2**63, "text", b"bytes", [1], {"a": 1}, np.int64(3)):
        assert encode_small(value) is None
    assert decode_small(_general_stream("text")) == (False, None)
    assert decode_small(b"\x00" * 16) == (False, None)


def test_the_server_accepts_templates_and_checks_every_other_stream(
    running: RunningStore,
) -> None:
    with open_client(running, "unix") as client:
        proxy = client.proxy
        small = encode_small(12345)
        assert small is not None
        oid = _typed_call(lambda: proxy.put_small(small[1]))
        assert client.get(objectstore.ObjectID(oid)) == 12345  # type: ignore[arg-type]
        assert client.get_meta(oid).typename == "py.int"  # type: ignore[arg-type]
        # a template with one byte changed outside the value slot is parsed, and refused
        broken = bytearray(small[1])
        broken[20] ^= 0xFF
        with pytest.raises(objectstore.InvalidRequest):
            _typed_call(lambda: proxy.put_small(bytes(broken)))
        with pytest.raises(objectstore.InvalidRequest):
            _typed_call(lambda: proxy.put_small(small[1][:-9]))
        # other streams are validated in full; their type name is the one they record
        text = _general_stream("héllo")
        oid = _typed_call(lambda: proxy.put_small(text))
        assert client.get_meta(oid).typename == "py.str"  # type: ignore[arg-type]
        assert client.get(objectstore.ObjectID(oid)) == "héllo"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("properties", "accepted"),
    [
        ("", True),
        ('{"a": "b"}', True),
        ("not json", False),
        ('["a"]', False),
        ('{"a": 1}', False),
        ('{"": "x"}', False),
        ("{" + ",".join(f'"k{i}": "v"' for i in range(65)) + "}", False),
    ],
)
def test_properties_travel_as_a_json_object_of_strings(
    running: RunningStore, properties: str, accepted: bool
) -> None:
    with open_client(running, "unix") as client:
        data = _general_stream([1, 2])
        call = lambda: client.proxy.put_inline(data, None, False, properties)  # noqa: E731
        if accepted:
            oid = _typed_call(call)
            expected = {"a": "b"} if properties else {}
            assert client.get_meta(oid).properties == expected  # type: ignore[arg-type]
        else:
            with pytest.raises(objectstore.InvalidRequest):
                _typed_call(call)
        assert client.get(client.put("still serving")) == "still serving"


def test_properties_given_to_put_are_kept(running: RunningStore) -> None:
    with open_client(running, "unix") as client:
        small = client.put(5, properties={"unit": "m"})
        large = client.put(np.ones(MiB // 8), properties={"unit": "s"})
        assert client.get_meta(small).properties == {"unit": "m"}
        assert client.get_meta(large).properties == {"unit": "s"}
        assert client.get_meta(large).typename == "numpy.ndarray"
        with pytest.raises(TypeError, match="str to str"):
            client.put(5, properties={"n": 1})  # type: ignore[dict-item]


def test_open_answers_small_objects_whole_and_large_ones_as_a_file(
    running: RunningStore,
) -> None:
    with open_client(running, "unix") as client:
        small = client.put(b"x" * 100)
        large = client.put(np.ones(MiB // 8))
        blob = client.create_blob(10)
        blob.write(b"0123456789")
        blob_id = blob.seal()
        opened = Opened.from_wire(client.proxy.open(str(small)))
        assert opened.id == small
        assert opened.kind == "value"
        assert opened.path == ""
        assert opened.data is not None
        assert len(opened.data) == opened.nbytes
        opened = Opened.from_wire(client.proxy.open(str(large)))
        assert opened.data is None
        assert os.path.exists(opened.path)
        assert opened.nbytes == os.stat(opened.path).st_size
        opened = Opened.from_wire(client.proxy.open(str(blob_id)))
        assert opened.kind == "blob"
        assert opened.data == b"0123456789"


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x00" * 16,
        struct.pack("<qqB", 1, 5, 4),  # an unknown flag
        struct.pack("<qqB", 1, -1, 0),
        struct.pack("<qqB", 1, 5, 2) + b"abc",  # 3 of 5 bytes
        struct.pack("<qqB", 1, 5, 0) + b"\xff\xfe",  # a path that is not UTF-8
    ],
)
def test_a_malformed_open_answer_is_refused(wire: bytes) -> None:
    with pytest.raises(ValueError, match="malformed open"):
        Opened.from_wire(wire)


def test_a_spare_belongs_to_its_connection(running: RunningStore) -> None:
    with open_client(running, "unix") as client:
        size = MiB
        client.put(np.ones(size // 8))
        spare = client._tls.spare
        assert spare is not None
        assert os.path.exists(spare.path)
        assert os.path.basename(spare.path) == f"spare-{spare.put_id:016x}"
        errors: list[BaseException] = []

        def other_connection() -> None:  # each thread of a client has its own connection
            proxy = client.proxy
            for call in (
                lambda: proxy.seal(spare.put_id, None, False, ""),
                lambda: proxy.seal_next(spare.put_id, 0, 0, 0),
                lambda: proxy.write(spare.put_id, 0, b"x"),
            ):
                try:
                    _typed_call(call)
                except BaseException as exc:
                    errors.append(exc)
            proxy.abort(spare.put_id)  # does nothing to another connection's spare

        thread = threading.Thread(target=other_connection)
        thread.start()
        thread.join()
        assert [type(e) for e in errors] == [objectstore.PutAborted] * 3
        assert os.path.exists(spare.path)
        again = client.put(np.full(size // 8, 2.0))  # its owner still writes it
        assert client.get_meta(again).path == spare.path
        assert float(client.get(again)[0]) == 2.0  # type: ignore[index]


def test_a_spare_id_already_taken_gives_no_spare_and_the_put_still_works(
    running: RunningStore,
) -> None:
    with open_client(running, "unix") as client:
        first = client.put(np.ones(MiB // 8))
        spare = client._tls.spare
        assert spare is not None
        # ask for a spare under the id of the pending spare itself: refused, nothing made
        allocation = client.proxy.allocate(spare.size, "value")
        with open(allocation.path, "r+b") as f:
            f.write(_general_stream(np.ones(MiB // 8))[: spare.size])
        oid = client.proxy.seal_next(allocation.put_id, spare.put_id, spare.size, 0)
        assert client.get_meta(oid).nbytes == spare.size
        client._tls.spare = spare  # the next put finds its spare unchanged (not replaced)
        second = client.put(np.full(MiB // 8, 3.0))
        assert client.get_meta(second).path == spare.path
        client.delete([first, oid, second])


def test_a_new_spare_replaces_the_connections_last_one(running: RunningStore) -> None:
    with open_client(running, "unix") as client:
        client.put(np.ones(MiB // 8))
        first = client._tls.spare
        client.put(np.ones(3 * MiB // 8))  # another size: allocated; its spare replaces the first
        second = client._tls.spare
        assert first is not None
        assert second is not None
        assert not os.path.exists(first.path)
        assert os.path.exists(second.path)
        assert client.proxy.info().memory_spare == second.size


def _put_raw(client: objectstore.ObjectStoreClient, data: bytes) -> int:
    """A put of exactly these bytes through allocate / write the file / seal."""
    allocation = client.proxy.allocate(len(data), "value")
    with open(allocation.path, "r+b") as f:
        f.write(data)
    oid = _typed_call(lambda: client.proxy.seal(allocation.put_id, None, False, ""))
    assert isinstance(oid, int)
    return oid


def test_a_put_shaped_like_a_checked_one_is_checked_by_its_edges(running: RunningStore) -> None:
    shapes = running.server.shapes
    with open_client(running, "unix") as client:
        first = _general_stream(np.zeros(MiB // 8))
        assert shapes.known_sizes() == []
        oid = _put_raw(client, first)
        assert shapes.known_sizes() == [len(first)]  # learned once checked in full
        second = _general_stream(np.full(MiB // 8, 7.0))  # same head and tail, another body
        assert second[:400] == first[:400]
        assert second[-8:] == first[-8:]
        again = _put_raw(client, second)
        assert float(client.get(objectstore.ObjectID(again))[5]) == 7.0  # type: ignore[index]
        assert client.get_meta(again).typename == "numpy.ndarray"
        # the same size with a head that is not a known one is checked in full, and refused
        broken = bytearray(second)
        broken[8:16] = b"\xff" * 8
        with pytest.raises(objectstore.InvalidRequest):
            _put_raw(client, bytes(broken))
        client.delete([oid, again])


def test_only_streams_whose_body_cannot_break_them_are_learned(running: RunningStore) -> None:
    shapes = running.server.shapes
    with open_client(running, "unix") as client:
        texts = pa.table({"s": pa.array(["x" * 100] * 2000)})  # offsets in the body
        with_nulls = pa.array([1.0, None] * 40000)
        for value in (texts, with_nulls, pa.array([True, False] * 400000)):
            client.put(value)
        assert shapes.known_sizes() == []
        client.put(np.ones(MiB // 4, dtype=np.int32))
        assert len(shapes.known_sizes()) == 1


def test_one_id_is_deleted_with_flat_arguments_like_a_list_of_one(running: RunningStore) -> None:
    with open_client(running, "unix") as client:
        calls: list[str] = []
        proxy = client.proxy
        for method in ("delete", "delete_one"):
            inner = getattr(proxy, method)

            def counted(
                *args: object, _inner: Callable[..., object] = inner, _m: str = method
            ) -> object:
                calls.append(_m)
                return _inner(*args)

            setattr(proxy, method, counted)
        named = client.put("named value", name="doomed")
        client.delete(named)
        assert calls == ["delete_one"]
        with pytest.raises(objectstore.ObjectNotFound):
            client.get(named)
        with pytest.raises(objectstore.NameNotFound):  # its names went with it
            client.get_name("doomed")
        with pytest.raises(objectstore.ObjectNotFound):  # twice: a typed error
            client.delete(named)
        with pytest.raises(objectstore.InvalidRequest):
            _typed_call(lambda: proxy.delete_one(0, True, True))
        pair = [client.put(1.5), client.put(np.arange(3))]
        client.delete(pair)
        assert calls[-1] == "delete"
        for oid in pair:
            with pytest.raises(objectstore.ObjectNotFound):
                client.get(oid)
