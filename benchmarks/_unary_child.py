"""Measurement child for the unary benchmark; runs under ONE side's virtualenv.

Both our package and the reference are imported as ``vgi_rpc``, so each side is
measured in its own process.  This script uses only API the two packages share
(``serve_pipe``, ``connect``), prints one JSON document on stdout and nothing
else there.  Progress goes to stderr.

Usage: ``python _unary_child.py [--quick]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _child_common import (  # noqa: E402
    cpu_affinity,
    log,
    open_proxy,
    own_cpu_s,
    package_info,
    proc_cpu_s,
)
from _unary_service import Bench, BenchImpl  # noqa: E402

WORKER = os.path.join(HERE, "_unary_worker.py")
# Typed loosely on purpose: the two packages type ``serve_pipe``/``connect`` differently.
PROTOCOL: type[Any] = Bench

# (label, payload size in bytes, timed repetitions)
ECHO_SIZES: list[tuple[str, int, int]] = [
    ("1KiB", 1024, 2000),
    ("1MiB", 1024 * 1024, 200),
    ("64MiB", 64 * 1024 * 1024, 10),
]
LATENCY_CALLS = 2000
LATENCY_WARMUP = 300


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    idx = min(len(sorted_values) - 1, max(0, round(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[idx]


def _latency(
    call: Callable[[], object], calls: int, warmup: int, server_pid: int | None
) -> dict[str, float]:
    """Time ``calls`` individual invocations of ``call`` after ``warmup`` untimed ones.

    Also records CPU time per call: this process's (client, plus the server
    thread for the pipe transport) and, for a subprocess server, the server's.
    """
    for _ in range(warmup):
        call()
    gc.collect()
    cpu0, server0 = own_cpu_s(), proc_cpu_s(server_pid)
    samples: list[float] = []
    append = samples.append
    clock = time.perf_counter_ns
    total_start = clock()
    for _ in range(calls):
        t0 = clock()
        call()
        append((clock() - t0) / 1000.0)
    total_s = (clock() - total_start) / 1e9
    cpu1, server1 = own_cpu_s(), proc_cpu_s(server_pid)
    samples.sort()
    out = {
        "calls": calls,
        "median_us": statistics.median(samples),
        "p99_us": _percentile(samples, 99.0),
        "mean_us": statistics.fmean(samples),
        "min_us": samples[0],
        "calls_per_s": calls / total_s,
        "own_cpu_us_per_call": (cpu1 - cpu0) / calls * 1e6,
    }
    if server0 is not None and server1 is not None:
        out["server_cpu_us_per_call"] = (server1 - server0) / calls * 1e6
    return out


def _throughput(proxy: Any, size: int, reps: int) -> dict[str, float]:
    """Echo a ``size``-byte payload ``reps`` times; MB/s counts payload bytes one way."""
    payload = os.urandom(size)
    # Warm-up, and the only correctness check (kept out of the timed loop).
    result = proxy.echo(data=payload)
    if result != payload:
        raise RuntimeError(f"echo of {size} bytes returned a different payload")
    del result
    extra_warmup = 2 if size < (16 << 20) else 0  # a 64 MiB call is warm-up enough
    for _ in range(min(reps - 1, extra_warmup)):
        proxy.echo(data=payload)
    gc.collect()
    start = time.perf_counter()
    for _ in range(reps):
        proxy.echo(data=payload)
    elapsed = time.perf_counter() - start
    return {
        "bytes": size,
        "reps": reps,
        "elapsed_s": elapsed,
        "mb_per_s": size * reps / elapsed / 1e6,
        "us_per_call": elapsed / reps * 1e6,
    }


def _measure(transport: str, quick: bool) -> dict[str, dict[str, float]]:
    scale = 10 if quick else 1
    rows: dict[str, dict[str, float]] = {}
    with open_proxy(transport, PROTOCOL, BenchImpl(), WORKER) as (proxy, server_pid):
        if proxy.add(a=1.5, b=2.25) != 3.75:
            raise RuntimeError("add(1.5, 2.25) != 3.75")
        log(f"{transport}: noop")
        calls, warmup = LATENCY_CALLS // scale, LATENCY_WARMUP // scale
        rows["noop"] = _latency(proxy.noop, calls, warmup, server_pid)
        log(f"{transport}: add")
        rows["add"] = _latency(lambda: proxy.add(a=1.0, b=2.0), calls, warmup, server_pid)
        for label, size, reps in ECHO_SIZES:
            log(f"{transport}: echo {label}")
            rows[f"echo_{label}"] = _throughput(proxy, size, max(2, reps // scale))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10x fewer calls (smoke test)")
    parser.add_argument(
        "--transports",
        default="pipe,subprocess,pool,http",
        help="comma-separated: pipe,subprocess,pool,http",
    )
    args = parser.parse_args()
    out: dict[str, Any] = {"info": package_info(), "cpu_affinity": cpu_affinity(), "results": {}}
    for transport in args.transports.split(","):
        out["results"][transport] = _measure(transport, args.quick)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
