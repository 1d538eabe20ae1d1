"""Replay guard for stateless stream cursors (opt-in).

A cursor is a sealed, self-contained token: without a guard, whoever holds
one can send it again and the server will resume the stream from that
point (rolling an exchange's state back, or re-running a producer's last
turn). Each cursor carries its call id and a turn number; a guard records
the highest turn spent per call and refuses any cursor at or below it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Protocol


class SpentCursorStore(Protocol):
    """Where spent cursors are remembered; share one store among all workers of an endpoint."""

    def spend(self, call_id: bytes, turn: int, expires_at: float) -> bool:
        """Record that ``turn`` of call ``call_id`` is being used.

        Returns ``False`` when that turn or a later one of the same call was
        spent already (a replay). Entries may be forgotten after ``expires_at``
        (epoch seconds), when the cursor has expired anyway.
        """
        ...


class InMemorySpentCursors:
    """A bounded, in-process ``SpentCursorStore`` (one worker process).

    Args:
        max_calls: Calls remembered at once; past it the oldest is forgotten,
            and its cursors could then be replayed, so size it above the
            number of streams alive within one token lifetime.
    """

    def __init__(self, max_calls: int = 100_000) -> None:
        if max_calls < 1:
            raise ValueError(f"max_calls must be at least 1, got {max_calls}")
        self._spent: OrderedDict[bytes, tuple[int, float]] = OrderedDict()
        self._max_calls = max_calls
        self._lock = threading.Lock()

    def spend(self, call_id: bytes, turn: int, expires_at: float) -> bool:
        """See ``SpentCursorStore.spend``."""
        now = time.time()
        with self._lock:
            previous = self._spent.get(call_id)
            if previous is not None and previous[1] >= now and turn <= previous[0]:
                return False
            self._spent[call_id] = (turn, expires_at)
            self._spent.move_to_end(call_id)
            while self._spent:
                oldest, (_, expiry) = next(iter(self._spent.items()))
                if expiry >= now and len(self._spent) <= self._max_calls:
                    break
                del self._spent[oldest]
        return True

    def __len__(self) -> int:
        return len(self._spent)


__all__ = ["InMemorySpentCursors", "SpentCursorStore"]
