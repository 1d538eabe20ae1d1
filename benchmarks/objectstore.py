"""Object store: ours against Vineyard 0.24.2, each pinned to one CPU, ratios printed.

    python benchmarks/objectstore.py            # driver (our .venv); needs benchmarks/.venv-vineyard
    python benchmarks/objectstore.py --quick    # fewer repetitions, no 512 MiB remote get
    python benchmarks/objectstore.py --rounds 3 --only local   # best of 3 alternating rounds
    python benchmarks/objectstore.py --only local --baseline ../main
        # also ours as another checkout (with its own .venv) has it: before / after

Each side runs in its own child process under its own interpreter (ours:
this one; Vineyard: ``benchmarks/.venv-vineyard``, Python 3.12), started with
``taskset -c 0`` so the client and the server it starts share one CPU. The
child starts its server, runs the workloads and prints one JSON object.
Benchmarks report; nothing here fails on speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VINEYARD_PYTHON = os.path.join(ROOT, "benchmarks", ".venv-vineyard", "bin", "python")
MiB = 1 << 20
SIZES = {"1 MiB": 1 * MiB, "64 MiB": 64 * MiB, "512 MiB": 512 * MiB}


def _timed(call: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median seconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


# ---------------------------------------------------------------- the two sides


class Side:
    """One store, seen through a local and a remote client."""

    name = ""
    local: Any
    remote: Any
    remote_http: Any = None

    def delete(self, client: Any, oid: Any) -> None:
        client.delete(oid)

    def name_object(self, client: Any, oid: Any, name: str) -> None:
        client.put_name(oid, name)


class Ours(Side):
    name = "ours"

    @contextlib.contextmanager
    def running(self, directory: str) -> Iterator[Ours]:
        from vgi_rpc.services import objectstore

        socket = os.path.join(directory, "ours.sock")
        command = [sys.executable, "-m", "vgi_rpc.cli", "objectstore", "serve", "--socket", socket]
        command += ["--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--memory", "6GiB"]
        command += ["--store", os.path.join(directory, "store")]
        # the server runs the same checkout as this child (``--baseline`` may be another one)
        root = os.path.dirname(os.path.dirname(os.path.abspath(objectstore.__file__)))
        root = os.path.dirname(os.path.dirname(root))
        env = {**os.environ, "PYTHONPATH": root}
        server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=root)
        assert server.stdout is not None
        lines = {}
        for line in server.stdout:
            key, _, value = line.strip().partition(":")
            lines[key] = value
            if key == "STORE":
                break
        host, port = lines["TCP"].rsplit(":", 1)
        self.local = objectstore.connect(socket)
        self.remote = objectstore.connect(host=host, port=int(port))
        self.remote_http = objectstore.connect(url=lines["HTTP"].removesuffix("/vgi"))
        try:
            yield self
        finally:
            for client in (self.local, self.remote, self.remote_http):
                client.close()
            server.terminate()
            server.wait()
            server.stdout.close()


class Vineyard(Side):
    name = "vineyard"

    @contextlib.contextmanager
    def running(self, directory: str) -> Iterator[Vineyard]:
        import vineyard  # type: ignore[import-not-found]  # only in benchmarks/.venv-vineyard

        socket = os.path.join(directory, "vineyard.sock")
        command = [
            sys.executable,
            "-m",
            "vineyard",
            "--socket",
            socket,
            "--size",
            "6Gi",
            "--meta",
            "local",
        ]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.local = vineyard.connect(socket)
                self.remote = vineyard.connect(host="127.0.0.1", port=9600)
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        try:
            yield self
        finally:
            with contextlib.suppress(Exception):
                self.local.close()
                self.remote.close()
            server.terminate()
            server.wait()

    def name_object(self, client: Any, oid: Any, name: str) -> None:
        client.persist(oid)  # Vineyard refuses names on objects that are not persisted
        client.put_name(oid, name)


# ---------------------------------------------------------------- workloads


def _memcpy_gbps() -> float:
    import numpy as np

    source = np.random.default_rng(0).random(64 * MiB // 8)
    target = np.empty_like(source)
    target[:] = 0  # fault the pages in first: memcpy's own speed
    seconds, _ = _timed(lambda: np.copyto(target, source), 5)
    return source.nbytes / seconds / 1e9


def _put_get(side: Side, client: Any, value: Any, nbytes: int, repeat: int) -> dict[str, float]:
    side.delete(client, client.put(value))  # warm-up, untimed (both sides)
    put_times, get_times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        oid = client.put(value)
        put_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        got = client.get(oid)
        get_times.append(time.perf_counter() - start)
        del got
        side.delete(client, oid)
    put_s, get_s = statistics.median(put_times), statistics.median(get_times)
    return {
        "put_gbps": nbytes / put_s / 1e9,
        "get_ms": get_s * 1e3,
        "get_gbps": nbytes / get_s / 1e9,
    }


def _remote_get(side: Side, client: Any, value: Any, nbytes: int, repeat: int) -> dict[str, float]:
    oid = side.local.put(value)
    client.get(oid)  # warm-up, untimed (both sides)
    times = []
    for _ in range(repeat):  # each value is dropped before the next get, as a consumer would
        start = time.perf_counter()
        got = client.get(oid)
        times.append(time.perf_counter() - start)
        del got
    seconds = statistics.median(times)
    side.delete(side.local, oid)
    put_times = []
    for _ in range(repeat):  # a single put is at the mercy of one scheduling hiccup
        start = time.perf_counter()
        oid = client.put(value)
        put_times.append(time.perf_counter() - start)
        side.delete(side.local, oid)
    put_s = statistics.median(put_times)
    return {
        "get_gbps": nbytes / seconds / 1e9,
        "get_ms": seconds * 1e3,
        "put_gbps": nbytes / put_s / 1e9,
    }


def _small_ops(side: Side, client: Any, count: int, tag: str) -> dict[str, float]:
    start = time.perf_counter()
    ids = [client.put(i) for i in range(count)]
    put_s = time.perf_counter() - start
    put_median, oid = _timed(lambda: client.put(12345), min(count, 200))
    get_median, _ = _timed(lambda: client.get(oid), min(count, 200))
    side.name_object(client, oid, f"bench-{tag}")
    name_median, _ = _timed(lambda: client.get_name(f"bench-{tag}"), min(count, 200))
    for i in ids:
        side.delete(client, i)
    return {
        "put_per_s": count / put_s,
        "put_ms": put_median * 1e3,
        "get_ms": get_median * 1e3,
        "get_name_ms": name_median * 1e3,
    }


def child(kind: str, quick: bool, only: str | None = None) -> dict[str, Any]:
    side: Ours | Vineyard = Ours() if kind == "ours" else Vineyard()
    results: dict[str, Any] = {"memcpy_gbps": _memcpy_gbps()}
    directory = tempfile.mkdtemp(prefix="osbench-")
    try:
        with side.running(directory):
            if only != "remote":
                _local(side, results, quick)
            if only != "local":
                _remote(side, results, quick, kind)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return results


def _local(side: Side, results: dict[str, Any], quick: bool) -> None:
    import numpy as np
    import pyarrow as pa

    for label, nbytes in SIZES.items():
        array = np.random.default_rng(1).random(nbytes // 8)
        repeat = 3 if nbytes > 64 * MiB else (5 if nbytes > MiB else 30)
        results[f"local {label}"] = _put_get(
            side, side.local, array, nbytes, 2 if quick else repeat
        )
    rows = 1_000_000 if quick else 10_000_000
    table = pa.table({"id": np.arange(rows), "value": np.random.default_rng(2).random(rows)})
    results["local table"] = _put_get(side, side.local, table, table.nbytes, 3)
    results["local small"] = _small_ops(side, side.local, 1000 if quick else 10_000, "local")


def _remote(side: Side, results: dict[str, Any], quick: bool, kind: str) -> None:
    import numpy as np

    remote_sizes = {"1 MiB": MiB, "64 MiB": 64 * MiB} if quick else SIZES
    for label, nbytes in remote_sizes.items():
        array = np.random.default_rng(3).random(nbytes // 8)
        repeat = 3
        results[f"remote {label}"] = _remote_get(side, side.remote, array, nbytes, repeat)
        if side.remote_http is not None:
            results[f"http {label}"] = _remote_get(side, side.remote_http, array, nbytes, repeat)
    small = 20 if kind == "vineyard" else 300
    results["remote small"] = _small_ops(side, side.remote, small, "remote")
    if side.remote_http is not None:
        results["http small"] = _small_ops(side, side.remote_http, small, "http")


# ---------------------------------------------------------------- driver


def _run_child(
    python: str,
    kind: str,
    quick: bool,
    pin: bool,
    only: str | None = None,
    root: str = ROOT,
) -> dict[str, Any]:
    """Run one side's child; ``root``: the checkout whose code it imports."""
    command = [python, os.path.abspath(__file__), "--child", kind] + (["--quick"] if quick else [])
    command += ["--only", only] if only else []
    if pin and shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": root},
        cwd=root,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


