"""Measurement child for the stream benchmark; runs under ONE side's virtualenv.

Both our package and the reference are imported as ``vgi_rpc``, so each side is
measured in its own process.  This script uses only API the two packages share
(``serve_pipe``, ``connect``, ``Stream``, ``AnnotatedBatch``), prints one JSON
document on stdout and nothing else there.  Progress goes to stderr.

Usage: ``python _streams_child.py [--quick] [--transports pipe,subprocess]``
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
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pyarrow as pa  # noqa: E402
from _child_common import (  # noqa: E402
    cpu_affinity,
    log,
    open_proxy,
    own_cpu_s,
    own_minor_faults,
    package_info,
    proc_cpu_s,
    proc_minor_faults,
)
from _streams_service import EXCHANGE_SCHEMA, StreamBench, StreamBenchImpl, int64_batch  # noqa: E402

from vgi_rpc import AnnotatedBatch  # noqa: E402

WORKER = os.path.join(HERE, "_streams_worker.py")
# Typed loosely on purpose: the two packages type ``serve_pipe``/``connect`` differently.
PROTOCOL: type[Any] = StreamBench

SMALL_BATCHES = 1000  # one-row batches per producer stream
LARGE_ROWS = 1 << 20  # int64 rows per large batch: 8 MiB of payload
LARGE_BATCHES = 100  # large batches per producer stream
EXCHANGES = 1000  # round trips per exchange stream
REPS = 5  # timed repetitions of each case per child; the child reports their median


@dataclass(frozen=True)
class Case:
    """One measured case: how many items one timed repetition moves, and their unit."""

    name: str
    items: int  # batches (producers) or round trips (exchange) per repetition
    payload_bytes: int  # Arrow payload bytes per item, for MB/s (0: no MB/s figure)


def _timed(run: Callable[[], int], case: Case, reps: int, server_pid: int | None) -> dict[str, Any]:
    """Run ``reps`` timed repetitions of ``run`` (which returns the items it saw).

    Also records CPU time and minor page faults per item: this process's
    (client, plus the server thread for the pipe transport) and, for a
    subprocess server, the server's.
    """
    gc.collect()
    cpu0, faults0 = own_cpu_s(), own_minor_faults()
    server_cpu0, server_faults0 = proc_cpu_s(server_pid), proc_minor_faults(server_pid)
    elapsed: list[float] = []
    for _ in range(reps):
        start = time.perf_counter()
        seen = run()
        elapsed.append(time.perf_counter() - start)
        if seen != case.items:
            raise RuntimeError(f"{case.name}: expected {case.items} items, got {seen}")
    cpu1, faults1 = own_cpu_s(), own_minor_faults()
    server_cpu1, server_faults1 = proc_cpu_s(server_pid), proc_minor_faults(server_pid)
    items = case.items * reps
    mid = statistics.median(elapsed)
    out: dict[str, Any] = {
        "items": case.items,
        "reps": reps,
        "elapsed_s": elapsed,
        "items_per_s": case.items / mid,
        "us_per_item": mid / case.items * 1e6,
        "own_cpu_us_per_item": (cpu1 - cpu0) / items * 1e6,
        "own_minor_faults_per_item": (faults1 - faults0) / items,
    }
    if case.payload_bytes:
        out["mb_per_s"] = case.payload_bytes * case.items / mid / 1e6
    if server_cpu0 is not None and server_cpu1 is not None:
        out["server_cpu_us_per_item"] = (server_cpu1 - server_cpu0) / items * 1e6
    if server_faults0 is not None and server_faults1 is not None:
        out["server_minor_faults_per_item"] = (server_faults1 - server_faults0) / items
    return out


def _produce(proxy: Any, count: int, rows: int) -> int:
    """Read a whole producer stream of ``count`` batches; return how many arrived."""
    n = 0
    for _ in proxy.produce(count=count, rows=rows):
        n += 1
    return n


def _check_producer(proxy: Any, count: int, rows: int) -> None:
    """Warm-up, and the only correctness check (kept out of the timed loops)."""
    expected = int64_batch(rows)
    got = [item.batch for item in proxy.produce(count=count, rows=rows)]
    if len(got) != count or not all(b.equals(expected) for b in got):
        raise RuntimeError(f"produce(count={count}, rows={rows}) returned other batches")


def _exchange_run(proxy: Any, batch: pa.RecordBatch, n: int) -> int:
    """Open an exchange stream, make ``n`` round trips, close it; return the round trips."""
    done = 0
    with proxy.exchange() as session:
        for _ in range(n):
            session.exchange(AnnotatedBatch(batch))
            done += 1
    return done


def _measure(transport: str, quick: bool) -> dict[str, dict[str, Any]]:
    scale = 10 if quick else 1
    reps = 1 if quick else REPS
    small = Case("produce_small", SMALL_BATCHES // scale, 0)
    large = Case("produce_large", LARGE_BATCHES // scale, LARGE_ROWS * 8)
    exchange = Case("exchange", EXCHANGES // scale, 0)
    batch = pa.RecordBatch.from_pydict({"x": [1.5]}, schema=EXCHANGE_SCHEMA)
    rows: dict[str, dict[str, Any]] = {}
    with open_proxy(transport, PROTOCOL, StreamBenchImpl(), WORKER) as (proxy, server_pid):
        log(f"{transport}: producer, {small.items} one-row batches")
        _check_producer(proxy, 100, 1)
        _produce(proxy, small.items, 1)  # warm-up at full length
        rows[small.name] = _timed(lambda: _produce(proxy, small.items, 1), small, reps, server_pid)

        log(f"{transport}: producer, {large.items} batches of {LARGE_ROWS} int64 rows")
        _check_producer(proxy, 3, LARGE_ROWS)
        rows[large.name] = _timed(
            lambda: _produce(proxy, large.items, LARGE_ROWS), large, reps, server_pid
        )

        log(f"{transport}: exchange, {exchange.items} round trips")
        with proxy.exchange() as session:
            answer = session.exchange(AnnotatedBatch(batch))
            if not answer.batch.equals(batch):
                raise RuntimeError("exchange() answered with another batch")
            for _ in range(exchange.items - 1):  # warm-up at full length
                session.exchange(AnnotatedBatch(batch))
        rows[exchange.name] = _timed(
            lambda: _exchange_run(proxy, batch, exchange.items), exchange, reps, server_pid
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10x fewer items, 1 rep (smoke)")
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
