"""The object store: zero-copy puts and gets on one host, names over HTTP, persistence.

Run it: ``python examples/object_store.py``. ``demo()`` is also the object
store part of ``./run demo``.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import pyarrow as pa

from vgi_rpc.services import objectstore


def _mapped_from(directory: str, address: int) -> bool:
    """Whether ``address`` lies in a mapping of a file in ``directory`` (Linux)."""
    if not os.path.exists("/proc/self/maps"):
        return False
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) >= 6 and parts[5].startswith(directory + "/"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                if start <= address < end:
                    return True
    return False


def demo() -> None:
    """Put and get an Arrow table and a numpy array, fetch a name over HTTP, survive a restart."""
    with tempfile.TemporaryDirectory(prefix="objectstore-demo-") as home:
        socket, store = os.path.join(home, "store.sock"), os.path.join(home, "store")
        with objectstore.start(socket=socket, http=("127.0.0.1", 0), store=store) as running:
            print(
                f"object store: unix socket, {running.url}/vgi, store {store}, memory limit 2 GiB"
            )
            with objectstore.connect(socket) as client:
                table = pa.table(
                    {
                        "id": np.arange(1_000_000),
                        "value": np.random.default_rng(1).random(1_000_000),
                    }
                )
                array = np.arange(1_000_000, dtype=np.float64).reshape(1000, 1000)
                t0 = time.perf_counter()
                table_id = client.put(table, name="demo/table")
                array_id = client.put(array)
                put_ms = (time.perf_counter() - t0) * 1e3
                client.get(table_id), client.get(array_id)  # first calls warm up the code paths
                t1 = time.perf_counter()
                table_back = client.get(table_id)
                array_back = client.get(array_id)
                t2 = time.perf_counter()
                assert isinstance(table_back, pa.Table)
                assert isinstance(array_back, np.ndarray)
                shm = client.server.shm_dir
                column = table_back.column("value").chunks[0].buffers()[1]
                assert column is not None
                print(
                    f"table: {table_back.num_rows} rows, equal: {table_back.equals(table)}, "
                    f"zero-copy: {_mapped_from(shm, column.address)}"
                )
                print(
                    f"array: {array_back.dtype} {array_back.shape}, equal: {np.array_equal(array_back, array)}, "
                    f"zero-copy: {_mapped_from(shm, array_back.ctypes.data)}"
                )
                print(
                    f"put both {put_ms:.1f} ms, got both again {(t2 - t1) * 1e3:.2f} ms ({table_id}, {array_id})"
                )
                assert running.url is not None
                with objectstore.connect(url=running.url) as remote:
                    fetched = remote.get("demo/table")
                    assert isinstance(fetched, pa.Table)
                    print(
                        f"over HTTP: demo/table -> {fetched.num_rows} rows, equal: {fetched.equals(table)}"
                    )
                survivor = client.put(
                    {"answer": 42, "tags": ("durable", "named")}, name="survivor", persist=True
                )
        print("server stopped; starting a new one on the same store")
        with objectstore.start(socket=socket, store=store), objectstore.connect(socket) as client:
            meta = client.get_meta(survivor)
            print(
                f"after restart: survivor = {client.get('survivor')} (isglobal={meta.isglobal}, islocal={meta.islocal})"
            )


def main() -> None:
    demo()


if __name__ == "__main__":
    main()
