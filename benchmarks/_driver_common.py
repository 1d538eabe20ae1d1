"""Shared pieces of the benchmark drivers (``unary.py``, ``streams.py``); standard library only.

A driver launches one measurement child per side and round, under that side's
Python 3.13 virtualenv, optionally pinned to CPU 0 with ``taskset -c 0``, and
compares the medians over rounds.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIDES = ("ours", "ref")
GOAL = 2.0  # the performance issue's goal: twice the reference (half its latency)

Runs = dict[str, list[dict[str, Any]]]  # side -> one child document per round


def cpu_busy_percent(interval: float = 1.0) -> float | None:
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


def warn_if_busy() -> float | None:
    """Measure how busy the host is now; warn on stderr above 10%."""
    busy = cpu_busy_percent()
    if busy is not None and busy > 10.0:
        print(
            f"warning: the host was {busy:.0f}% busy before the run; figures may be noisy",
            file=sys.stderr,
        )
    return busy


def python_of(side: str, override: str | None) -> Path:
    """The interpreter of one side: ``override`` or ``benchmarks/.venv-<side>/bin/python``."""
    if override:
        return Path(override)
    return HERE / f".venv-{side}" / "bin" / "python"


def ensure_venvs(pythons: dict[str, Path]) -> None:
    """Run ``setup.sh`` when an interpreter is missing."""
    if all(p.exists() for p in pythons.values()):
        return
    print("virtualenvs missing: running benchmarks/setup.sh", file=sys.stderr, flush=True)
    subprocess.run(["bash", str(HERE / "setup.sh")], check=True)


def resolve_pin(no_pin: bool) -> bool:
    """Whether to pin: unless ``--no-pin``, and only when ``taskset`` exists."""
    if no_pin:
        return False
    if shutil.which("taskset") is None:
        print("taskset not found: running unpinned", file=sys.stderr)
        return False
    return True


def run_child(
    python: Path, child: Path, pin: bool, quick: bool, transports: list[str]
) -> dict[str, Any]:
    """Run one measurement child and return the JSON document it prints."""
    cmd = [str(python), "-E", "-s", str(child), "--transports", ",".join(transports)]
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


def run_rounds(run_one: Callable[[str], dict[str, Any]], rounds: int) -> tuple[Runs, float]:
    """Interleave the sides (ours, ref, ours, ...) for ``rounds``; return runs and seconds."""
    runs: Runs = {side: [] for side in SIDES}
    started = time.perf_counter()
    for i in range(rounds):
        for side in SIDES:
            print(f"round {i + 1}/{rounds}: {side}", file=sys.stderr, flush=True)
            runs[side].append(run_one(side))
    return runs, time.perf_counter() - started


def fmt(value: float) -> str:
    """A figure with one decimal below 10,000 and none above."""
    return f"{value:,.1f}" if value < 10_000 else f"{value:,.0f}"


def describe_sides(runs: Runs, pin: bool) -> list[str]:
    """Report lines: each side's package and interpreter, and the CPU pinning."""
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
    return out


def host_info() -> dict[str, Any]:
    """Machine, CPU count and node name for the results file."""
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "node": platform.node()}


def median(values: list[float]) -> float:
    """The median as a float."""
    return float(statistics.median(values))


@dataclass
class Session:
    """One driver run: its options and every side's child documents."""

    args: argparse.Namespace
    transports: list[str]
    rounds: int
    pin: bool
    busy: float | None
    runs: Runs
    elapsed: float

    @property
    def reference_version(self) -> str:
        """The reference package version the ``ref`` side ran."""
        return str(self.runs["ref"][0]["info"]["vgi_rpc_version"])

    def save(self, benchmark: str, records: list[dict[str, Any]], **extra: object) -> None:
        """Write the raw results file (``--json``) and say where it is."""
        path: Path = self.args.json
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "benchmark": benchmark,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "host": host_info(),
            "pinned_cpu0": self.pin,
            "host_busy_percent_before": self.busy,
            "rounds": self.rounds,
            "quick": self.args.quick,
            "reference_version": self.reference_version,
            "ours_version": self.runs["ours"][0]["info"]["vgi_rpc_version"],
            **extra,
            "summary": records,
            "runs": self.runs,
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"raw results: {path}")


def run_benchmark(
    description: str,
    quick_help: str,
    child: Path,
    results: Path,
    *,
    default_rounds: int = 5,
    default_transports: str = "pipe,subprocess",
) -> Session:
    """Parse the common command line, set up both sides and run the interleaved rounds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--rounds",
        type=int,
        default=default_rounds,
        help=f"rounds per side (default {default_rounds})",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPU 0")
    parser.add_argument("--transports", default=default_transports)
    parser.add_argument("--ours-python", help="interpreter with our vgi_rpc (3.13)")
    parser.add_argument(
        "--ref-python",
        help="interpreter with the reference vgi-rpc (3.13; default .venv-ref, 0.42.3)",
    )
    parser.add_argument("--json", type=Path, default=results, help="raw results file")
    args = parser.parse_args()
    transports = [t for t in args.transports.split(",") if t]
    rounds = 1 if args.quick else max(1, args.rounds)
    pin = resolve_pin(args.no_pin)
    pythons = {
        "ours": python_of("ours", args.ours_python),
        "ref": python_of("ref", args.ref_python),
    }
    ensure_venvs(pythons)
    busy = warn_if_busy()
    runs, elapsed = run_rounds(
        lambda side: run_child(pythons[side], child, pin, args.quick, transports), rounds
    )
    return Session(args, transports, rounds, pin, busy, runs, elapsed)
