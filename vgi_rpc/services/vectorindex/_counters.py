"""Per-method counters (core.proto's ``Status``): messages received and sent, errors, time.

Thread-safe; knows nothing of the service it counts for.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Counters:
    """Calls, answers, errors and total seconds per function name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def counting(self, function: str, received: int = 1, sent: int = 1) -> Iterator[None]:
        """Count one call of ``function``: ``sent`` only if it succeeds, an error otherwise."""
        started = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                c = self._counts.setdefault(function, [0, 0, 0, 0.0])
                c[0] += received
                c[1] += sent if ok else 0
                c[2] += 0 if ok else 1
                c[3] += elapsed

    def rows(self) -> list[tuple[str, int, int, int, float]]:
        """``(function, received, sent, errors, average microseconds)``, sorted by name."""
        with self._lock:
            return [
                (name, int(c[0]), int(c[1]), int(c[2]), c[3] / max(c[0], 1) * 1e6)
                for name, c in sorted(self._counts.items())
            ]


def counted(method: Callable[P, R]) -> Callable[P, R]:
    """Decorate a method of an object with a ``counters`` attribute."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        owner = args[0]
        assert hasattr(owner, "counters")
        counters: Counters = owner.counters
        with counters.counting(method.__name__):
            return method(*args, **kwargs)

    return wrapper
