"""The ``rpc`` fixture: one behaviour test runs over every transport."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from tests._services import SERVICES
from vgi_rpc import (
    RpcServer,
    StderrMode,
    connect,
    serve_pipe,
    tcp_connect,
    tcp_server,
    unix_connect,
    unix_server,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = [sys.executable, "-m", "tests._worker"]

RpcFactory = Callable[..., AbstractContextManager[Any]]


def worker_env() -> dict[str, str]:
    """Environment for test workers: the repo on sys.path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _pipe(protocol: type, name: str = "service", **kwargs: Any) -> AbstractContextManager[Any]:
    _, impl = SERVICES[name]
    return serve_pipe(protocol, impl(), **kwargs)


def _subprocess(
    protocol: type, name: str = "service", **kwargs: Any
) -> AbstractContextManager[Any]:
    kwargs.setdefault("stderr", StderrMode.PIPE)
    return connect(protocol, [*WORKER, name], env=worker_env(), **kwargs)


@contextlib.contextmanager
def _socket(kind: str, protocol: type, name: str = "service", **kwargs: Any) -> Iterator[Any]:
    _, impl = SERVICES[name]
    server = RpcServer(protocol, impl())
    directory = tempfile.mkdtemp(prefix="vgi-test-")
    if kind == "unix":
        listening = unix_server(server, os.path.join(directory, "s.sock"), threaded=True)
    else:
        listening = tcp_server(server, threaded=True)
    thread = threading.Thread(target=listening.serve_forever, daemon=True)
    thread.start()
    try:
        cm: AbstractContextManager[Any]
        if kind == "unix":
            cm = unix_connect(protocol, listening.address, **kwargs)
        else:
            host, port = listening.address.rsplit(":", 1)
            cm = tcp_connect(protocol, host, int(port), **kwargs)
        with cm as proxy:
            yield proxy
    finally:
        listening.close()
        thread.join(timeout=10)
        os.rmdir(directory)


def serve_wsgi(app: object) -> AbstractContextManager[str]:
    """Serve a WSGI app with waitress on a loopback port in a thread; yield its base URL."""
    from vgi_rpc.http import serve_in_thread

    return serve_in_thread(app)


@contextlib.contextmanager
def _http(protocol: type, name: str = "service", **kwargs: Any) -> Iterator[Any]:
    from vgi_rpc.http import http_connect, make_wsgi_app

    _, impl = SERVICES[name]
    app = make_wsgi_app(RpcServer(protocol, impl()), signing_key=b"test key")
    with serve_wsgi(app) as url:
        connected: AbstractContextManager[Any] = http_connect(protocol, url, **kwargs)
        with connected as proxy:
            yield proxy


TRANSPORTS: dict[str, RpcFactory] = {
    "pipe": _pipe,
    "subprocess": _subprocess,
    "unix": functools.partial(_socket, "unix"),
    "tcp": functools.partial(_socket, "tcp"),
    "http": _http,
}


@pytest.fixture(params=sorted(TRANSPORTS))
def rpc(request: pytest.FixtureRequest) -> RpcFactory:
    """Factory ``rpc(Protocol, service_name="service", **options)`` -> context manager of a proxy."""
    factory: RpcFactory = TRANSPORTS[request.param]
    return factory


@pytest.fixture
def open_fds() -> Callable[[], set[int]]:
    """Snapshot of this process's open descriptors, for leak checks."""

    def snapshot() -> set[int]:
        with contextlib.suppress(FileNotFoundError):
            return {int(fd) for fd in os.listdir("/proc/self/fd")}
        return set()

    return snapshot
