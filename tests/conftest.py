"""The ``rpc`` fixture: one behaviour test runs over every transport."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest

from tests._services import SERVICES
from vgi_rpc import StderrMode, connect, serve_pipe

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


TRANSPORTS: dict[str, RpcFactory] = {"pipe": _pipe, "subprocess": _subprocess}


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
