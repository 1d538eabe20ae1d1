"""Spares: pending puts handed to a connected local client in advance, for its next put.

A spare is a pending put like any other (it lives in the server's pending
table, belongs to the connection and goes when the connection ends); this
module hands them out, frees those left unused for ``idle`` seconds, and
takes back those no client has opened when another put needs the room.
"""

from __future__ import annotations

import threading
import time

from vgi_rpc.services.objectstore._entries import Pending
from vgi_rpc.services.objectstore._idle import IdleTimer
from vgi_rpc.services.objectstore._memory import Segment, SharedMemory
from vgi_rpc.services.objectstore._warm import unused
from vgi_rpc.services.objectstore.protocol import VALUE


class Spares:
    """Hands out, expires and reclaims spares in the server's ``pending`` table (under ``lock``)."""

    def __init__(
        self,
        pending: dict[int, Pending],
        lock: threading.RLock,
        memory: SharedMemory,
        idle: float,
    ) -> None:
        self._pending = pending
        self._lock = lock
        self._memory = memory
        self.idle = idle
        self._idle = IdleTimer(lock, self._expire)
        self._latest: dict[int, int] = {}  # each connection's last spare

    def hand_out(self, segment: Segment, owner: int, spare_id: int) -> tuple[bool, Segment | None]:
        """Record ``segment`` as ``owner``'s spare ``spare_id``, in place of its last one.

        Returns whether it was (not when the id is taken) and the segment of
        the owner's previous spare if that was still unused (the caller frees it).
        """
        with self._lock:
            if spare_id in self._pending:
                return False, None
            previous = self._latest.pop(owner, 0)
            old = self._pending.get(previous)
            replaced = None
            if old is not None and old.spare and old.owner == owner:
                replaced = self._pending.pop(previous).segment
            self._pending[spare_id] = Pending(segment, VALUE, owner, time.monotonic(), spare=True)
            self._latest[owner] = spare_id
            self._idle.arm(self.idle)
        return True, replaced

    def forget(self, owner: int) -> None:
        """The connection ``owner`` ended (its pending puts are freed by the server)."""
        with self._lock:
            self._latest.pop(owner, None)

    def _take_locked(self, idle_for: float | None) -> list[Segment]:
        """Pop the spares nobody has opened (and, with ``idle_for``, that old)."""
        now = time.monotonic()
        chosen = [
            pid
            for pid, p in self._pending.items()
            if p.spare
            and (idle_for is None or now - p.touched >= idle_for)
            and unused(p.segment.path)
        ]
        return [self._pending.pop(pid).segment for pid in chosen]

    def _expire(self) -> None:
        with self._lock:
            segments = self._take_locked(self.idle)
            if any(p.spare for p in self._pending.values()):
                self._idle.arm(self.idle)
        for segment in segments:
            self._memory.free(segment)

    def reclaim(self) -> bool:
        """Free every spare no client has opened (to make room); whether any was."""
        with self._lock:
            segments = self._take_locked(None)
        for segment in segments:
            self._memory.free(segment)
        return bool(segments)

    def close(self) -> None:
        """Stop the expiry timer."""
        self._idle.cancel()


__all__ = ["Spares"]
