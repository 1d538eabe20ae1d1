"""Combine the benchmark results against both references into one table and one plot.

Reads ``benchmarks/results/{unary,streams,transfer,http_bench}-VERSION.json`` (written by
``run.sh``, one file per reference version) and ``results/startup.json``; prints a
markdown table with the ratio against each reference and against the faster of
them, and draws ``benchmarks/ratios.png`` (a ratio above 1 means ours is faster).

    python benchmarks/plot.py [--results DIR] [--png PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REFERENCES = ("0.42.3", "0.52.2")
BENCHMARKS = ("unary", "streams", "transfer", "http_bench")  # results/NAME-VERSION.json
GOAL = 2.0  # against the faster reference, per #14; spawn + call + close asks for 1.2
SPAWN_GOAL = 1.2
UNITS = {"median_us": "µs", "p99_us": "µs", "mb_per_s": "MB/s", "items_per_s": "items/s"}


@dataclass
class Row:
    """One measured row and its ratio against each reference version."""

    benchmark: str
    transport: str
    case: str
    ours: str = ""
    ratios: dict[str, float] = field(default_factory=dict)
    goal: float = GOAL

    @property
    def label(self) -> str:
        return f"{self.benchmark} · {self.transport} · {self.case}"

    @property
    def worst(self) -> float:
        """The ratio against the faster reference."""
        return min(self.ratios.values())


def _ours(record: dict[str, Any]) -> str:
    if "ours_gb_per_s" in record:
        return f"{record['ours_gb_per_s']:.2f} GB/s"
    unit = UNITS.get(record.get("metric", ""), record.get("metric", ""))
    value = float(record["ours"])
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def _case(benchmark: str, record: dict[str, Any]) -> str:
    if benchmark == "transfer":
        return f"echo {record['size']}"
    metric = record.get("metric", "")
    return f"{record['case']} {metric.replace('_us', '').replace('_per_s', '/s')}".strip()


def collect(results: Path) -> list[Row]:
    """Every row found in the results files, in file order, keyed across versions."""
    rows: dict[tuple[str, str, str], Row] = {}
    for benchmark in BENCHMARKS:
        for version in REFERENCES:
            path = results / f"{benchmark}-{version}.json"
            if not path.exists():
                continue
            label = benchmark.removesuffix("_bench")
            for record in json.loads(path.read_text())["summary"]:
                transport = record.get("transport", "http")
                key = (label, transport, _case(benchmark, record))
                row = rows.setdefault(key, Row(*key, ours=_ours(record)))
                row.ratios[version] = float(record["ratio"])
    startup = results / "startup.json"
    if startup.exists():
        medians = json.loads(startup.read_text())["medians"]
        ours = medians["ours"]["spawn_call_close_ms"]
        row = Row(
            "startup", "subprocess", "spawn + call + close", f"{ours:.0f} ms", goal=SPAWN_GOAL
        )
        for side, version in (("ref", "0.42.3"), ("ref52", "0.52.2")):
            if side in medians:
                row.ratios[version] = medians[side]["spawn_call_close_ms"] / ours
        rows[(row.benchmark, row.transport, row.case)] = row
    return [r for r in rows.values() if r.ratios]


def markdown(rows: list[Row]) -> str:
    """The combined table: ours, the ratio against each reference and the faster one."""
    head = ["benchmark", "transport", "row", "ours", *(f"vs {v}" for v in REFERENCES)]
    lines = ["| " + " | ".join([*head, "vs faster", "goal"]) + " |"]
    lines.append("|" + "---|" * (len(head) + 2))
    for r in rows:
        cells = [r.benchmark, r.transport, r.case, r.ours]
        cells += [f"{r.ratios[v]:.2f}x" if v in r.ratios else "-" for v in REFERENCES]
        cells += [f"{r.worst:.2f}x", f"≥ {r.goal:g}x {'✓' if r.worst >= r.goal else '✗'}"]
        lines.append("| " + " | ".join(cells) + " |")
    met = sum(r.worst >= r.goal for r in rows)
    lines.append(f"\n{met} of {len(rows)} rows meet their goal against the faster reference.")
    return "\n".join(lines)


def plot(rows: list[Row], png: Path) -> None:
    """Horizontal bars per row, one per reference, on a log scale, with the goal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = 0.38
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.5))
    for i, version in enumerate(REFERENCES):
        ys = [n + (i - 0.5) * height for n in range(len(rows))]
        xs = [r.ratios.get(version, 0.0) for r in rows]
        ax.barh(ys, xs, height=height, label=f"vs vgi-rpc {version}")
    ax.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.axvline(GOAL, color="red", linestyle="--", linewidth=0.8, label=f"goal {GOAL:g}x")
    ax.set_xlabel("ours vs reference (above 1: ours is faster; log scale)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--png", type=Path, default=HERE / "ratios.png")
    parser.add_argument("--markdown", type=Path, default=HERE / "results" / "summary.md")
    args = parser.parse_args()
    rows = collect(args.results)
    if not rows:
        raise SystemExit(f"plot.py: no results in {args.results} (run benchmarks/run.sh first)")
    table = markdown(rows)
    print(table)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(table + "\n")
    plot(rows, args.png)
    print(f"\nplot: {args.png}\ntable: {args.markdown}")


if __name__ == "__main__":
    main()
