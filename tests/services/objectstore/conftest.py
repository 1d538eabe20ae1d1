"""Fixtures: an in-process object store on unix, TCP and HTTP, and a server process helper."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from tests.conftest import worker_env
from vgi_rpc.services import objectstore
from vgi_rpc.services.objectstore import ObjectStoreClient, RunningStore


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A directory with a short path (unix socket paths are limited to ~100 bytes)."""
    directory = tempfile.mkdtemp(prefix="os-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def running(short_dir: str) -> Iterator[RunningStore]:
    """A store on a unix socket and TCP (HTTP costs a second to stop: only where needed)."""
    with objectstore.start(
        socket=os.path.join(short_dir, "s.sock"),
        tcp=("127.0.0.1", 0),
        store=os.path.join(short_dir, "store"),
        memory=256 << 20,
    ) as store:
        yield store


def open_client(running: RunningStore, transport: str) -> ObjectStoreClient:
    if transport == "unix":
        assert running.socket is not None
        return objectstore.connect(running.socket)
    if transport == "tcp":
        assert running.tcp is not None
        return objectstore.connect(host=running.tcp[0], port=running.tcp[1])
    assert running.url is not None
    return objectstore.connect(url=running.url)


@pytest.fixture(params=["unix", "tcp", "http"])
def client(request: pytest.FixtureRequest, short_dir: str) -> Iterator[ObjectStoreClient]:
    """A client over one transport, to a server listening on that transport only."""
    transport = request.param
    with (
        objectstore.start(
            socket=os.path.join(short_dir, "s.sock") if transport == "unix" else None,
            tcp=("127.0.0.1", 0) if transport == "tcp" else None,
            http=("127.0.0.1", 0) if transport == "http" else None,
            store=os.path.join(short_dir, "store"),
            memory=256 << 20,
        ) as running,
        open_client(running, transport) as c,
    ):
        yield c


class ServerProcess:
    """``vgi-rpc objectstore serve`` in a child process; reads the addresses it prints."""

    def __init__(self, socket: str, store: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vgi_rpc.cli",
                "objectstore",
                "serve",
                "--socket",
                socket,
                "--store",
                store,
                *extra,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=worker_env(),
        )
        self.lines: dict[str, str] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            key, _, value = line.strip().partition(":")
            self.lines[key] = value
            if key == "STORE":
                break
        else:
            raise AssertionError(f"the server exited with {self.proc.wait()}")
        self.socket = socket

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._close_pipe()

    def stop(self) -> None:
        self.proc.terminate()
        assert self.proc.wait(timeout=20) == 0
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextlib.contextmanager
def server_process(socket: str, store: str, *extra: str) -> Iterator[ServerProcess]:
    server = ServerProcess(socket, store, *extra)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.stop()
        else:
            server._close_pipe()
