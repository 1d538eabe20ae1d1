"""The reference client, with a shared-memory segment, against our worker.

Its large exchange inputs arrive as pointer batches into its segment; our
server must resolve them (zero-copy), free each allocation after use, write
its large outputs back into the same segment (the reference client reads and
frees them), and leave no segment behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from conformance.protocol import ConformanceService
from tests._shm_leaks import left_behind as shm_left_behind
from tests._shm_leaks import snapshot as shm_snapshot
from tests.conftest import ROOT
from tests.interop.test_reference import (
    OUR_WORKER,
    REFERENCE_RUNNER,
    REFERENCE_VENV,
    REFERENCE_WORKER,
)
from vgi_rpc import StderrMode, connect
from vgi_rpc.rpc import connection_of

pytestmark = pytest.mark.interop

CLIENT = textwrap.dedent(
    """
    import sys
    import pyarrow as pa
    from vgi_rpc.rpc import AnnotatedBatch, RpcConnection, SubprocessTransport
    from vgi_rpc.shm import ShmSegment
    from vgi_rpc.conformance._protocol import ConformanceService

    class WithShm:
        def __init__(self, inner, shm):
            self._inner, self.shm = inner, shm
        reader = property(lambda self: self._inner.reader)
        writer = property(lambda self: self._inner.writer)
        def close(self):
            self._inner.close()

    seg = ShmSegment.create(64 << 20)
    transport = SubprocessTransport(sys.argv[1:])
    rows = 200_000  # 1.6 MB of float64: above the 128 KiB shm threshold
    values = pa.array([float(i) for i in range(rows)])
    with RpcConnection(ConformanceService, WithShm(transport, seg)) as proxy:
        with proxy.exchange_scale(factor=2.0) as session:
            for turn in range(3):
                out = session.exchange(AnnotatedBatch(pa.RecordBatch.from_arrays([values], names=["value"])))
                assert out.batch.num_rows == rows
                assert out.batch.column("value")[rows - 1].as_py() == 2.0 * (rows - 1)
                # our server wrote the large output into the client's segment too
                assert out.custom_metadata[b"vgi_rpc.shm_source"] == seg.name.encode()
                out.release()
        assert proxy.echo_string(value="after") == "after"
        print("allocations left", seg.allocator.num_allocs)
    seg.unlink()
    seg.close()
    transport.close()
    """
)


def test_reference_client_sends_large_inputs_through_shared_memory(tmp_path: object) -> None:
    python = REFERENCE_VENV / "bin" / "python"
    if not python.exists():
        if os.environ.get("CI"):
            pytest.fail(f"reference peer missing at {REFERENCE_VENV}")
        pytest.skip(f"reference peer not installed at {REFERENCE_VENV}")
    log = os.path.join(str(tmp_path), "worker.log")
    worker = [
        sys.executable,
        "-c",
        "import logging, runpy, sys; "
        f"logging.basicConfig(filename={log!r}, level=logging.DEBUG, format='%(name)s %(message)s'); "
        "sys.argv = ['worker.py']; "
        f"runpy.run_path({os.path.join(ROOT, 'conformance', 'worker.py')!r}, run_name='__main__')",
    ]
    before = shm_snapshot()
    proc = subprocess.run(
        [str(python), "-c", CLIENT, *worker],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "allocations left 0" in proc.stdout  # inputs freed by us, outputs by the client
    with open(log) as f:
        text = f.read()
    assert "attached client shared memory" in text
    assert (
        text.count("resolved a 200000-row batch from shared memory") == 3
    )  # every input came by pointer
    assert shm_left_behind(before) == []


def _reference(tool: Path) -> Path:
    if not tool.exists():
        if os.environ.get("CI"):
            pytest.fail(f"reference peer missing at {REFERENCE_VENV}")
        pytest.skip(f"reference peer not installed at {REFERENCE_VENV}")
    return tool


@pytest.mark.timeout(600)
def test_our_client_uses_shared_memory_with_the_reference_worker() -> None:
    worker = [str(_reference(REFERENCE_WORKER))]
    before = shm_snapshot()
    data = os.urandom(8 << 20)
    rows = 200_000
    values = pa.array(np.arange(rows, dtype=np.float64))
    with connect(ConformanceService, worker, shm_size=64 << 20, stderr=StderrMode.PIPE) as svc:
        shm = connection_of(svc).shm
        assert shm is not None  # the reference answered __transport_options__ with true
        name = shm.segment.name.encode()
        # unary: the request goes by pointer (the reference frees it), the result comes back
        # by pointer into our segment (we free it before the next request)
        assert svc.echo_large_binary(value=data) == data
        (result,) = shm.segment.allocations()
        assert result[1] >= len(data)
        with svc.exchange_scale(factor=2.0) as session:
            for _ in range(3):
                out = session.exchange(pa.RecordBatch.from_arrays([values], names=["value"]))
                assert (out.metadata_dict() or {})[b"vgi_rpc.shm_source"] == name
                assert out.batch.column("value")[rows - 1].as_py() == 2.0 * (rows - 1)
        got = 0
        for out in svc.produce_large_batches(rows_per_batch=100_000, batch_count=3):
            got += out.batch.num_rows
            assert (out.metadata_dict() or {})[b"vgi_rpc.shm_source"] == name
        assert got == 300_000
        del out
        assert svc.echo_string(value="after") == "after"
        # Everything is freed by whichever side read it, except that the reference 0.42.3
        # never releases the last input of a stream (newer reference versions do).
        left = shm.segment.allocations()
        assert len(left) <= 1, left
        assert all(length < 2 << 20 for _, length in left), left
    assert shm_left_behind(before) == []


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_reference_runner_passes_with_shared_memory_against_our_worker() -> None:
    runner = _reference(REFERENCE_RUNNER)
    before = shm_snapshot()
    proc = subprocess.run(
        [
            str(runner),
            "--cmd",
            OUR_WORKER,
            "--shm",
            "4194304",
            "--format",
            "json",
            "--timeout",
            "600",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
        check=False,
    )
    report = json.loads(proc.stdout)
    failed = [r for r in report["results"] if not r["passed"] and not r["skipped"]]
    assert not failed, failed
    skipped = [r["name"] for r in report["results"] if r["skipped"]]
    assert all(name.startswith("http_response_cap.") for name in skipped), skipped
    assert report["passed"] >= 100
    assert proc.returncode == 0
    assert shm_left_behind(before) == []


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("worker", ["reference", "ours"])
def test_our_runner_passes_with_shared_memory(worker: str) -> None:
    """Mirror of the reference runner's ``--shm`` mode: every scenario, each worker given a segment."""
    cmd = str(_reference(REFERENCE_WORKER)) if worker == "reference" else OUR_WORKER
    before = shm_snapshot()
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "conformance", "run.py"),
            "--cmd",
            cmd,
            "--shm",
            "4194304",
            "--format",
            "json",
            "--filter",
            "!large_payload.echo_binary_over_int32_max",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        check=False,
    )
    report = json.loads(proc.stdout)
    failed = [r for r in report["results"] if r["status"] == "FAIL"]
    assert not failed, failed
    assert sum(r["status"] == "PASS" for r in report["results"]) >= 127
    assert proc.returncode == 0
    assert shm_left_behind(before) == []