ROWS = [
    # (label, result key, metric, unit, higher is better)
    ("memcpy (reference)", "memcpy_gbps", None, "GB/s", True),
    *[(f"local put {s}", f"local {s}", "put_gbps", "GB/s", True) for s in SIZES],
    *[(f"local get {s}", f"local {s}", "get_ms", "ms", False) for s in SIZES],
    ("local put table 10M rows", "local table", "put_gbps", "GB/s", True),
    ("local get table 10M rows", "local table", "get_ms", "ms", False),
    ("local put 10,000 small", "local small", "put_per_s", "ops/s", True),
    ("local get small (median)", "local small", "get_ms", "ms", False),
    ("local get_name (median)", "local small", "get_name_ms", "ms", False),
    *[(f"remote get {s} (TCP)", f"remote {s}", "get_gbps", "GB/s", True) for s in SIZES],
    *[(f"remote put {s} (TCP)", f"remote {s}", "put_gbps", "GB/s", True) for s in SIZES],
    ("remote put small (median)", "remote small", "put_ms", "ms", False),
    ("remote get small (median)", "remote small", "get_ms", "ms", False),
    ("remote get_name (median)", "remote small", "get_name_ms", "ms", False),
]
HTTP_ROWS = [
    *[(f"HTTP get {s}", f"http {s}", "get_gbps", "GB/s") for s in SIZES],
    *[(f"HTTP put {s}", f"http {s}", "put_gbps", "GB/s") for s in SIZES],
    ("HTTP put small (median)", "http small", "put_ms", "ms"),
    ("HTTP get small (median)", "http small", "get_ms", "ms"),
    ("HTTP get_name (median)", "http small", "get_name_ms", "ms"),
]


