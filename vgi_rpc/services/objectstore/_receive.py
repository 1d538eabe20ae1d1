"""Receive buffers for remote gets, reused once the value that held one is dropped.

A remote get copies the object into memory of its own. Fresh memory costs
the kernel a page fault and a zeroed page per 4 KiB, which on a loaded or
virtualised host is slower than the network copy itself. So the client
keeps the buffers of values its caller has dropped, up to ``limit`` bytes,
for ``idle`` seconds, and receives the next object into one of them.
"""

from __future__ import annotations

import threading
import time
import weakref

import numpy as np
import pyarrow as pa

from vgi_rpc.services.objectstore._idle import IdleTimer


class ReceiveBuffers:
    """Large byte buffers, handed out as views and taken back when the view dies.

    Args:
        limit: Most bytes kept while unused (0: keep none).
        idle: Seconds an unused buffer is kept.
        smallest: Sizes below this are left to the allocator (it reuses small blocks well).
    """

    def __init__(self, limit: int, idle: float = 10.0, smallest: int = 4 << 20) -> None:
        self.limit = limit
        self.idle = idle
        self.smallest = smallest
        self._free: list[tuple[float, np.ndarray]] = []
        self._lock = threading.Lock()
        self._idle = IdleTimer(self._lock, self._expire)

    @property
    def kept(self) -> int:
        """Bytes of unused buffers kept now."""
        with self._lock:
            return sum(base.nbytes for _, base in self._free)

    def take(self, size: int) -> pa.Buffer:
        """A writable buffer of exactly ``size`` bytes (contents undefined)."""
        if size < self.smallest or not self.limit:
            return pa.allocate_buffer(size)
        base = None
        with self._lock:
            fits = [(b.nbytes, i) for i, (_, b) in enumerate(self._free) if size <= b.nbytes]
            if fits:
                _, index = min(fits)
                if self._free[index][1].nbytes <= 2 * size:  # no big buffer for a small object
                    base = self._free.pop(index)[1]
        if base is None:
            base = np.empty(size, dtype=np.uint8)
        view = base[:size]
        weakref.finalize(view, self._give_back, base)
        return pa.py_buffer(view.data)  # the memoryview keeps ``view`` alive

    def _give_back(self, base: np.ndarray) -> None:
        with self._lock:
            if base.nbytes + sum(b.nbytes for _, b in self._free) > self.limit:
                return
            self._free.append((time.monotonic(), base))
            self._arm_locked()

    def _arm_locked(self) -> None:
        oldest = min(t for t, _ in self._free)
        self._idle.arm(self.idle - (time.monotonic() - oldest))

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._free = [(t, b) for t, b in self._free if now - t < self.idle]
            if self._free:
                self._arm_locked()

    def clear(self) -> None:
        """Let every unused buffer go."""
        with self._lock:
            self._free.clear()
        self._idle.cancel()


__all__ = ["ReceiveBuffers"]
