"""Transfer benchmark: echo of a 64 MiB and a 1 GiB Arrow batch, ours vs the reference.

Each side runs ``_transfer_child.py`` under its own Python 3.13 virtualenv,
pinned to CPU 0 (``taskset -c 0``); the child's worker process inherits the
pinning. Transports: ``pipe`` (worker stdin/stdout), ``shm`` (the same plus a
shared-memory segment), ``shm-rebuilt`` (shm, but the worker emits a new batch
object, which rules out our pass-through of an unchanged input), ``unix`` and
``tcp`` (loopback). Figures are GB/s of payload (batch bytes one way /
round-trip time, GB = 1e9 bytes) and that rate as a fraction of this machine's
memcpy bandwidth (the median of the copy rate every child measured this run).

Usage::

    bash benchmarks/run.sh transfer        # sets the venvs up first
    python benchmarks/transfer.py [--quick] [--rounds N] [--no-pin] [--transports pipe,shm]

It reports; it never fails on speed.
"""

from __future__ import annotations

from typing import Any

from _driver_common import HERE, Runs, describe_sides, median, run_benchmark

CHILD = HERE / "_transfer_child.py"
RESULTS = HERE / "results" / "transfer.json"
SIZES = ("64MiB", "1GiB")
SHM_GOAL_FRACTION = 0.5  # the goal for shm at 1 GiB, besides matching the reference


def _figure(runs: list[dict[str, Any]], transport: str, size: str, key: str) -> float | None:
    values = [r["results"][transport].get(size, {}).get(key) for r in runs]
    present = [float(v) for v in values if v is not None]
    return median(present) if present else None


def _table(transports: list[str], runs: Runs, memcpy: float) -> tuple[str, list[dict[str, Any]]]:
    header = (
        f"{'transport':<11} {'batch':<6} {'ours GB/s':>10} {'of memcpy':>10} "
        f"{'ref GB/s':>10} {'of memcpy':>10} {'ours/ref':>9}"
    )
    lines = [header, "-" * len(header)]
    records = []
    for transport in transports:
        first = True
        for size in SIZES:
            ours = _figure(runs["ours"], transport, size, "gb_per_s")
            ref = _figure(runs["ref"], transport, size, "gb_per_s")
            if ours is None or ref is None:
                continue
            ours_f, ref_f = ours / memcpy, ref / memcpy
            lines.append(
                f"{transport if first else '':<11} {size:<6} {ours:>10.2f} {ours_f:>10.0%} "
                f"{ref:>10.2f} {ref_f:>10.0%} {ours / ref:>8.2f}x"
            )
            first = False
            records.append(
                {
                    "transport": transport,
                    "size": size,
                    "ours_gb_per_s": ours,
                    "ours_memcpy_fraction": ours_f,
                    "reference_gb_per_s": ref,
                    "reference_memcpy_fraction": ref_f,
                    "ratio": ours / ref,
                }
            )
    return "\n".join(lines), records


def _goal(records: list[dict[str, Any]]) -> str | None:
    for r in records:
        if r["transport"] == "shm" and r["size"] == "1GiB":
            faster = r["ratio"] >= 1.0
            enough = r["ours_memcpy_fraction"] >= SHM_GOAL_FRACTION
            return (
                f"goal (shm, 1 GiB): at least the reference {'✓' if faster else '✗'} "
                f"({r['ratio']:.2f}x); at least {SHM_GOAL_FRACTION:.0%} of memcpy "
                f"{'✓' if enough else '✗'} ({r['ours_memcpy_fraction']:.0%})"
            )
    return None


def main() -> None:
    session = run_benchmark(
        "Transfer: ours vs vgi-rpc 0.42.3",
        "64 MiB only, 1 rep, 1 round",
        CHILD,
        RESULTS,
        default_rounds=2,
        default_transports="pipe,shm,shm-rebuilt,unix,tcp,http",
    )
    runs, transports = session.runs, session.transports
    memcpy = median([r["memcpy_gb_per_s"] for side in runs for r in runs[side]])
    table, records = _table(transports, runs, memcpy)
    print()
    print(
        f"Transfer: echo of one large Arrow batch, ours vs reference (vgi-rpc {session.reference_version})"
    )
    for line in describe_sides(runs, session.pin):
        print(line)
    print(
        f"rounds: {session.rounds} per side, interleaved; each child times 5 echoes of 64 MiB "
        "and 3 of 1 GiB after 2 warm-ups and reports the median; figures are medians over rounds"
    )
    print(
        "batch: one float64 column; exchange stream, the worker emits its input; "
        "GB/s = batch bytes / round-trip seconds (the payload crosses twice per echo)"
    )
    print(
        f"memcpy: 1 GiB bytearray copy (256 MiB with --quick), best of 3, in every child; "
        f"median {memcpy:.2f} GB/s "
        "(an echo through shared memory costs at least one copy each way unless forwarded)"
    )
    print()
    print(table)
    goal = _goal(records)
    if goal:
        print(goal)
    print(f"measured in {session.elapsed:.0f} s")
    if session.busy is not None:
        print(f"host CPU busy just before the run (other processes): {session.busy:.0f}%")
    session.save("transfer", records, memcpy_gb_per_s=memcpy)


if __name__ == "__main__":
    main()
