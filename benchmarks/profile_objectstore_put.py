"""Where does a local put of 1 MiB spend its time? (our package only)

Runs the object store server in a subprocess with timers wrapped around its
put handlers, and a local client that puts, gets and deletes a float64 array
in a loop (the ``local 1 MiB`` row of ``objectstore.py``), with timers around
the steps of its put. Then the same loop twice more:

- ``edges only``: the client writes the stream's head and tail but not the
  array's bytes (the server checks a stream of a known shape by its edges, so
  it is still accepted): what a put costs when copying costs nothing;
- ``copy elsewhere``: edges only, plus a 1 MiB copy between two buffers of the
  client's own: the copy's effect on the caches without the put's copy.

Medians in µs, in place (the caches as the loop leaves them, not warmed by a
micro-benchmark). Run it pinned, like the benchmark::

    taskset -c 0 .venv/bin/python benchmarks/profile_objectstore_put.py [--puts N]

Targets that no longer exist are skipped; edit the lists to follow the code.
It reports; it never fails on speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

MiB = 1 << 20
SERVER_TARGETS = ["seal_next", "_seal", "_checked", "_allocate", "_take_pending", "delete_one"]
CLIENT_TARGETS = ["encode", "write_into"]
MAPPING_TARGETS = ["target", "reusable"]
WRITER = "write_into"  # the client's copy into the file (replaced by the variants)

# The server side: wraps handlers with timers, dumps medians to a file twice a second.
_SERVER = """
import json, statistics, sys, threading, time
from collections import defaultdict
from vgi_rpc.services.objectstore import server
times = defaultdict(list)
def timed(name, f):
    def wrapper(*args, **kwargs):
        start = time.perf_counter_ns()
        try:
            return f(*args, **kwargs)
        finally:
            times[name].append(time.perf_counter_ns() - start)
    return wrapper
for name in sys.argv[2].split(","):
    if hasattr(server.ObjectStoreServer, name):
        setattr(server.ObjectStoreServer, name, timed(name, getattr(server.ObjectStoreServer, name)))
def dump():
    while True:
        time.sleep(0.5)
        snapshot = {k: (statistics.median(v) / 1e3, len(v)) for k, v in list(times.items()) if v}
        with open(sys.argv[1] + ".tmp", "w") as f:
            json.dump(snapshot, f)
        import os; os.replace(sys.argv[1] + ".tmp", sys.argv[1])
def reset():
    for line in sys.stdin:
        times.clear()
threading.Thread(target=dump, daemon=True).start()
threading.Thread(target=reset, daemon=True).start()
from vgi_rpc.cli import main
sys.exit(main(sys.argv[3:]))
"""


_ABSENT = object()


class Timers:
    """Inclusive wall time of wrapped callables, by name."""

    def __init__(self) -> None:
        self.times: dict[str, list[int]] = defaultdict(list)
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str) -> None:
        if not hasattr(owner, name):
            print(f"(no {name} to time: skipped)")
            return
        original: Callable[..., Any] = getattr(owner, name)
        self._undo.append((owner, name, owner.__dict__.get(name, _ABSENT)))
        times = self.times[name]

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return original(*args, **kwargs)
            finally:
                times.append(time.perf_counter_ns() - start)

        setattr(owner, name, wrapper)

    def unwrap(self) -> None:
        for owner, name, before in reversed(self._undo):
            if before is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, before)
        self._undo.clear()

    def medians(self) -> dict[str, tuple[float, int]]:
        return {k: (statistics.median(v) / 1e3, len(v)) for k, v in self.times.items() if v}


class _TimedProxy:
    """The client's proxy with ``seal_next`` timed (the client reads ``proxy`` per call)."""

    def __init__(self, proxy: Any, timers: Timers) -> None:
        self._proxy = proxy
        self._times = timers.times["seal_next"]

    def seal_next(self, *args: Any) -> Any:
        start = time.perf_counter_ns()
        try:
            return self._proxy.seal_next(*args)
        finally:
            self._times.append(time.perf_counter_ns() - start)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._proxy, name)


