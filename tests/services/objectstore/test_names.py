"""Names: waits woken by put_name (no client polling), no dangling names, overwrite rules."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from vgi_rpc.services import objectstore
from vgi_rpc.services.objectstore import ObjectStoreClient, RunningStore


@pytest.fixture
def memory_only(short_dir: str) -> Iterator[RunningStore]:
    with objectstore.start(
        socket=os.path.join(short_dir, "m.sock"), tcp=("127.0.0.1", 0)
    ) as running:
        yield running


def _wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_one_put_name_wakes_16_waiting_threads_within_milliseconds(
    memory_only: RunningStore, transport: str
) -> None:
    assert memory_only.socket is not None
    assert memory_only.tcp is not None
    client = (
        objectstore.connect(memory_only.socket)
        if transport == "unix"
        else objectstore.connect(host=memory_only.tcp[0], port=memory_only.tcp[1])
    )
    woken: list[float] = []
    results: list[object] = []
    lock = threading.Lock()

    def wait() -> None:
        oid = client.get_name("ready", wait=True, timeout=30)
        with lock:
            woken.append(time.monotonic())
            results.append(oid)

    with client:
        threads = [threading.Thread(target=wait) for _ in range(16)]
        for thread in threads:
            thread.start()
        # every thread is blocked on the server (each on its own connection)
        _wait_for(lambda: memory_only.server.names.waiting == 16)
        oid = client.put(
            "payload"
        )  # the writer shares the process (and the client) with the waiters
        before = time.monotonic()
        client.put_name(oid, "ready")
        for thread in threads:
            thread.join(timeout=10)
        assert results == [oid] * 16
        latency = max(woken) - before
        # a few milliseconds when the machine is idle; the bound is generous for a loaded CI host
        assert latency < 0.5, f"slowest waiter woke {latency * 1000:.1f} ms after put_name"
        # each waiter had its own connection; those of finished threads are closed
        assert client.connections == 1


def test_get_name_without_wait_and_timeouts(memory_only: RunningStore) -> None:
    assert memory_only.socket is not None
    with objectstore.connect(memory_only.socket) as client:
        with pytest.raises(objectstore.NameNotFound):
            client.get_name("absent")
        start = time.monotonic()
        with pytest.raises(objectstore.NameTimeout) as caught:
            client.get_name("absent", wait=True, timeout=0.2)
        assert 0.2 <= time.monotonic() - start < 2
        assert "absent" in str(caught.value)
        assert client.put(1)  # still serving


def test_names_follow_their_object(client: ObjectStoreClient) -> None:
    first, second = client.put("first"), client.put("second")
    client.put_name(first, "n")
    assert client.get("n") == "first"
    with pytest.raises(objectstore.NameTaken):
        client.put_name(second, "n")
    assert client.get_name("n") == first
    client.put_name(second, "n", overwrite=True)
    assert client.get("n") == "second"
    client.put_name(second, "alias")
    assert client.list_names() == {"alias": second, "n": second}
    assert client.get_meta(second).names == ["alias", "n"]
    client.delete(second)  # drops both names: none is left dangling
    assert client.list_names() == {}
    with pytest.raises(objectstore.NameNotFound):
        client.get("n")
    client.put_name(first, "m")
    client.drop_name("m")
    with pytest.raises(objectstore.NameNotFound):
        client.drop_name("m")
    assert client.get(first) == "first"


def test_list_objects_pages_through_everything(client: ObjectStoreClient) -> None:
    ids = {client.put(i) for i in range(25)} | {client.put(float(i)) for i in range(5)}
    seen: list[int] = []
    token = None
    pages = 0
    while True:
        page = client.list_objects(page_size=7, page_token=token)
        seen += [m.id for m in page.objects]
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    assert sorted(seen) == sorted(ids)
    assert pages == 5
    floats = client.list_objects("py.float", page_size=100).objects
    assert len(floats) == 5
    assert all(m.typename == "py.float" for m in floats)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux-only")
def test_a_name_bound_on_another_instance_wakes_waiters_without_polling(short_dir: str) -> None:
    store = os.path.join(short_dir, "store")
    with (
        objectstore.start(socket=os.path.join(short_dir, "a.sock"), store=store) as a,
        objectstore.start(socket=os.path.join(short_dir, "b.sock"), store=store) as b,
        objectstore.connect(a.socket) as on_a,
        objectstore.connect(b.socket) as on_b,
    ):
        assert b.server.names.watching
        assert b.server.names.poll_seconds >= 5.0  # a safety net, far slower than the wake-up
        oid = on_a.put("value", persist=True)
        woke: list[float] = []

        def wait() -> None:
            assert on_b.get_name("cross", wait=True, timeout=30) == oid
            woke.append(time.monotonic())

        threads = [threading.Thread(target=wait) for _ in range(4)]
        for thread in threads:
            thread.start()
        _wait_for(lambda: b.server.names.waiting == 4)
        time.sleep(0.05)  # all four are blocked in the wait, not between checks
        bound = time.monotonic()
        on_a.put_name(oid, "cross")
        for thread in threads:
            thread.join(timeout=30)
        assert len(woke) == 4
        latency = max(woke) - bound
        assert latency < 2.0, f"waiters on the other instance woke {latency * 1000:.0f} ms later"


def test_names_are_bounded_and_indexed_by_object(
    memory_only: RunningStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vgi_rpc.services.objectstore import _names

    monkeypatch.setattr(_names, "MAX_NAMES", 3)
    assert memory_only.socket is not None
    with objectstore.connect(memory_only.socket) as c:
        first, second = c.put("first"), c.put("second")
        for name in ("a", "b", "c"):
            c.put_name(first, name)
        with pytest.raises(objectstore.OutOfMemory, match="holds 3 names, its limit"):
            c.put_name(second, "d")
        c.put_name(second, "c", overwrite=True)  # rebinding is not a new name
        assert c.get_meta(first).names == ["a", "b"]
        assert c.get_meta(second).names == ["c"]
        c.drop_name("a")
        c.put_name(second, "d")
        assert c.get_meta(second).names == ["c", "d"]
        c.delete(second)  # its names go with it, and make room
        c.put_name(first, "e")
        c.put_name(first, "f")
        assert c.get_meta(first).names == ["b", "e", "f"]
        assert c.list_names() == {"b": first, "e": first, "f": first}


def test_http_waits_are_capped_so_other_http_callers_keep_their_threads(
    short_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vgi_rpc.services.objectstore import server as server_module

    monkeypatch.setattr(server_module, "MAX_HTTP_WAITERS", 2)
    with (
        objectstore.start(
            socket=os.path.join(short_dir, "h.sock"), http=("127.0.0.1", 0)
        ) as running,
        objectstore.connect(running.socket) as local,
    ):
        assert running.url is not None
        got: list[object] = []

        def wait() -> None:
            with objectstore.connect(url=running.url) as remote:
                got.append(remote.get_name("later", wait=True, timeout=20))

        waiters = [threading.Thread(target=wait) for _ in range(2)]
        for thread in waiters:
            thread.start()
        _wait_for(lambda: running.server.names.waiting == 2)
        with objectstore.connect(url=running.url) as remote:
            started = time.monotonic()
            with pytest.raises(objectstore.NameTimeout, match="2 get_name calls already wait"):
                remote.get_name("later", wait=True, timeout=20)
            assert time.monotonic() - started < 5
            bound = local.put("now", name="now")
            assert remote.get_name("now", wait=True, timeout=20) == bound  # bound: no wait needed
            oid = local.put("later value", name="later")
            for thread in waiters:
                thread.join(10)
            assert got == [oid, oid]
            assert remote.get_name("later", wait=True, timeout=20) == oid
