"""A short soak: 16 concurrent HTTP clients, mixed calls, 0 errors, flat memory and fds."""

from __future__ import annotations

import pytest
from fuzz_http import http_worker
from soak import soak

MiB = 1 << 20


@pytest.mark.slow
def test_soak_16_clients() -> None:
    with http_worker() as worker:
        result = soak(worker.url, worker.pid, seconds=10, clients=16, interval=2)
        alive = worker.alive()
    print(result.report())
    assert alive
    assert result.errors == []
    assert result.operations > 500
    assert result.rss_growth < 64 * MiB
    assert result.fd_growth <= 16
