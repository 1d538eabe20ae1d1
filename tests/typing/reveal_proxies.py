"""Checked by mypy in tests/typing/test_typing.py (not run): proxies are typed as the Protocol."""

from __future__ import annotations

import sys
from typing import Protocol

from vgi_rpc import (
    RpcConnection,
    Stream,
    StreamState,
    WorkerPool,
    connect,
    make_pipe_pair,
    serve_pipe,
    tcp_connect,
    unix_connect,
)


class Calc(Protocol):
    def add(self, a: float, b: float) -> float: ...
    def count(self, n: int) -> Stream[StreamState]: ...


class CalcImpl:
    def add(self, a: float, b: float) -> float:
        return a + b


with serve_pipe(Calc, CalcImpl()) as piped:
    reveal_type(piped)  # noqa: F821
    reveal_type(piped.add(a=1.0, b=2.0))  # noqa: F821
    for batch in piped.count(n=3):
        reveal_type(batch)  # noqa: F821
with connect(Calc, [sys.executable, "worker.py"]) as spawned:
    reveal_type(spawned)  # noqa: F821
with unix_connect(Calc, "/tmp/x.sock") as over_unix:
    reveal_type(over_unix)  # noqa: F821
with tcp_connect(Calc, "127.0.0.1", 1) as over_tcp:
    reveal_type(over_tcp)  # noqa: F821
with WorkerPool().connect(Calc, [sys.executable, "worker.py"]) as pooled:
    reveal_type(pooled)  # noqa: F821
    pooled.add(a="x", b=2.0)  # a wrong argument type must be reported
with RpcConnection(Calc, make_pipe_pair()[0]) as over_a_channel:
    reveal_type(over_a_channel)  # noqa: F821
