"""``vgi-rpc objectstore serve`` and ``vgi-rpc describe`` against it."""

from __future__ import annotations

import io
import os

from tests.services.objectstore.conftest import server_process
from vgi_rpc.cli import main
from vgi_rpc.services import objectstore
from vgi_rpc.services.objectstore import parse_size


def test_serve_command_listens_everywhere_and_describes_its_methods(short_dir: str) -> None:
    socket = os.path.join(short_dir, "cli.sock")
    store = os.path.join(short_dir, "store")
    with server_process(
        socket, store, "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--memory", "64MiB"
    ) as server:
        assert server.lines["UNIX"] == socket
        assert server.lines["STORE"] == store
        url = server.lines["HTTP"].removesuffix("/vgi")
        out = io.StringIO()
        assert main(["describe", "--url", url], out=out) == 0
        for method in [
            "put_inline",
            "put_small",
            "seal_next",
            "allocate",
            "seal",
            "open",
            "read",
            "get_name",
            "list_objects",
        ]:
            assert method in out.getvalue()
        with objectstore.connect(socket) as client:
            assert client.server.memory_limit == 64 << 20
            oid = client.put("hi", name="greeting")
        host, port = server.lines["TCP"].rsplit(":", 1)
        with objectstore.connect(host=host, port=int(port)) as remote:
            assert remote.get("greeting") == "hi"
            assert remote.get_meta(oid).hostname == client.server.hostname


def test_sizes_parse_like_the_help_says() -> None:
    assert parse_size("2GiB") == 2 << 30
    assert parse_size("512MiB") == 512 << 20
    assert parse_size("1g") == 1 << 30
    assert parse_size("1000") == 1000
