"""Measurement child for the HTTP benchmark; runs under ONE side's virtualenv.

Starts ``_http_worker.py`` (waitress on loopback) as a subprocess, which
inherits this process's CPU pinning, and measures through ``http_connect``:
unary latency (``noop``, ``add``) and exchange round trips per second. Prints
one JSON document on stdout.

Usage: ``python _http_child.py [--quick]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pyarrow as pa  # noqa: E402
from _child_common import cpu_affinity, log, own_cpu_s, package_info, proc_cpu_s  # noqa: E402
from _http_service import HttpBench  # noqa: E402
from _streams_service import EXCHANGE_SCHEMA  # noqa: E402
from _unary_child import _latency  # noqa: E402

from vgi_rpc import AnnotatedBatch  # noqa: E402
from vgi_rpc.http import http_connect  # noqa: E402

PROTOCOL: type[Any] = HttpBench
LATENCY_CALLS = 2000
LATENCY_WARMUP = 200
ROUND_TRIPS = 1000


def _round_trips(proxy: Any, count: int, server_pid: int) -> dict[str, float]:
    """One exchange stream of ``count`` turns (after a warm-up stream)."""
    batch = AnnotatedBatch(pa.RecordBatch.from_pydict({"x": [1.5]}, schema=EXCHANGE_SCHEMA))
    with proxy.exchange() as session:
        for _ in range(50):
            session.exchange(batch)
    gc.collect()
    cpu0, server0 = own_cpu_s(), proc_cpu_s(server_pid)
    start = time.perf_counter()
    answer = None
    with proxy.exchange() as session:
        for _ in range(count):
            answer = session.exchange(batch)
    elapsed = time.perf_counter() - start
    cpu1, server1 = own_cpu_s(), proc_cpu_s(server_pid)
    if answer is None or answer.batch.column(0)[0].as_py() != 1.5:
        raise RuntimeError("exchange echoed a different value")
    out = {
        "round_trips": count,
        "elapsed_s": elapsed,
        "round_trips_per_s": count / elapsed,
        "us_per_round_trip": elapsed / count * 1e6,
        "own_cpu_us_per_call": (cpu1 - cpu0) / count * 1e6,
    }
    if server0 is not None and server1 is not None:
        out["server_cpu_us_per_call"] = (server1 - server0) / count * 1e6
    return out


def _measure(quick: bool) -> dict[str, dict[str, float]]:
    scale = 10 if quick else 1
    worker = subprocess.Popen(
        [sys.executable, "-E", "-s", os.path.join(HERE, "_http_worker.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        line = worker.stdout.readline().strip()
        if not line.startswith("PORT:"):
            raise RuntimeError(f"the HTTP worker printed {line!r}, not PORT:<n>")
        url = f"http://127.0.0.1:{line[5:]}"
        rows: dict[str, dict[str, float]] = {}
        with http_connect(PROTOCOL, url, prefix="/vgi") as proxy:
            if proxy.add(a=1.5, b=2.25) != 3.75:
                raise RuntimeError("add(1.5, 2.25) != 3.75")
            calls, warmup = LATENCY_CALLS // scale, LATENCY_WARMUP // scale
            log("http: noop")
            rows["noop"] = _latency(proxy.noop, calls, warmup, worker.pid)
            log("http: add")
            rows["add"] = _latency(lambda: proxy.add(a=1.0, b=2.0), calls, warmup, worker.pid)
            log("http: exchange")
            rows["exchange"] = _round_trips(proxy, ROUND_TRIPS // scale, worker.pid)
        return rows
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        if worker.stdout is not None:
            worker.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10x fewer calls (smoke test)")
    parser.add_argument("--transports", default="http", help="only 'http'")
    args = parser.parse_args()
    out: dict[str, Any] = {"info": package_info(), "cpu_affinity": cpu_affinity(), "results": {}}
    out["results"]["http"] = _measure(args.quick)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
