"""The reference client, with a shared-memory segment, against our worker.

Its large exchange inputs arrive as pointer batches into its segment; our
server must resolve them (zero-copy), free each allocation after use, and
leave no segment behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT
from tests.interop.test_reference import REFERENCE_VENV

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
    before = set(os.listdir("/dev/shm"))
    proc = subprocess.run(
        [str(python), "-c", CLIENT, *worker],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "allocations left 0" in proc.stdout  # we freed every input we resolved
    with open(log) as f:
        text = f.read()
    assert "attached client shared memory" in text
    assert (
        text.count("resolved a 200000-row batch from shared memory") == 3
    )  # every input came by pointer
    assert set(os.listdir("/dev/shm")) == before
