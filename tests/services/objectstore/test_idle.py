"""The one idle-sweep timer shared by warm files, spares, kept mappings and receive buffers."""

from __future__ import annotations

import threading
import time

from vgi_rpc.services.objectstore._idle import IdleTimer


def test_a_sweep_runs_once_per_arming_and_rearms_while_anything_is_left() -> None:
    lock = threading.Lock()
    swept: list[float] = []
    left = [2]
    done = threading.Event()

    def sweep() -> None:
        with lock:
            swept.append(time.monotonic())
            left[0] -= 1
            if left[0]:
                timer.arm(0.05)
            else:
                done.set()

    timer = IdleTimer(lock, sweep)
    start = time.monotonic()
    with lock:
        timer.arm(0.1)
        timer.arm(0.0)  # one already pending: nothing more
        assert timer.pending
    assert done.wait(5)
    time.sleep(0.2)
    assert len(swept) == 2
    assert swept[0] - start >= 0.09
    assert not timer.pending


def test_cancel_drops_the_pending_sweep() -> None:
    lock = threading.RLock()
    swept: list[int] = []
    timer = IdleTimer(lock, lambda: swept.append(1))
    with lock:
        timer.arm(0.1)
    timer.cancel()
    time.sleep(0.3)
    assert swept == []
    assert not timer.pending
    with lock:
        timer.arm(0.0)  # armed again after a cancel: runs (no earlier than the shortest delay)
    time.sleep(0.4)
    assert swept == [1]
