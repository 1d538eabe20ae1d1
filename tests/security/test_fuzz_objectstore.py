"""The object store's check of put values, fuzzed within CI's budget.

``scripts/fuzz_objectstore.py`` is the long-running form (``--inputs 1000000``);
this runs it with a small budget and fails on any finding: a crash of a
reader of an accepted object, an untyped exception, or readers disagreeing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT, worker_env

INPUTS = 6000
SEED = 20261126


def test_object_store_value_fuzz() -> None:
    script = os.path.join(ROOT, "scripts", "fuzz_objectstore.py")
    run = subprocess.run(
        [sys.executable, script, "--inputs", str(INPUTS), "--seed", str(SEED)],
        capture_output=True,
        text=True,
        env=worker_env(),
        timeout=600,
        check=False,
    )
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{INPUTS} inputs (seed {SEED})" in run.stdout
    assert re.search(r": 0 findings$", run.stdout.strip())
    counts = re.search(r"refused (\d+), accepted (\d+)", run.stdout)
    assert counts is not None
    refused, accepted = int(counts.group(1)), int(counts.group(2))
    assert refused + accepted == INPUTS
    # both outcomes are exercised: the mutations reach past the check and are stopped by it
    assert refused > INPUTS // 10
    assert accepted > INPUTS // 10


def test_the_harness_finds_the_crashes_the_check_prevents() -> None:
    """Without the server's check, readers of the same inputs crash: the harness reports each."""
    script = os.path.join(ROOT, "scripts", "fuzz_objectstore.py")
    run = subprocess.run(
        [sys.executable, script, "--inputs", "1500", "--seed", str(SEED), "--unchecked"],
        capture_output=True,
        text=True,
        env=worker_env(),
        timeout=600,
        check=False,
    )
    assert run.returncode == 1
    assert re.search(r"finding: crash \(signal \d+\) at input \d+", run.stdout), run.stdout[-2000:]
    assert "1500 inputs" in run.stdout
