"""Measurement child for the start-up benchmark; runs under ONE side's virtualenv.

Times ``connect(Bench, [python, _unary_worker.py])`` + one ``add`` call + leaving
the block (the worker is reaped), ``--spawns`` times after one untimed warm-up.
Prints one JSON document on stdout. Public API shared by both packages only.

Usage: ``python _startup_child.py [--spawns N]``
"""

from __future__ import annotations

import argparse
import json
import os
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


def spawn_call_close() -> float:
    """Seconds from spawning a worker to having reaped it, with one call in between."""
    started = time.perf_counter()
    with connect(PROTOCOL, WORKER) as bench:
        assert bench.add(a=1.0, b=2.0) == 3.0
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spawns", type=int, default=10)
    args = parser.parse_args()
    spawn_call_close()  # warm the page cache and the client's own first-call paths
    times = [spawn_call_close() for _ in range(args.spawns)]
    document = {"info": package_info(), "cpu_affinity": cpu_affinity(), "spawn_s": times}
    json.dump(document, sys.stdout)


if __name__ == "__main__":
    main()
