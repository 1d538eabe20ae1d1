"""Stream benchmark: our ``vgi_rpc`` against the reference (vgi-rpc 0.42.3).

Both packages are imported as ``vgi_rpc``, so they never share an interpreter:
this driver (standard library only) launches ``_streams_child.py`` once per
side and round, under that side's Python 3.13 virtualenv, pinned to CPU 0 with
``taskset -c 0``.  The child's server (a thread for ``serve_pipe``, a process
for ``connect``) inherits the pinning, so client and server share CPU 0.

Rows, per transport: a producer of 1,000 one-row batches (batches/s), a
producer of 100 batches of 1 Mi int64 rows (MB/s of Arrow payload) and 1,000
exchange round trips of a one-row batch (round trips/s).

Usage::

    bash benchmarks/run.sh streams        # sets the venvs up first
    python benchmarks/streams.py [--quick] [--rounds N] [--no-pin]

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
    Runs,
    describe_sides,
    fmt,
    median,
    run_benchmark,
)

CHILD = HERE / "_streams_child.py"
RESULTS = HERE / "results" / "streams.json"

# The performance issue's reference figures, measured earlier on this machine over
# subprocess (the goal is twice the reference measured in the same run, not these).
ISSUE_REFERENCE = {"produce_small": 9_000.0, "produce_large": 720.0, "exchange": 9_900.0}


@dataclass(frozen=True)
class Row:
    """One line of the report: where to find the figure (higher is better)."""

    transport: str
    case: str
    metric: str
    label: str


CASES: list[tuple[str, str, str]] = [
    ("produce_small", "items_per_s", "1-row batches/s"),
    ("produce_large", "mb_per_s", "8 MiB batches MB/s"),
    ("exchange", "items_per_s", "exchange round trips/s"),
]
SHORT = {"produce_small": "1-row batches", "produce_large": "8 MiB batches", "exchange": "exchange"}


def _rows(transports: list[str]) -> list[Row]:
    return [Row(t, case, metric, label) for t in transports for case, metric, label in CASES]


def _figure(runs: list[dict[str, Any]], transport: str, case: str, key: str) -> float | None:
    """Median over rounds of one figure; None when no round has it."""
    values = [r["results"][transport][case].get(key) for r in runs]
    present = [float(v) for v in values if v is not None]
    return median(present) if present else None


def _table(rows: list[Row], runs: Runs) -> tuple[str, list[dict[str, Any]]]:
    header = (
        f"{'transport':<11} {'row':<24} {'ours':>11} {'reference':>11} {'ratio':>8}  {'goal':<7}"
    )
    lines = [header, "-" * len(header)]
    records: list[dict[str, Any]] = []
    previous = ""
    for row in rows:
        ours = _figure(runs["ours"], row.transport, row.case, row.metric)
        ref = _figure(runs["ref"], row.transport, row.case, row.metric)
        assert ours is not None
        assert ref is not None
        ratio = ours / ref
        met = ratio >= GOAL
        transport = row.transport if row.transport != previous else ""
        previous = row.transport
        lines.append(
            f"{transport:<11} {row.label:<24} {fmt(ours):>11} {fmt(ref):>11} "
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
                "ratio_kind": "ours/ref",
                "goal": GOAL,
                "goal_met": met,
            }
        )
    return "\n".join(lines), records


def _cpu_table(transports: list[str], runs: Runs) -> str:
    """CPU time and minor page faults per batch / round trip (median over rounds)."""
    header = (
        f"{'transport':<11} {'row':<14} {'process':<23} "
        f"{'CPU µs/item':>11} {'':>9}  {'faults/item':>11} {'':>9}"
    )
    sub = f"{'':<11} {'':<14} {'':<23} {'ours':>11} {'reference':>9}  {'ours':>11} {'reference':>9}"
    lines = [header, sub, "-" * len(header)]
    for t in transports:
        kinds = [("own", "client + server thread")]
        if t == "subprocess":
            kinds = [("own", "client process"), ("server", "server process")]
        for case, _, _ in CASES:
            for key, label in kinds:
                cells = []
                for metric in ("cpu_us_per_item", "minor_faults_per_item"):
                    for side in SIDES:
                        value = _figure(runs[side], t, case, f"{key}_{metric}")
                        cells.append("n/a" if value is None else fmt(value))
                lines.append(
                    f"{t:<11} {SHORT[case]:<14} {label:<23} "
                    f"{cells[0]:>11} {cells[1]:>9}  {cells[2]:>11} {cells[3]:>9}"
                )
    return "\n".join(lines)


def _describe(runs: Runs, pin: bool, rounds: int) -> str:
    out = describe_sides(runs, pin)
    first = runs["ours"][0]["results"]
    some = first[next(iter(first))]
    small, large, exchange = some["produce_small"], some["produce_large"], some["exchange"]
    out.append(
        f"rounds: {rounds} per side, interleaved ours/ref; each child times every row "
        f"{small['reps']}x after warm-up and reports the median; each figure is the median "
        "over rounds"
    )
    out.append(
        f"1-row batches: `for b in proxy.produce(count={small['items']}, rows=1)` (int64), "
        "timed from the call to the end of the stream"
    )
    out.append(
        f"8 MiB batches: produce(count={large['items']}, rows=1,048,576) (int64, one pre-built "
        "batch re-emitted); MB/s = batches x 8,388,608 payload bytes / elapsed, MB = 1e6 bytes"
    )
    out.append(
        f"exchange: {exchange['items']} x session.exchange(AnnotatedBatch(batch)), a 1-row "
        "float64 batch echoed back; timed from opening the stream to closing it"
    )
    out.append(f"ratio: ours/ref; goal >= {GOAL:.1f}")
    return "\n".join(out)


def _issue_line(transports: list[str], runs: Runs) -> str | None:
    if "subprocess" not in transports:
        return None
    today = []
    for case, metric, _ in CASES:
        ref = _figure(runs["ref"], "subprocess", case, metric)
        today.append(fmt(ref) if ref is not None else "n/a")
    issue = " / ".join(f"{v:,.0f}" for v in ISSUE_REFERENCE.values())
    return (
        f"reference over subprocess, batches/s / MB/s / round trips/s: {' / '.join(today)} "
        f"in this run; {issue} in the issue"
    )


def main() -> None:
    session = run_benchmark(
        "Streams: ours vs the reference vgi-rpc",
        "10x fewer items, 1 rep, 1 round",
        CHILD,
        RESULTS,
        default_transports="pipe,subprocess,pool,http",
    )
    transports, rounds, pin = session.transports, session.rounds, session.pin
    busy, runs, elapsed = session.busy, session.runs, session.elapsed

    table, records = _table(_rows(transports), runs)
    print()
    print(f"Streams: ours vs reference (vgi-rpc {session.reference_version})")
    print(_describe(runs, pin, rounds))
    print()
    print(table)
    issue = _issue_line(transports, runs)
    if issue:
        print(issue)
    print()
    print("CPU time and minor page faults per batch or round trip (getrusage and /proc):")
    print(_cpu_table(transports, runs))
    print()
    met = sum(r["goal_met"] for r in records)
    print(f"goal met on {met}/{len(records)} rows; measured in {elapsed:.0f} s")
    if busy is not None:
        print(f"host CPU busy just before the run (other processes): {busy:.0f}%")
    spread = _spread(transports, runs)
    if spread:
        print(spread)

    session.save("streams", records)


def _spread(transports: list[str], runs: Runs) -> str | None:
    """The widest min-max range over rounds, relative to the median, to flag noisy runs."""
    worst: tuple[float, str] | None = None
    for t in transports:
        for case, metric, label in CASES:
            for side in SIDES:
                values = [float(r["results"][t][case][metric]) for r in runs[side]]
                if len(values) < 2:
                    continue
                rel = (max(values) - min(values)) / statistics.median(values)
                if worst is None or rel > worst[0]:
                    worst = (rel, f"{side} {t} {label}")
    if worst is None:
        return None
    return f"widest spread over rounds (max-min)/median: {worst[0]:.0%} ({worst[1]})"


if __name__ == "__main__":
    main()