def _loop(client: Any, array: Any, puts: int, timers: Timers) -> None:
    for _ in range(puts):
        start = time.perf_counter_ns()
        oid = client.put(array)
        timers.times["put (whole)"].append(time.perf_counter_ns() - start)
        got = client.get(oid)
        del got
        client.delete(oid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--puts", type=int, default=2000)
    args = parser.parse_args()

    import numpy as np

    from vgi_rpc.services import objectstore
    from vgi_rpc.services.objectstore import client as client_module

    print(f"CPU affinity: {sorted(os.sched_getaffinity(0))}")
    directory = tempfile.mkdtemp(prefix="osput-")
    socket_path = os.path.join(directory, "s.sock")
    stats_path = os.path.join(directory, "server.json")
    command = [sys.executable, "-c", _SERVER, stats_path, ",".join(SERVER_TARGETS)]
    command += ["objectstore", "serve", "--socket", socket_path, "--memory", "2GiB"]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        for line in server.stdout:
            if line.startswith("STORE"):
                break
        client = objectstore.connect(socket_path)
        array = np.random.default_rng(1).random(MiB // 8)
        client.delete(client.put(array))
        real_write_into = getattr(client_module, WRITER)
        spare = np.ones(MiB // 8)
        scratch = np.empty_like(spare)

        def edges_only(encoded: Any, buffer: Any) -> None:
            layout = encoded.layout()
            view = memoryview(buffer).cast("B")
            start = len(layout.prefix)
            end = start + encoded.body.nbytes
            view[:start] = layout.prefix
            view[end : end + len(layout.suffix)] = layout.suffix
            view.release()

        def copy_elsewhere(encoded: Any, buffer: Any) -> None:
            edges_only(encoded, buffer)
            np.copyto(scratch, spare)

        variants: list[tuple[str, Callable[[Any, Any], None]]] = [
            ("put", real_write_into),
            ("edges only", edges_only),
            ("copy elsewhere", copy_elsewhere),
        ]
        results: dict[str, dict[str, tuple[float, int]]] = {}
        for label, writer in variants:
            setattr(client_module, WRITER, writer)
            timers = Timers()
            for name in CLIENT_TARGETS:
                timers.wrap(client_module, name)
            for name in MAPPING_TARGETS:
                timers.wrap(client._mappings, name)
            client._tls.proxy = _TimedProxy(client.proxy, timers)
            _loop(client, array, 50, Timers())  # settle
            for times in timers.times.values():
                times.clear()
            server.stdin.write("reset\n")
            server.stdin.flush()
            time.sleep(0.1)
            _loop(client, array, args.puts, timers)
            time.sleep(1.2)
            with open(stats_path) as f:
                remote = {f"server {k}": tuple(v) for k, v in json.load(f).items()}
            results[label] = {**timers.medians(), **remote}
            timers.unwrap()  # for the next variant
            client._tls.proxy = client._tls.proxy._proxy
        setattr(client_module, WRITER, real_write_into)
        client.close()
    finally:
        server.stdin.close()
        server.terminate()
        server.wait()
    names = sorted({n for r in results.values() for n in r}, key=_order)
    print(f"\nlocal put of a 1 MiB float64 array, {args.puts} puts; medians in µs")
    print(f"{'step':28s}" + "".join(f"{label:>16s}" for label, _ in variants))
    for name in names:
        cells = [results[label].get(name) for label, _ in variants]
        print(f"{name:28s}" + "".join(f"{c[0]:16.1f}" if c else f"{'-':>16s}" for c in cells))


def _order(name: str) -> tuple[int, str]:
    """Client steps in the order a put takes them, then the server's handlers."""
    steps = ["encode", "target", "reusable", "write_into", "seal_next", "put (whole)"]
    return (steps.index(name), "") if name in steps else (len(steps), name)


if __name__ == "__main__":
    main()
