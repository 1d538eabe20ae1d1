"""HTTP benchmark: our ``vgi_rpc`` against the reference (vgi-rpc 0.42.3) over HTTP.

Each side serves the same service at ``/vgi`` on waitress (4 threads, loopback)
with its own ``make_wsgi_app`` and calls it with its own ``http_connect``.
The driver (standard library only) runs ``_http_child.py`` once per side and
round under that side's Python 3.13 virtualenv, pinned to CPU 0 with
``taskset -c 0``; the child's server process inherits the pinning, so client
and server share CPU 0.

Named ``http_bench`` because a module named ``http`` would shadow the standard
library's for every script in this folder.

Usage::

    bash benchmarks/run.sh http_bench
    python benchmarks/http_bench.py [--quick] [--rounds N] [--no-pin]

It reports; it never fails on speed.
"""

from __future__ import annotations

import statistics
from typing import Any

from _driver_common import GOAL, HERE, SIDES, describe_sides, fmt, run_benchmark

CHILD = HERE / "_http_child.py"
RESULTS = HERE / "results" / "http.json"

# (case, metric, label, lower is better)
ROWS = [
    ("noop", "median_us", "noop() median µs", True),
    ("noop", "p99_us", "noop() p99 µs", True),
    ("add", "median_us", "add() median µs", True),
    ("exchange", "round_trips_per_s", "exchange round trips/s", False),
]


def _figure(runs: list[dict[str, Any]], case: str, metric: str) -> float:
    return float(statistics.median(r["results"]["http"][case][metric] for r in runs))


def main() -> None:
    session = run_benchmark(
        "HTTP: ours vs vgi-rpc 0.42.3",
        "10x fewer calls, 1 round",
        CHILD,
        RESULTS,
        default_transports="http",
    )
    runs = session.runs
    header = f"{'row':<24} {'ours':>10} {'reference':>10} {'ratio':>8}  goal"
    lines = [header, "-" * len(header)]
    records = []
    for case, metric, label, lower in ROWS:
        ours, ref = _figure(runs["ours"], case, metric), _figure(runs["ref"], case, metric)
        ratio = ref / ours if lower else ours / ref
        lines.append(
            f"{label:<24} {fmt(ours):>10} {fmt(ref):>10} {ratio:>7.2f}x  "
            f">={GOAL:.1f}x {'✓' if ratio >= GOAL else '✗'}"
        )
        records.append(
            {"case": case, "metric": metric, "ours": ours, "reference": ref, "ratio": ratio}
        )
    cpu = [f"{'CPU µs per call':<24} {'ours':>10} {'reference':>10}"]
    for case in ("noop", "exchange"):
        for key, who in (("own_cpu_us_per_call", "client"), ("server_cpu_us_per_call", "server")):
            values = [fmt(_figure(runs[side], case, key)) for side in SIDES]
            cpu.append(f"{case + ' ' + who:<24} {values[0]:>10} {values[1]:>10}")
    print()
    print(f"HTTP (waitress, loopback): ours vs reference (vgi-rpc {session.reference_version})")
    print("\n".join(describe_sides(runs, session.pin)))
    calls = runs["ours"][0]["results"]["http"]["noop"]["calls"]
    trips = runs["ours"][0]["results"]["http"]["exchange"]["round_trips"]
    print(
        f"rounds: {session.rounds} per side, interleaved; latency over {calls} calls after "
        f"warm-up; one exchange stream of {trips} round trips; medians over rounds"
    )
    print("ratio: latency ref/ours, round trips ours/ref; goal >= 2.0")
    print()
    print("\n".join(lines))
    print()
    print("\n".join(cpu))
    print(f"measured in {session.elapsed:.0f} s")
    session.save("http", records)


if __name__ == "__main__":
    main()
