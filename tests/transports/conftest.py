"""Fixtures shared by the transport tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.transports.test_bad_input import Worker


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    if w.proc.poll() is None:
        w.proc.kill()
    w.proc.wait()
    for pipe in (w.proc.stdin, w.proc.stdout, w.proc.stderr):
        if pipe is not None:
            pipe.close()
