"""The same calls over every way to reach the service; the CLI and describe."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.conftest import worker_env
from tests.services.vectorindex.conftest import random_vectors
from vgi_rpc import RpcServer, tcp_server, unix_server
from vgi_rpc.cli import main as cli_main
from vgi_rpc.services import vectorindex
from vgi_rpc.services.vectorindex.client import VectorIndexClient
from vgi_rpc.services.vectorindex.protocol import VectorIndex
from vgi_rpc.services.vectorindex.server import VectorIndexService

Opener = Callable[[Path], AbstractContextManager[VectorIndexClient]]


@contextlib.contextmanager
def _socket(kind: str, store: Path) -> Iterator[VectorIndexClient]:
    service = VectorIndexService(str(store), background=False)
    server = RpcServer(VectorIndex, service)
    path = str(store.parent / "vi.sock")
    listening = (
        unix_server(server, path, threaded=True)
        if kind == "unix"
        else tcp_server(server, threaded=True)
    )
    thread = threading.Thread(target=listening.serve_forever)
    thread.start()
    try:
        if kind == "unix":
            cm = vectorindex.connect(socket=path)
        else:
            host, port = listening.address.rsplit(":", 1)
            cm = vectorindex.connect(host=host, port=int(port))
        with cm as client:
            yield client
    finally:
        listening.close()
        thread.join()
        service.close()


@contextlib.contextmanager
def _http(store: Path) -> Iterator[VectorIndexClient]:
    from vgi_rpc.http import make_wsgi_app, serve_in_thread

    service = VectorIndexService(str(store), background=False)
    app = make_wsgi_app(RpcServer(VectorIndex, service), signing_key=b"k" * 32)
    try:
        with serve_in_thread(app) as url, vectorindex.connect(url) as client:
            yield client
    finally:
        service.close()


OPENERS: dict[str, Opener] = {
    "in-process": lambda store: vectorindex.connect(store=str(store)),
    "worker-pipe": lambda store: vectorindex.connect(worker_store=str(store), env=worker_env()),
    "worker-shm": lambda store: vectorindex.connect(
        worker_store=str(store), env=worker_env(), shm_size=16 << 20
    ),
    "unix": lambda store: _socket("unix", store),
    "tcp": lambda store: _socket("tcp", store),
    "http": _http,
}


@pytest.mark.parametrize("transport", sorted(OPENERS))
def test_every_transport(tmp_path: Path, transport: str) -> None:
    vectors = random_vectors(3000, 8)
    ids = [f"v{i:04d}" for i in range(3000)]
    with OPENERS[transport](tmp_path / "store") as vi:
        vi.create_index("n", 8)
        offset = vi.upsert("n", ids, vectors, [{"even": i % 2 == 0, "i": i} for i in range(3000)])
        hits = vi.query(
            "n",
            vectors[:3],
            top_k=4,
            filter={"even": True},
            min_offset=offset,
            include_metadata=True,
        )
        assert hits.num_rows == 12
        assert pc.all(pc.struct_field(hits.column("metadata"), "even")).as_py()
        streamed = pa.Table.from_batches(
            list(vi.query_stream("n", vectors, top_k=2, queries_per_batch=1000))
        )
        assert streamed.num_rows == 6000
        assert vi.delete("n", ids=ids[:10]).deleted == 10
        exported = vi.export_table("n")
        assert exported.column("id").to_pylist() == ids[10:]
        assert vi.fetch("n", ["v0000", "v0011"]).missing == ["v0000"]
        with pytest.raises(vectorindex.DimensionMismatchError):
            vi.query("n", random_vectors(1, 3))
        assert vi.stats().namespaces[0].count == 2990
        # results from shared memory point into the segment: let go of them before it closes
        del hits, streamed, exported
    with vectorindex.connect(store=str(tmp_path / "store")) as vi:  # persisted
        assert vi.stats().namespaces[0].count == 2990


def test_describe_lists_the_methods(tmp_path: Path) -> None:
    out = io.StringIO()
    cmd = f"{sys.executable} -m vgi_rpc.services.vectorindex --store {tmp_path}"
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = worker_env()["PYTHONPATH"]
    try:
        assert cli_main(["describe", "--cmd", cmd, "--format", "json"], out=out) == 0
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    text = out.getvalue()
    for method in (
        "create_index",
        "upsert",
        "upsert_stream",
        "delete",
        "fetch",
        "query",
        "query_stream",
        "list_ids",
        "export",
        "stats",
    ):
        assert f'"{method}"' in text


@pytest.mark.parametrize("mode", ["tcp", "socket", "http"])
def test_cli_serve_and_restart(tmp_path: Path, mode: str) -> None:
    """``vgi-rpc vectorindex serve``: serve, write, SIGTERM (snapshot), serve again."""
    store = tmp_path / "store"
    where = {"tcp": "127.0.0.1:0", "socket": str(tmp_path / "vi.sock"), "http": "127.0.0.1:0"}[mode]
    cmd = [sys.executable, "-m", "vgi_rpc.cli", "vectorindex", "serve", f"--{mode}", where]
    proc = subprocess.Popen([*cmd, "--store", str(store)], stderr=subprocess.PIPE, env=worker_env())
    assert proc.stderr is not None
    try:
        line = proc.stderr.readline().decode().strip()
        kind, _, address = line.partition(":")
        assert kind == {"tcp": "TCP", "socket": "UNIX", "http": "HTTP"}[mode], line
        if mode == "tcp":
            host, port = address.rsplit(":", 1)
            cm = vectorindex.connect(host=host, port=int(port))
        else:
            cm = vectorindex.connect(address)  # a socket path or a URL
        with cm as vi:
            vi.create_index("n", 4, kind="hnsw")
            vi.upsert("n", ["a", "b"], random_vectors(2, 4))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == 0
    with vectorindex.connect(store=str(store)) as vi:
        ns = vi.stats().namespaces[0]
        assert (ns.count, ns.kind, ns.snapshot_offset) == (2, "hnsw", 1)  # snapshotted on SIGTERM
