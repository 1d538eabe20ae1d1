"""Unary-call benchmark: our ``vgi_rpc`` against the reference (vgi-rpc 0.42.3).

Both packages are imported as ``vgi_rpc``, so they never share an interpreter:
this driver (standard library only) launches ``_unary_child.py`` once per side
and round, under that side's Python 3.13 virtualenv, pinned to CPU 0 with
``taskset -c 0``.  The child's server (a thread for ``serve_pipe``, a process
for ``connect``) inherits the pinning, so client and server share CPU 0.

Usage::

    bash benchmarks/run.sh unary          # sets the venvs up first
    python benchmarks/unary.py [--quick] [--rounds N] [--no-pin]

It reports; it never fails on speed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from _driver_common import (
    GOAL,
    HERE,
    SIDES,
    describe_sides,
    fmt,
    run_benchmark,
)

CHILD = HERE / "_unary_child.py"
RESULTS = HERE / "results" / "unary.json"


@dataclass(frozen=True)
class Row:
    """One line of the report: where to find the figure and how to compare it."""

    transport: str
    case: str
    metric: str
    label: str
    lower_is_better: bool


def _rows(transports: list[str]) -> list[Row]:
    rows: list[Row] = []
    for t in transports:
        for case in ("noop", "add"):
            rows.append(Row(t, case, "median_us", f"{case}() median µs", True))
            rows.append(Row(t, case, "p99_us", f"{case}() p99 µs", True))
        rows.extend(
            Row(t, f"echo_{size}", "mb_per_s", f"echo({size}) MB/s", False)
            for size in ("1KiB", "1MiB", "64MiB")
        )
    return rows


def _aggregate(runs: list[dict[str, Any]], row: Row) -> float:
    """Median over rounds of one figure."""
    return float(statistics.median(r["results"][row.transport][row.case][row.metric] for r in runs))


def _table(
    rows: list[Row], runs: dict[str, list[dict[str, Any]]]
) -> tuple[str, list[dict[str, Any]]]:
    header = (
        f"{'transport':<11} {'row':<20} {'ours':>11} {'reference':>11} {'ratio':>8}  {'goal':<7}"
    )
    lines = [header, "-" * len(header)]
    records: list[dict[str, Any]] = []
    previous = ""
    for row in rows:
        ours = _aggregate(runs["ours"], row)
        ref = _aggregate(runs["ref"], row)
        ratio = ref / ours if row.lower_is_better else ours / ref
        met = ratio >= GOAL
        transport = row.transport if row.transport != previous else ""
        previous = row.transport
        lines.append(
            f"{transport:<11} {row.label:<20} {fmt(ours):>11} {fmt(ref):>11} "
            f"{ratio:>7.2f}x  >={GOAL:.1f}x {'✓' if met else '✗'}"
        )
        records.append(
            {
                "transport": row.transport,
                "case": row.case,
                "metric": row.metric,
                "ours": ours,
                "reference": ref,
                "ratio": ratio,
                "ratio_kind": "ref/ours (speed-up)" if row.lower_is_better else "ours/ref",
                "goal": GOAL,
                "goal_met": met,
            }
        )
    return "\n".join(lines), records


def _cpu_table(transports: list[str], runs: dict[str, list[dict[str, Any]]]) -> str:
    """CPU time per call (median over rounds): where the latency is spent."""
    header = f"{'transport':<11} {'call':<7} {'CPU µs/call':<28} {'ours':>9} {'reference':>10}"
    lines = [header, "-" * len(header)]
    for t in transports:
        for case in ("noop", "add"):
            kinds = [("own_cpu_us_per_call", "client + server thread")]
            if t != "pipe":
                kinds = [
                    ("own_cpu_us_per_call", "client process"),
                    ("server_cpu_us_per_call", "server process"),
                ]
            for key, label in kinds:
                vals = []
                for side in SIDES:
                    figures = [r["results"][t][case].get(key) for r in runs[side]]
                    present = [f for f in figures if f is not None]
                    vals.append(f"{statistics.median(present):,.1f}" if present else "n/a")
                lines.append(f"{t:<11} {case:<7} {label:<28} {vals[0]:>9} {vals[1]:>10}")
    return "\n".join(lines)


def _describe(runs: dict[str, list[dict[str, Any]]], pin: bool, rounds: int) -> str:
    out = describe_sides(runs, pin)
    out.append(
        f"rounds: {rounds} per side, interleaved ours/ref; each figure is the median over rounds"
    )
    first = runs["ours"][0]["results"]
    some = first[next(iter(first))]
    out.append(
        f"latency: per-call wall time of noop() / add(a=1.0, b=2.0), "
        f"{some['noop']['calls']} timed calls after warm-up; median and p99"
    )
    reps = ", ".join(
        f"{case.removeprefix('echo_')} x{some[case]['reps']}" for case in some if "echo" in case
    )
    out.append(
        "throughput: echo(data) payload bytes counted ONE way / elapsed (MB = 1e6 bytes), "
        f"{reps} calls; each call carries the payload to the server and back"
    )
    out.append("ratio: latency ref/ours (speed-up), throughput ours/ref; goal >= 2.0")
    return "\n".join(out)


def main() -> None:
    session = run_benchmark(
        "Unary calls: ours vs vgi-rpc 0.42.3",
        "10x fewer calls, 1 round",
        CHILD,
        RESULTS,
        default_transports="pipe,subprocess,pool,http",
    )
    transports, rounds, pin = session.transports, session.rounds, session.pin
    busy, runs, elapsed = session.busy, session.runs, session.elapsed

    table, records = _table(_rows(transports), runs)
    print()
    print(f"Unary calls: ours vs reference (vgi-rpc {session.reference_version})")
    print(_describe(runs, pin, rounds))
    print()
    print(table)
    print()
    print("CPU time per call during the latency rows (user+system, /proc and getrusage):")
    print(_cpu_table(transports, runs))
    print()
    met = sum(r["goal_met"] for r in records)
    print(f"goal met on {met}/{len(records)} rows; measured in {elapsed:.0f} s")
    if busy is not None:
        print(f"host CPU busy just before the run (other processes): {busy:.0f}%")

    session.save("unary", records)


if __name__ == "__main__":
    main()
