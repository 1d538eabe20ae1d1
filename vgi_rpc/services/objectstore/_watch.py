"""Wake-ups when a local directory changes (Linux inotify), so name waits need not poll.

Another server on the same local store binds a name by renaming a file
into ``names/``; the kernel tells us at once. Where inotify is missing
(not Linux, or a store that is not a local directory) ``watch`` returns
``None`` and callers keep polling.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import sys
import threading
from collections.abc import Callable

_IN_CLOSE_WRITE = 0x008
_IN_MOVED_TO = 0x080
_IN_DELETE = 0x200
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000


class DirectoryWatch:
    """Calls ``on_change()`` from a daemon thread whenever files in ``path`` change."""

    def __init__(self, fd: int, on_change: Callable[[], None]) -> None:
        self._fd = fd
        self._on_change = on_change
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="objectstore-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self._fd, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._fd, 64 << 10):  # drain: what changed does not matter
                        pass
                self._on_change()
        finally:
            os.close(self._fd)
            os.close(self._wake_r)

    def close(self) -> None:
        """Stop watching (idempotent)."""
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=5)
            os.close(self._wake_w)
            self._wake_w = -1


def watch(path: str, on_change: Callable[[], None]) -> DirectoryWatch | None:
    """Watch ``path`` for files renamed in, written or deleted; ``None`` if unsupported."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    mask = _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_DELETE
    if libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
        os.close(fd)
        return None
    return DirectoryWatch(fd, on_change)


__all__ = ["DirectoryWatch", "watch"]
