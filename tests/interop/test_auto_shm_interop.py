"""Our client's automatic shared memory against the reference workers (0.42.3 and 0.52.2).

With no option set, our client sets a segment up on its first large batch, asks
the reference worker over ``__transport_options__``, and from then on large
requests, results and stream batches travel through the segment: the results
are the same as inline, only the bytes on the pipe change (counted by the
kernel for this thread, ``/proc/thread-self/io``), and nothing is left in
``/dev/shm``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from conformance.protocol import ConformanceService, ConformanceServiceV2
from tests.interop import test_reference, test_reference_052
from tests.transports.test_auto_shm import crossed, mapped_segments, segments_of
from vgi_rpc import AnnotatedBatch, StderrMode, connect
from vgi_rpc.rpc import connection_of

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        not os.path.exists("/proc/thread-self/io"), reason="counts bytes with /proc (Linux)"
    ),
]

WORKERS = {
    "0.42.3": test_reference.REFERENCE_WORKER,
    "0.52.2": test_reference_052.REFERENCE_WORKER,
}
PROTOCOLS: dict[str, type[ConformanceService]] = {
    "0.42.3": ConformanceService,
    "0.52.2": ConformanceServiceV2,  # the second generation's ConformanceService 2.0.0
}
BIG = 2 << 20


def _worker(version: str) -> Path:
    worker = WORKERS[version]
    if not worker.exists():
        reason = f"reference {version} worker not installed at {worker}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return worker


@pytest.mark.parametrize("version", sorted(WORKERS))
def test_large_unary_payloads_go_through_an_automatic_segment(version: str) -> None:
    worker = _worker(version)
    with connect(PROTOCOLS[version], [str(worker)], stderr=StderrMode.PIPE) as svc:
        connection = connection_of(svc)
        for round_ in range(4):
            data = os.urandom(BIG)
            before = crossed()
            assert svc.echo_bytes(data=data) == data
            moved = crossed() - before
            if round_ == 0:
                assert moved >= BIG  # the request that names the new segment goes inline
            else:
                assert moved < 64 * 1024, (round_, moved)  # both ways through the segment
        auto = connection.auto_shm
        assert auto is not None
        assert auto.client is not None
        name = auto.client.segment.name
        assert name in mapped_segments(os.getpid())
        assert segments_of(os.getpid()) == set()  # the worker mapped it: the name is gone
        assert svc.echo_string(value="small") == "small"
    assert name not in mapped_segments(os.getpid())


@pytest.mark.parametrize("version", sorted(WORKERS))
def test_exchange_batches_go_through_an_automatic_segment(version: str) -> None:
    worker = _worker(version)
    rows = 300_000  # 2.4 MB of float64
    values = pa.array(np.arange(rows, dtype=np.float64))
    batch = pa.RecordBatch.from_arrays([values], names=["value"])
    with connect(PROTOCOLS[version], [str(worker)], stderr=StderrMode.PIPE) as svc:
        moved = []
        for _ in range(3):  # the first stream sets a segment up, the next may grow it
            with svc.exchange_scale(factor=2.0) as session:
                before = crossed()
                for _ in range(3):
                    out = session.exchange(AnnotatedBatch(batch))
                    assert out.batch.num_rows == rows
                    assert out.batch.column("value")[rows - 1].as_py() == 2.0 * (rows - 1)
                moved.append(crossed() - before)
        assert moved[0] >= 6 * batch.nbytes  # inline both ways
        assert moved[-1] < 64 * 1024, moved  # then through the segment both ways
    assert segments_of(os.getpid()) == set()
