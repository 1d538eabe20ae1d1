"""Every example runs and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

EXPECTED = {
    "hello_world.py": ["2 + 3 = 5.0"],
    "subprocess_client.py": ["1.5 + 2.25 = 3.75"],
    "structured_types.py": [
        "stored #1",
        "latest: Measurement(timestamp='2025-01-01T00:00:00Z', value=42.0, tags=['a'])",
    ],
    "logging_and_errors.py": [
        "[INFO] Processing started",
        "HELLO",
        "error_type=ValueError error_message=something went wrong",
        "STILL USABLE",
    ],
    "streaming.py": ["{'value': [3]}", "{'value': [1]}", "{'total': [3.0]}", "{'total': [13.0]}"],
    "shared_memory.py": [
        "automatic: first batch via shm: False, next stream via shm: True",
        "subprocess: doubled 1048576 rows, via shm: True",
        "first value: 3.0",
        "pool: 1 worker for 2 borrows, segments removed: True",
        "pipe pair: via shm: True",
    ],
    "external_storage.py": [
        "received 32 MiB by pointer",
        "the server saw the same 32 MiB: True",
        "small calls stay inline: 1024 bytes",
        "objects in the directory: 2",
    ],
    "http_service.py": [
        "apples: 12",
        "anonymous whoami: PermissionError",
        "whoami: alice (demo)",
        "listing pages: [2, 2, 1]",
        "with tax: [12.0, 3.0]",
        "wrong token: 401 invalid_credential",
    ],
    "demo.py": [
        "record: 6",
        "remote error: KeyError",
        "smoothed: [10.0, 15.0, 20.0, 30.0]",
        "the worker has exited",
        "after restart: 3750 vectors, deleted ids found: 0, same filtered answer: True",
        "table: 1000000 rows, equal: True, zero-copy: True",
        "over HTTP: demo/table -> 1000000 rows, equal: True",
        "after restart: survivor = {'answer': 42, 'tags': ('durable', 'named')} (isglobal=True, islocal=False)",
    ],
    "vector_index.py": [
        "vector index: 5000 vectors upserted in 3 batches (log offsets 1..3)",
        "5 hits, all match: True",
        "delete by filter genre=horror: 1250 removed at offset 4",
        "after restart: 3750 vectors, deleted ids found: 0, same filtered answer: True",
        "nearest to [1, 0, 0]: ['a', 'b']",
        "typed error: DimensionMismatchError",
    ],
    "several_protocols.py": [
        "add: 5.0",
        "greet: hello Ada",
        "same method, two protocols: calculator / greeter",
        "hosted: ['Calculator', 'example.Greeter.v1', 'vgi_rpc.Reflection.v1']",
    ],
    "object_store.py": [
        "table: 1000000 rows, equal: True, zero-copy: True",
        "array: float64 (1000, 1000), equal: True, zero-copy: True",
        "over HTTP: demo/table -> 1000000 rows, equal: True",
        "after restart: survivor = {'answer': 42, 'tags': ('durable', 'named')} (isglobal=True, islocal=False)",
    ],
}


def test_every_example_is_covered() -> None:
    runnable = {
        f
        for f in os.listdir(os.path.join(ROOT, "examples"))
        if f.endswith(".py") and f != "subprocess_worker.py"
    }
    assert runnable == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", name)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for line in EXPECTED[name]:
        assert line in proc.stdout, f"{line!r} missing from:\n{proc.stdout}"
