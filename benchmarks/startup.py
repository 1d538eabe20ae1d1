"""Start-up benchmark: what a worker costs before it serves, ours vs the reference.

Per side (ours, vgi-rpc 0.42.3, and 0.52.2 when its interpreter is found),
interleaved over rounds, every process pinned to CPU 0 (``taskset -c 0``):

- ``python -c "import pyarrow"`` and ``python -c "from vgi_rpc import run_server"``
  as whole processes (wall time, interpreter start-up included);
- with ``-X importtime``: pyarrow's own import, and what ``from vgi_rpc import
  run_server`` imports beyond the modules ``import pyarrow`` loads (sum of
  their self times), the figure the start-up test bounds;
- spawn + one call + close: ``connect(Bench, [python, _unary_worker.py])``,
  ``add(a=1.0, b=2.0)``, leave the block (worker reaped), timed in a child; as
  wall time and as the CPU time client and worker spent (steadier on a shared host).

Ratios are reference time / our time (above 1: we start faster).

    python benchmarks/startup.py [--rounds N] [--runs N] [--no-pin]
        [--ours-python P] [--ref-python P] [--ref52-python P] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _driver_common import (
    HERE,
    ensure_venvs,
    host_info,
    python_of,
    resolve_pin,
    warn_if_busy,
)

CHILD = HERE / "_startup_child.py"
RESULTS = HERE / "results" / "startup.json"
WORKER_IMPORT = "from vgi_rpc import run_server"
LABELS = {"ours": "ours", "ref": "0.42.3", "ref52": "0.52.2"}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def _cmd(python: Path, args: list[str], pin: bool) -> list[str]:
    cmd = [str(python), "-E", "-s", *args]
    return ["taskset", "-c", "0", *cmd] if pin else cmd


def _process_s(python: Path, code: str, pin: bool) -> float:
    started = time.perf_counter()
    subprocess.run(_cmd(python, ["-c", code], pin), cwd="/", env=_env(), check=True)
    return time.perf_counter() - started


def importtime(python: Path, code: str, pin: bool) -> dict[str, tuple[int, int]]:
    """``module -> (self us, cumulative us)`` from one ``-X importtime`` run of ``code``."""
    proc = subprocess.run(
        _cmd(python, ["-X", "importtime", "-c", code], pin),
        cwd="/",
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, tuple[int, int]] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|")
        found[name.strip()] = (int(own), int(cumulative))
    return found


def _beyond_pyarrow_ms(python: Path, pin: bool, runs: int) -> tuple[float, float]:
    """(pyarrow's import, what the worker import adds beyond pyarrow's modules), in ms, min of runs."""
    pyarrow_ms, beyond_ms = [], []
    for _ in range(runs):
        base = importtime(python, "import pyarrow", pin)
        pyarrow_ms.append(base["pyarrow"][1] / 1000)
        worker = importtime(python, WORKER_IMPORT, pin)
        beyond_ms.append(sum(own for name, (own, _) in worker.items() if name not in base) / 1000)
    return min(pyarrow_ms), min(beyond_ms)


def measure(python: Path, pin: bool, runs: int) -> dict[str, Any]:
    """One round for one side."""
    pyarrow_ms, beyond_ms = _beyond_pyarrow_ms(python, pin, runs)
    child = subprocess.run(
        _cmd(python, [str(CHILD), "--spawns", str(runs)], pin),
        cwd=HERE,
        env=_env(),
        stdout=subprocess.PIPE,
        check=True,
        text=True,
        timeout=600,
    )
    document = json.loads(child.stdout)
    return {
        "info": document["info"],
        "process_pyarrow_ms": statistics.median(
            _process_s(python, "import pyarrow", pin) * 1000 for _ in range(runs)
        ),
        "process_worker_import_ms": statistics.median(
            _process_s(python, WORKER_IMPORT, pin) * 1000 for _ in range(runs)
        ),
        "importtime_pyarrow_ms": pyarrow_ms,
        "importtime_beyond_pyarrow_ms": beyond_ms,
        "spawn_call_close_ms": statistics.median(document["spawn_s"]) * 1000,
        "spawn_call_close_cpu_ms": statistics.median(document["spawn_cpu_s"]) * 1000,
    }


ROWS = [
    ("process_pyarrow_ms", 'process: python -c "import pyarrow"'),
    ("process_worker_import_ms", f'process: python -c "{WORKER_IMPORT}"'),
    ("importtime_pyarrow_ms", "importtime: pyarrow"),
    ("importtime_beyond_pyarrow_ms", "importtime: worker import beyond pyarrow's modules"),
    ("spawn_call_close_ms", "spawn + add() + close (subprocess)"),
    ("spawn_call_close_cpu_ms", "same, CPU time of client + worker"),
]


def table(medians: dict[str, dict[str, float]]) -> str:
    """A markdown table: one row per figure, one column per side, ratios against ours."""
    sides = list(medians)
    refs = [s for s in sides if s != "ours"]
    head = ["measure (ms, median of rounds)", *[LABELS[s] for s in sides]]
    head += [f"{LABELS[s]} / ours" for s in refs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label in ROWS:
        ours = medians["ours"][key]
        cells = [label, *[f"{medians[s][key]:.1f}" for s in sides]]
        cells += [f"{medians[s][key] / ours:.2f}x" if ours > 0 else "-" for s in refs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10, help="processes per figure and round")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--ours-python")
    parser.add_argument("--ref-python", help="interpreter with vgi-rpc 0.42.3")
    parser.add_argument("--ref52-python", help="interpreter with vgi-rpc 0.52.2")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    pin = resolve_pin(args.no_pin)
    pythons = {
        "ours": python_of("ours", args.ours_python),
        "ref": python_of("ref", args.ref_python),
    }
    ensure_venvs(pythons)
    ref52 = Path(args.ref52_python) if args.ref52_python else HERE.parent / ".refvenv52/bin/python"
    if ref52.exists():
        pythons["ref52"] = ref52
    else:
        print(f"no 0.52.2 interpreter at {ref52}: comparing with 0.42.3 only", file=sys.stderr)
    busy = warn_if_busy()
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in pythons}
    for i in range(max(1, args.rounds)):
        for side, python in pythons.items():
            print(f"round {i + 1}/{args.rounds}: {side}", file=sys.stderr, flush=True)
            runs[side].append(measure(python, pin, max(1, args.runs)))
    medians = {
        side: {key: statistics.median(r[key] for r in rounds) for key, _ in ROWS}
        for side, rounds in runs.items()
    }
    print()
    for side, rounds in runs.items():
        info = rounds[0]["info"]
        print(
            f"{LABELS[side]:>6}: vgi_rpc {info['vgi_rpc_version']} ({info['vgi_rpc_file']}), "
            f"Python {info['python']}, pyarrow {info['pyarrow_version']}"
        )
    print(f"pinned to CPU 0: {pin}; rounds {args.rounds}, {args.runs} processes per figure")
    print()
    print(table(medians))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "startup",
        "host": host_info(),
        "pinned_cpu0": pin,
        "host_busy_percent_before": busy,
        "medians": medians,
        "runs": runs,
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nraw results: {args.json}")


if __name__ == "__main__":
    main()
