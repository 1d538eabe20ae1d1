"""One pending timer that sweeps idle things away (warm files, spares, kept mappings, buffers).

Its owner arms it, holding its own lock, when it starts keeping something;
when it fires it calls the owner's ``sweep``, which drops what has been idle
long enough and arms it again while anything is left. So an idle owner has
no timer thread, and a busy one has at most one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

_SHORTEST = 0.05  # seconds: a sweep due now still waits this long (no busy loop)


class IdleTimer:
    """Calls ``sweep()`` on a daemon thread once the delay given to ``arm`` has passed.

    Args:
        lock: The owner's lock; ``arm`` is called holding it.
        sweep: Drops what is idle and calls ``arm`` again if anything is left.
    """

    def __init__(self, lock: AbstractContextManager[Any], sweep: Callable[[], None]) -> None:
        self._lock = lock
        self._sweep = sweep
        self._timer: threading.Timer | None = None

    @property
    def pending(self) -> bool:
        """Whether a sweep is scheduled."""
        return self._timer is not None

    def arm(self, delay: float) -> None:
        """Sweep ``delay`` seconds from now, unless a sweep is already pending (hold the lock)."""
        if self._timer is None:
            timer = threading.Timer(max(_SHORTEST, delay), self._fire)
            timer.daemon = True
            timer.start()
            self._timer = timer

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
        self._sweep()

    def cancel(self) -> None:
        """Drop the pending sweep, if any (call without holding the lock)."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()


__all__ = ["IdleTimer"]
