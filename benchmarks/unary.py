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

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHILD = HERE / "_unary_child.py"
RESULTS = HERE / "results" / "unary.json"
SIDES = ("ours", "ref")
GOAL = 2.0  # the goal: half the reference's latency, twice its throughput


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


def _cpu_busy_percent(interval: float = 1.0) -> float | None:
    """Share of all CPUs busy over ``interval`` seconds (``/proc/stat``); None off Linux."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 == total0:
        return None
    return 100.0 * (1.0 - (idle1 - idle0) / (total1 - total0))


def _python_of(side: str, override: str | None) -> Path:
    if override:
        return Path(override)
    return HERE / f".venv-{side}" / "bin" / "python"


def _ensure_venvs(pythons: dict[str, Path]) -> None:
    if all(p.exists() for p in pythons.values()):
        return
    print("virtualenvs missing: running benchmarks/setup.sh", file=sys.stderr, flush=True)
    subprocess.run(["bash", str(HERE / "setup.sh")], check=True)


def _run_child(python: Path, pin: bool, quick: bool, transports: list[str]) -> dict[str, Any]:
    cmd = [str(python), "-E", "-s", str(CHILD), "--transports", ",".join(transports)]
    if quick:
        cmd.append("--quick")
    if pin:
        cmd = ["taskset", "-c", "0", *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run(
        cmd, cwd=HERE, env=env, stdout=subprocess.PIPE, check=True, timeout=600, text=True
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _aggregate(runs: list[dict[str, Any]], row: Row) -> float:
    """Median over rounds of one figure."""
    return float(statistics.median(r["results"][row.transport][row.case][row.metric] for r in runs))


def _fmt(value: float) -> str:
    return f"{value:,.1f}" if value < 10_000 else f"{value:,.0f}"


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
            f"{transport:<11} {row.label:<20} {_fmt(ours):>11} {_fmt(ref):>11} "
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
            if t == "subprocess":
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
    out = []
    for side, name in (("ours", "ours     "), ("ref", "reference")):
        info = runs[side][0]["info"]
        out.append(
            f"{name}: vgi_rpc {info['vgi_rpc_version']} ({info['vgi_rpc_file']}), "
            f"Python {info['python']}, pyarrow {info['pyarrow_version']}"
        )
    if pin:
        affinity = runs["ours"][0]["cpu_affinity"]
        out.append(
            f"pinning: both sides ran with `taskset -c 0` (child affinity {affinity}); "
            "client and server (thread or subprocess) shared CPU 0"
        )
    else:
        out.append("pinning: none (--no-pin); client and server free to use any CPU")
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
    parser = argparse.ArgumentParser(description="Unary calls: ours vs vgi-rpc 0.42.3")
    parser.add_argument("--quick", action="store_true", help="10x fewer calls, 1 round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per side (default 5)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    parser.add_argument("--transports", default="pipe,subprocess")
    parser.add_argument("--ours-python", help="interpreter with our vgi_rpc (3.13)")
    parser.add_argument("--ref-python", help="interpreter with vgi-rpc 0.42.3 (3.13)")
    parser.add_argument("--json", type=Path, default=RESULTS, help="raw results file")
    args = parser.parse_args()

    transports = [t for t in args.transports.split(",") if t]
    rounds = 1 if args.quick else max(1, args.rounds)
    pin = not args.no_pin
    if pin and shutil.which("taskset") is None:
        print("taskset not found: running unpinned", file=sys.stderr)
        pin = False
    pythons = {
        "ours": _python_of("ours", args.ours_python),
        "ref": _python_of("ref", args.ref_python),
    }
    _ensure_venvs(pythons)

    busy = _cpu_busy_percent()
    if busy is not None and busy > 10.0:
        print(
            f"warning: the host was {busy:.0f}% busy before the run; figures may be noisy",
            file=sys.stderr,
        )

    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    started = time.perf_counter()
    for i in range(rounds):
        for side in SIDES:
            print(f"round {i + 1}/{rounds}: {side}", file=sys.stderr, flush=True)
            runs[side].append(_run_child(pythons[side], pin, args.quick, transports))
    elapsed = time.perf_counter() - started

    table, records = _table(_rows(transports), runs)
    print()
    print("Unary calls: ours vs reference (vgi-rpc 0.42.3)")
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

    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "unary",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "node": platform.node()},
        "pinned_cpu0": pin,
        "host_busy_percent_before": busy,
        "rounds": rounds,
        "quick": args.quick,
        "summary": records,
        "runs": runs,
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"raw results: {args.json}")


if __name__ == "__main__":
    main()
