"""Does serving a first call cost "pyarrow plus a few milliseconds"? (issue 14, item 3)

Records the bytes our client sends for one ``add(a=1.0, b=2.0)`` (a worker
behind ``tee``), then times whole processes, interleaved, pinned to one CPU:

- ``pyarrow``: ``python -c "import pyarrow"``;
- ``pyarrow + service``: the same plus ``import _unary_service`` (the user's
  ``Protocol``, which imports ``typing``);
- ``worker``: ``python _unary_worker.py`` reading the recorded request from
  stdin: it imports ``vgi_rpc``, serves the call, sees end of file and exits.

Prints the medians and the worker's cost beyond each baseline. With
``--callgrind`` it also counts instructions (valgrind), which a busy host
does not disturb. Run with the interpreter to measure::

    .venv/bin/python benchmarks/first_call.py [--runs N] [--callgrind] [--python P]

It reports; it never fails on speed.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "_unary_worker.py"


def _env() -> dict[str, str]:
    """The checkout first on the path (like an installed package), nothing from the user's site."""
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}", "PYTHONDONTWRITEBYTECODE": ""}


def record_request(python: str, directory: str) -> Path:
    """The bytes of one ``add()`` as our client writes them (captured with ``tee``)."""
    captured = Path(directory) / "add.bin"
    code = (
        "import sys\n"
        "from vgi_rpc import connect\n"
        "from _unary_service import Bench\n"
        f"command = ['sh', '-c', 'tee {captured} | {python} {WORKER}']\n"
        "with connect(Bench, command) as proxy:\n"
        "    assert proxy.add(a=1.0, b=2.0) == 3.0\n"
    )
    subprocess.run([python, "-c", code], check=True, env=_env(), cwd=HERE)
    if not captured.stat().st_size:
        raise RuntimeError("the client sent nothing to record")
    return captured


def commands(python: str, request: Path) -> dict[str, tuple[list[str], Path | None]]:
    """What each row runs, and the file its stdin reads (``None``: no input)."""
    return {
        "pyarrow": ([python, "-c", "import pyarrow"], None),
        "pyarrow + service": ([python, "-c", "import pyarrow, _unary_service"], None),
        "worker": ([python, str(WORKER)], request),
    }


def _run(command: list[str], stdin: Path | None) -> float:
    with open(stdin or os.devnull, "rb") as source:
        start = time.perf_counter()
        done = subprocess.run(
            command, stdin=source, stdout=subprocess.PIPE, env=_env(), cwd=HERE, check=True
        )
        seconds = time.perf_counter() - start
    if stdin is not None and not done.stdout:
        raise RuntimeError("the worker answered nothing")
    return seconds


def wall_ms(rows: dict[str, tuple[list[str], Path | None]], runs: int) -> dict[str, float]:
    """Median wall time of each row in ms, the rows interleaved run by run."""
    times: dict[str, list[float]] = {name: [] for name in rows}
    for command, stdin in rows.values():  # warm the page cache and .pyc files
        _run(command, stdin)
    for _ in range(runs):
        for name, (command, stdin) in rows.items():
            times[name].append(_run(command, stdin))
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def instructions_m(rows: dict[str, tuple[list[str], Path | None]], repeat: int) -> dict[str, float]:
    """Median callgrind instruction count of each row, in millions."""
    counts: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as out:
        for name, (command, stdin) in rows.items():
            found = []
            for i in range(repeat):
                log = Path(out) / f"{name.replace(' ', '_')}-{i}.log"
                with open(stdin or os.devnull, "rb") as source:
                    subprocess.run(
                        ["valgrind", "--tool=callgrind", f"--log-file={log}",
                         f"--callgrind-out-file={out}/cg.out", *command],
                        stdin=source, stdout=subprocess.DEVNULL, env=_env(), cwd=HERE, check=True,
                    )  # fmt: skip
                match = re.search(r"Collected : (\d+)", log.read_text())
                if match is None:
                    raise RuntimeError(f"no instruction count in {log}")
                found.append(int(match.group(1)) / 1e6)
            counts[name] = statistics.median(found)
    return counts


def _report(title: str, figures: dict[str, float], unit: str) -> None:
    print(f"\n{title}")
    for name, value in figures.items():
        print(f"  {name:20s} {value:9.1f} {unit}")
    worker = figures["worker"]
    for base in ("pyarrow", "pyarrow + service"):
        print(f"  worker beyond {base:18s} {worker - figures[base]:+8.1f} {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per row (interleaved)")
    parser.add_argument("--callgrind", action="store_true", help="also count instructions")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure")
    args = parser.parse_args()
    args.python = os.path.abspath(args.python)  # the rows run in this folder
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # children inherit it
    print(f"CPU affinity: {sorted(os.sched_getaffinity(0))}; python: {args.python}")
    with tempfile.TemporaryDirectory() as directory:
        rows = commands(args.python, record_request(args.python, directory))
        _report(f"wall time, median of {args.runs} (ms)", wall_ms(rows, args.runs), "ms")
        if args.callgrind:
            _report("instructions, median of 3 (millions)", instructions_m(rows, 3), "M")


if __name__ == "__main__":
    main()