def _best(a: Any, b: Any, key: str = "") -> Any:
    """Merge two rounds' results: per figure the better one (rates up, times down)."""
    if isinstance(a, dict):
        return {k: _best(a[k], b[k], k) if k in b else a[k] for k in a} | {
            k: v for k, v in b.items() if k not in a
        }
    return min(a, b) if key.endswith("_ms") else max(a, b)


def _value(results: dict[str, Any], key: str, metric: str | None) -> float | None:
    entry = results.get(key)
    if entry is None:
        return None
    return float(entry if metric is None else entry[metric])


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def _ratio(a: float | None, b: float | None, higher: bool) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x" if higher else f"{b / a:.2f}x faster"


def report(
    ours: dict[str, Any], vineyard: dict[str, Any], before: dict[str, Any] | None = None
) -> str:
    if before is None:
        lines = ["| workload | ours | Vineyard 0.24.2 | ours vs Vineyard |", "|---|---|---|---|"]
    else:
        lines = [
            "| workload | ours before | ours | Vineyard 0.24.2 | before vs Vineyard "
            "| ours vs Vineyard |",
            "|---|---|---|---|---|---|",
        ]
    for label, key, metric, unit, higher in ROWS:
        if not any(_value(r, key, metric) is not None for r in (ours, vineyard)):
            continue  # a half not run (--only)
        a, b = _value(ours, key, metric), _value(vineyard, key, metric)
        if before is None:
            lines.append(
                f"| {label} | {_fmt(a)} {unit} | {_fmt(b)} {unit} | {_ratio(a, b, higher)} |"
            )
            continue
        c = _value(before, key, metric)
        lines.append(
            f"| {label} | {_fmt(c)} {unit} | {_fmt(a)} {unit} | {_fmt(b)} {unit} "
            f"| {_ratio(c, b, higher)} | {_ratio(a, b, higher)} |"
        )
    lines.append("")
    lines.append("| ours over HTTP (Vineyard has no HTTP) | |")
    lines.append("|---|---|")
    for label, key, metric, unit in HTTP_ROWS:
        if _value(ours, key, metric) is not None:
            lines.append(f"| {label} | {_fmt(_value(ours, key, metric))} {unit} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", choices=("ours", "vineyard"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--json", help="also write both sides' raw results here")
    parser.add_argument("--only", choices=("local", "remote"), help="one half of the workloads")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the two sides alternately this many times; report each figure's best round "
        "(steadier on a shared machine)",
    )
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also run ours from this other checkout (with its .venv), shown as 'ours before'",
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.quick, args.only)))
        return
    if not os.path.exists(VINEYARD_PYTHON):
        raise SystemExit(
            "benchmarks/.venv-vineyard is missing: ~/.pyenv/versions/3.12.1/bin/python -m venv "
            "benchmarks/.venv-vineyard && benchmarks/.venv-vineyard/bin/pip install vineyard==0.24.2 "
            "'setuptools<70' numpy pyarrow"
        )
    ours: dict[str, Any] = {}
    vineyard: dict[str, Any] = {}
    before: dict[str, Any] = {}
    for _ in range(max(1, args.rounds)):
        if args.baseline:
            base = os.path.abspath(args.baseline)
            python = os.path.join(base, ".venv", "bin", "python")
            got = _run_child(python, "ours", args.quick, not args.no_pin, args.only, base)
            before = _best(before, got) if before else got
        got = _run_child(sys.executable, "ours", args.quick, not args.no_pin, args.only)
        ours = _best(ours, got) if ours else got
        got = _run_child(VINEYARD_PYTHON, "vineyard", args.quick, not args.no_pin, args.only)
        vineyard = _best(vineyard, got) if vineyard else got
    print(report(ours, vineyard, before or None))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"ours": ours, "vineyard": vineyard, "before": before}, out, indent=2)


if __name__ == "__main__":
    main()
