"""Start-up: ``import vgi_rpc`` and a worker serving its first call load nothing heavy.

Judged from ``python -X importtime`` in a subprocess: the modules imported beyond
those pyarrow itself loads (to import, and to convert a Python value) must not
include a heavy dependency or a part of vgi_rpc a worker does not use; their
summed import time must stay within a generous bound relative to pyarrow's.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from tests._startup_worker import Calc
from tests.conftest import ROOT, worker_env
from vgi_rpc import StderrMode, connect

# Never imported at start-up (prefixes of module names), unless pyarrow itself imported them.
HEAVY = (
    "numpy",
    "pandas",
    "falcon",
    "httpx",
    "httpcore",
    "waitress",
    "zstandard",
    "cryptography",
    "opentelemetry",
    "faiss",
    "argparse",
    "multiprocessing",
    "hashlib",
    "vgi_rpc.http",
    "vgi_rpc.otel",
    "vgi_rpc.cli",
    "vgi_rpc.options",
    "vgi_rpc.services",
    "vgi_rpc.introspect",
    "vgi_rpc.access_log",
)
# What a worker never needs: the client side, other transports, describe and reflection.
NOT_IN_A_WORKER = (
    "subprocess",
    "vgi_rpc.rpc._client",
    "vgi_rpc.rpc._shm_client",
    "vgi_rpc.rpc._describe",
    "vgi_rpc.rpc._reflection",
    "vgi_rpc.rpc._fingerprint",
    "vgi_rpc.transports._pool",
    "vgi_rpc.transports._socket",
    "vgi_rpc.transports._subprocess",
    "vgi_rpc.transports._pipe",
)
if sys.version_info >= (3, 13):
    NOT_IN_A_WORKER += ("typing_extensions",)


def parse_importtime(stderr: str, column: int = 0) -> dict[str, int]:
    """``module -> self time in µs`` (``column=1``: cumulative) from ``-X importtime`` output."""
    found = {}
    for line in stderr.splitlines():
        if line.startswith("import time:") and "[us]" not in line:
            *times, name = line[len("import time:") :].split("|")
            found[name.strip()] = int(times[column])
    return found


def importtime(code: str, column: int = 0) -> dict[str, int]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=worker_env(),
    )
    return parse_importtime(proc.stderr, column)


def _named(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


# What pyarrow loads to import and to turn a Python value into an array (which may
# import pandas when it is installed: pyarrow's doing, not ours).
PYARROW_BASELINE = "import pyarrow as pa; pa.array([1.0])"


def test_importing_vgi_rpc_loads_nothing_beyond_itself() -> None:
    base = set(importtime("import pyarrow"))
    loaded = set(importtime("import vgi_rpc"))
    assert _named(loaded - base, HEAVY + NOT_IN_A_WORKER) == []
    # every public name is imported on first use: the package itself costs nothing
    assert sorted(m for m in loaded if m.startswith("vgi_rpc")) == ["vgi_rpc", "vgi_rpc._lazy"]


def test_the_public_names_still_resolve_in_a_fresh_interpreter() -> None:
    code = "import vgi_rpc; [getattr(vgi_rpc, n) for n in vgi_rpc.__all__ if 'http' not in n]"
    importtime(code)  # raises CalledProcessError if a lazy name does not resolve


def _worker_imports(logger_name: str, caplog: pytest.LogCaptureFixture) -> dict[str, int]:
    caplog.set_level(logging.INFO, logger=logger_name)
    cmd = [sys.executable, "-X", "importtime", "-m", "tests._startup_worker"]
    with connect(
        Calc,
        cmd,
        env=worker_env(),
        stderr=StderrMode.PIPE,
        stderr_logger=logging.getLogger(logger_name),
    ) as calc:
        assert calc.add(a=1.0, b=2.0) == 3.0
    lines = [r.getMessage() for r in caplog.records if r.name == logger_name]
    return parse_importtime("\n".join(lines))


def test_a_worker_serving_a_call_loads_only_what_serving_needs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = set(importtime(PYARROW_BASELINE))
    worker = _worker_imports("tests.startup.worker", caplog)
    assert "vgi_rpc.rpc._server" in worker  # the output really is the worker's imports
    beyond = set(worker) - base
    assert _named(beyond, HEAVY + NOT_IN_A_WORKER) == []


def test_a_workers_own_imports_cost_a_fraction_of_pyarrows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Not a wall-clock assertion: the ratio of two import costs measured side by side,
    # best of three, with a generous bound. ``import pyarrow`` as a whole (what it
    # imports included: numpy when installed) against the self times of every module
    # the worker imported beyond what pyarrow loads. About 0.25 in the dev venv (with
    # numpy), 0.9 without numpy; the reference 0.42.3 is about twice ours.
    ratios = []
    base = importtime(PYARROW_BASELINE)
    for attempt in range(3):
        pyarrow_us = importtime("import pyarrow", column=1)["pyarrow"]
        base = importtime(PYARROW_BASELINE)
        worker = _worker_imports(f"tests.startup.worker{attempt}", caplog)
        beyond_us = sum(own for name, own in worker.items() if name not in base)
        ratios.append(beyond_us / max(pyarrow_us, 1))
    bound = 0.75 if "numpy" in base else 2.0
    assert min(ratios) < bound, ratios
