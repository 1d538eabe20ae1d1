"""benchmarks/plot.py: rows from both references are joined, and judged against the faster one."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _plot_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_plot", ROOT / "benchmarks" / "plot.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _write(path: Path, summary: list[dict[str, object]]) -> None:
    path.write_text(json.dumps({"summary": summary}))


def test_rows_join_versions_and_take_the_faster_reference(tmp_path: Path) -> None:
    plot = _plot_module()
    row = {"transport": "pool", "case": "noop", "metric": "median_us", "ours": 40.0}
    _write(tmp_path / "unary-0.42.3.json", [{**row, "ratio": 3.5}])
    _write(tmp_path / "unary-0.52.2.json", [{**row, "ratio": 1.5}])
    echo = {"transport": "http", "size": "64MiB", "ours_gb_per_s": 1.2}
    _write(tmp_path / "transfer-0.42.3.json", [{**echo, "ratio": 2.5}])
    noop = {"case": "noop", "metric": "median_us", "ours": 500.0}
    _write(tmp_path / "http_bench-0.52.2.json", [{**noop, "ratio": 2.2}])
    (tmp_path / "startup.json").write_text(
        json.dumps(
            {
                "medians": {
                    "ours": {"spawn_call_close_ms": 100.0},
                    "ref": {"spawn_call_close_ms": 150.0},
                    "ref52": {"spawn_call_close_ms": 250.0},
                }
            }
        )
    )
    rows = plot.collect(tmp_path)
    by_label = {r.label: r for r in rows}
    noop = by_label["unary · pool · noop median"]
    assert noop.ratios == {"0.42.3": 3.5, "0.52.2": 1.5}
    assert noop.worst == 1.5
    assert by_label["transfer · http · echo 64MiB"].ours == "1.20 GB/s"
    assert by_label["http · http · noop median"].ratios == {"0.52.2": 2.2}
    spawn = by_label["startup · subprocess · spawn + call + close"]
    assert spawn.ratios == {"0.42.3": 1.5, "0.52.2": 2.5}
    assert spawn.goal == 1.2
    table = plot.markdown(rows)
    assert "| unary | pool | noop median | 40.0 µs | 3.50x | 1.50x | 1.50x | ≥ 2x ✗ |" in table
    assert "3 of 4 rows meet their goal against the faster reference." in table
