"""Small calls, our package only: noop() and add(a, b) over a pipe and a unix socket.

Reports wall time and CPU time per call: over the pipe client and server share
one process (their CPU is one figure); over the unix socket the server is a
subprocess and its CPU comes from ``/proc``. Run it pinned, so both sides share
one CPU::

    taskset -c 1 .venv/bin/python benchmarks/small_calls.py [--calls N] [--rounds R]

To compare two trees, run it twice with ``PYTHONPATH`` set to each (the
server subprocess inherits it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _unary_service import Bench, BenchImpl  # noqa: E402

import vgi_rpc  # noqa: E402
from vgi_rpc import serve_pipe, unix_connect  # noqa: E402

PROTOCOL: type[Any] = Bench
_SERVER = (
    "import sys; sys.path.insert(0, {here!r});"
    "from _unary_service import Bench, BenchImpl;"
    "from vgi_rpc import RpcServer, serve_unix;"
    "serve_unix(RpcServer(Bench, BenchImpl()), {path!r})"
)


def _cpu_of(pid: int) -> float:
    """CPU seconds of ``pid`` (all its threads), from the scheduler's nanosecond counters."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def _measure(
    proxy: Any, calls: int, rounds: int, server_pid: int | None
) -> dict[str, tuple[float, float, float]]:
    """Per method: median (wall µs, client CPU µs, server CPU µs) per call over ``rounds``."""
    cases: dict[str, Callable[[], object]] = {
        "noop": proxy.noop,
        "add": lambda: proxy.add(a=1.0, b=2.0),
    }
    out = {}
    for name, call in cases.items():
        for _ in range(500):
            call()
        rows = []
        for _ in range(rounds):
            cpu, server = time.process_time(), _cpu_of(server_pid) if server_pid else 0.0
            start = time.perf_counter()
            for _ in range(calls):
                call()
            wall = time.perf_counter() - start
            server_cpu = _cpu_of(server_pid) - server if server_pid else 0.0
            rows.append((wall, time.process_time() - cpu, server_cpu))
        out[name] = tuple(statistics.median(r[i] for r in rows) / calls * 1e6 for i in range(3))
    return out  # type: ignore[return-value]  # three medians per method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"vgi_rpc from {vgi_rpc.__file__}")
    with serve_pipe(PROTOCOL, BenchImpl()) as proxy:
        for name, (wall, cpu, _) in _measure(proxy, args.calls, args.rounds, None).items():
            print(f"pipe {name:5} wall {wall:7.1f} µs/call   CPU client+server {cpu:7.1f} µs/call")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.sock")
        code = _SERVER.format(here=HERE, path=path)
        server = subprocess.Popen([sys.executable, "-c", code])
        try:
            while not os.path.exists(path):
                time.sleep(0.05)
            with unix_connect(PROTOCOL, path) as proxy:
                results = _measure(proxy, args.calls, args.rounds, server.pid)
        finally:
            server.terminate()
            server.wait()
    for name, (wall, cpu, server_cpu) in results.items():
        print(
            f"unix {name:5} wall {wall:7.1f} µs/call   CPU client {cpu:6.1f} + server "
            f"{server_cpu:6.1f} = {cpu + server_cpu:6.1f} µs/call"
        )


if __name__ == "__main__":
    main()
