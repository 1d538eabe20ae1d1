"""The ``rpc`` fixture: one behaviour test runs over every transport."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from tests._services import SERVICES
from tests._shm_leaks import left_behind as shm_left_behind
from tests._shm_leaks import snapshot as shm_snapshot
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
    # These tests check what errors carry, tracebacks included; the HTTP default
    # (no traceback to anonymous callers) is tested in tests/http/test_http_hardening.py.
    server = RpcServer(protocol, impl(), expose_tracebacks=True)
    app = make_wsgi_app(server, signing_key=b"test key")
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
def open_fds() -> Callable[[], set[str]]:
    """Snapshot of this process's open descriptors as ``"fd -> target"``, for leak checks.

    Compare with ``after <= before``: descriptors that earlier tests' garbage closes in the
    meantime are not this test's concern, and a leaked pipe that reuses a freed number still
    shows up because its target (``pipe:[inode]``) differs.
    """

    def snapshot() -> set[str]:
        gc.collect()  # close what earlier tests dropped, so only live descriptors count
        entries = set()
        with contextlib.suppress(FileNotFoundError):
            for fd in os.listdir("/proc/self/fd"):
                with contextlib.suppress(OSError):
                    entries.add(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        return entries

    return snapshot


def _live_children() -> set[int]:
    """Child processes of this test process that have not exited (Linux /proc)."""
    children: set[int] = set()
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == os.getpid() and fields[0] != "Z":
                    children.add(int(entry))
    return children


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
        words = f.read().split(b"\0")
        return f"{pid}: {b' '.join(words).decode(errors='replace').strip()}"
    return str(pid)


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """Run the collector after every test, so an unclosed socket or file fails the test that
    dropped it (warnings are errors) instead of whichever test the collector happens to hit."""
    yield
    gc.collect()


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    """After the whole session: no shared-memory segment, child process or thread remains."""
    shm, children = shm_snapshot(), _live_children()
    threads = {t.ident for t in threading.enumerate()}
    yield

    def leftovers() -> dict[str, list[str]]:
        return {
            # only what this run could have made: other suites' segments come and go meanwhile
            "shared-memory segments": shm_left_behind(shm),
            "child processes": [
                line
                for line in map(_cmdline, sorted(_live_children() - children))
                # Python's shared-memory bookkeeper lives as long as this process, by design.
                if "multiprocessing.resource_tracker" not in line
            ],
            "threads": sorted(t.name for t in threading.enumerate() if t.ident not in threads),
        }

    deadline = time.monotonic() + 10  # give closing workers and threads time to finish
    left = leftovers()
    while any(left.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
        left = leftovers()
    if any(left.values()):
        pytest.fail(f"the test session left things behind: {left}")
