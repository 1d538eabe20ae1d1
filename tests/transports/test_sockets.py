"""Unix and TCP socket servers: lifecycle, socket files, connection caps, errors."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from tests._services import Service, ServiceImpl
from vgi_rpc import RpcServer, TransportError, tcp_connect, tcp_server, unix_connect, unix_server


def _serve(listening: object) -> threading.Thread:
    thread = threading.Thread(target=listening.serve_forever, daemon=True)  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_unix_server_replaces_a_stale_socket_and_removes_it_on_close(tmp_path: Path) -> None:
    path = str(tmp_path / "svc.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # a socket file left by a crashed server
    listening = unix_server(RpcServer(Service, ServiceImpl()), path)
    thread = _serve(listening)
    with unix_connect(Service, path) as svc:
        assert svc.greet(name="unix") == "hello unix!"
    listening.close()
    thread.join(timeout=10)
    assert not os.path.exists(path)


def test_unix_server_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "important.txt"
    path.write_text("keep me")
    with pytest.raises(TransportError, match="is not a socket"):
        unix_server(RpcServer(Service, ServiceImpl()), str(path))
    assert path.read_text() == "keep me"


def test_threaded_tcp_server_serves_clients_concurrently_and_caps_them() -> None:
    listening = tcp_server(RpcServer(Service, ServiceImpl()), threaded=True, max_connections=2)
    thread = _serve(listening)
    host, port = listening.address.rsplit(":", 1)
    with tcp_connect(Service, host, int(port)) as a, tcp_connect(Service, host, int(port)) as b:
        assert a.add(a=1.0, b=2.0) == 3.0
        assert b.add(a=2.0, b=2.0) == 4.0
        with tcp_connect(Service, host, int(port)) as c, pytest.raises(TransportError):
            c.noop()  # a third connection is refused and closed
    listening.close()
    thread.join(timeout=10)


def test_connecting_to_nothing_is_a_clear_transport_error(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="cannot connect to unix socket"):
        unix_connect(Service, str(tmp_path / "missing.sock"))
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(TransportError, match=f"cannot connect to 127.0.0.1:{port}"):
        tcp_connect(Service, "127.0.0.1", port)


def test_server_close_ends_open_connections_cleanly() -> None:
    listening = tcp_server(RpcServer(Service, ServiceImpl()), threaded=True)
    thread = _serve(listening)
    host, port = listening.address.rsplit(":", 1)
    with tcp_connect(Service, host, int(port)) as svc:
        assert svc.add(a=1.0, b=1.0) == 2.0
        listening.close()
        thread.join(timeout=10)
        with pytest.raises(TransportError):
            svc.add(a=1.0, b=1.0)


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_a_socket_channel_moves_bytes_with_or_without_a_timeout(timeout: float | None) -> None:
    """A blocking socket is read and written as an fd; one with a timeout through SocketIO."""
    from vgi_rpc.transports import SocketChannel

    ours, theirs = socket.socketpair()
    ours.settimeout(timeout)
    channel = SocketChannel(ours, peer="pair")
    try:
        payload = os.urandom(300_000)  # more than one socket buffer: several reads and writes
        sender = threading.Thread(target=theirs.sendall, args=(payload,))
        sender.start()
        assert channel.reader.read(len(payload)) == payload
        sender.join()
        channel.write_chunks([b"ab", memoryview(b"cd"), b"ef"])
        assert theirs.recv(16) == b"abcdef"
        theirs.close()
        assert channel.reader.read(1) == b""  # end of file once the peer is gone
    finally:
        channel.close()
        theirs.close()
