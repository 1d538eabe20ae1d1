"""Measurement child for the start-up benchmark; runs under ONE side's virtualenv.

Times ``connect(Bench, [python, _unary_worker.py])`` + one ``add`` call + leaving
the block (the worker is reaped), ``--spawns`` times after one untimed warm-up:
wall time, and the CPU time of client and worker together.
Prints one JSON document on stdout. Public API shared by both packages only.

Usage: ``python _startup_child.py [--spawns N]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _child_common import cpu_affinity, package_info  # noqa: E402
from _unary_service import Bench  # noqa: E402

from vgi_rpc import connect  # noqa: E402

WORKER = [sys.executable, "-E", "-s", os.path.join(HERE, "_unary_worker.py")]
PROTOCOL: type[Any] = Bench


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and of its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def spawn_call_close() -> tuple[float, float]:
    """(wall, CPU) seconds from spawning a worker to having reaped it, one call in between.

    The CPU figure is the client's and the worker's together (the worker is reaped
    inside the block's exit, so its usage is counted): unlike wall time it does not
    grow when other processes share the CPU.
    """
    cpu, started = _cpu_s(), time.perf_counter()
    with connect(PROTOCOL, WORKER) as bench:
        assert bench.add(a=1.0, b=2.0) == 3.0
    return time.perf_counter() - started, _cpu_s() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spawns", type=int, default=10)
    args = parser.parse_args()
    spawn_call_close()  # warm the page cache and the client's own first-call paths
    times = [spawn_call_close() for _ in range(args.spawns)]
    document = {
        "info": package_info(),
        "cpu_affinity": cpu_affinity(),
        "spawn_s": [wall for wall, _ in times],
        "spawn_cpu_s": [cpu for _, cpu in times],
    }
    json.dump(document, sys.stdout)


if __name__ == "__main__":
    main()
