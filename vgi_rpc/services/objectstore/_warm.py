"""Warm segments: files of deleted objects kept for later puts, only when nobody maps them.

A new ``/dev/shm`` file costs the kernel a page fault and a zeroed page per
4 KiB written; writing into pages a file already holds runs at about twice
the rate. So ``delete`` may hand its file here instead of unlinking it. The
file is first renamed (its old path stops resolving, so no client can open
it from now on), then kept only if a write lease can be taken on it: Linux
grants ``F_SETLEASE F_WRLCK`` only while no other open file refers to the
inode, and a mapping holds its file open even after its descriptor is
closed. A client that still holds a zero-copy view of the deleted object
therefore makes the lease fail: the file is then kept *busy*, and no put
gets it until a later lease succeeds, except its own writer, which may
``claim`` it back after proving the same thing with a lease on the
descriptor behind its own mapping (see ``_mappings``). Where leases are not
available the pool keeps nothing.

The pool holds at most ``limit`` bytes, and gives a file back when it has
gone unused for ``idle`` seconds, so an idle server returns to its baseline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import secrets
import threading
import time

from vgi_rpc.services.objectstore._idle import IdleTimer
from vgi_rpc.services.objectstore._ids import random_name

WARM_PREFIX = "warm-"
_LEASE = getattr(fcntl, "F_SETLEASE", None)


def leases_work(directory: str) -> bool:
    """Whether write leases can be taken on files in ``directory`` (Linux tmpfs: yes)."""
    if _LEASE is None:
        return False
    path = os.path.join(directory, f"{WARM_PREFIX}probe-{secrets.token_hex(4)}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False
    try:
        fcntl.fcntl(fd, _LEASE, fcntl.F_WRLCK)
        fcntl.fcntl(fd, _LEASE, fcntl.F_UNLCK)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(path)


def unused(path: str) -> bool:
    """True when no other open file or mapping refers to ``path``'s inode (a write lease works)."""
    if _LEASE is None:
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.fcntl(fd, _LEASE, fcntl.F_WRLCK)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EBUSY, errno.EACCES, errno.EINVAL):
            raise
        return False
    else:
        fcntl.fcntl(fd, _LEASE, fcntl.F_UNLCK)
        return True
    finally:
        os.close(fd)


@dataclasses.dataclass(slots=True)
class _Warm:
    path: str
    size: int
    since: float
    inode: int
    busy: bool  # someone still had it open or mapped: only its writer may claim it back


class WarmPool:
    """Files of deleted objects, ready to be written again.

    Args:
        directory: The server's private shared-memory directory.
        limit: Most bytes kept (0: keep nothing, unlink at once).
        idle: Seconds a file may stay unused before it is given back.
    """

    def __init__(self, directory: str, limit: int, idle: float) -> None:
        self.directory = directory
        self.limit = limit if limit > 0 and leases_work(directory) else 0
        self.idle = idle
        self._files: list[_Warm] = []
        self._bytes = 0
        self._lock = threading.Lock()
        self._idle = IdleTimer(self._lock, self._expire)
        self._closed = False

    @property
    def held(self) -> int:
        """Bytes of warm files now."""
        return self._bytes

    def offer(self, path: str) -> None:
        """Take the file of a deleted object and keep it warm, else unlink it.

        A file someone still has open or mapped is kept *busy*: no put gets it
        until a later lease shows it unused, except its writer's (``claim``).
        """
        size = inode = 0
        if self.limit:
            warm_path = os.path.join(self.directory, WARM_PREFIX + random_name())
            try:
                os.rename(path, warm_path)  # the object's path is gone: nobody opens it again
                stat = os.stat(warm_path)
                size, inode = stat.st_size, stat.st_ino
            except OSError:
                warm_path = path
            else:
                path = warm_path
        if not size or size > self.limit:
            _unlink(path)
            return
        busy = not unused(path)
        with self._lock:
            if self._closed:
                _unlink(path)
                return
            self._files.append(_Warm(path, size, time.monotonic(), inode, busy))
            self._bytes += size
            dropped = self._shrink_locked(self.limit)
            self._arm_locked()
        for old in dropped:
            _unlink(old)

    def take(self, size: int, path: str) -> bool:
        """Move an unused warm file to ``path``, resized to ``size``; False if there is none."""
        with self._lock:
            for w in self._files:
                if w.busy and unused(w.path):
                    w.busy = False
            free = [w for w in self._files if not w.busy]
            if not free:
                return False
            fits = [w for w in free if w.size >= size]
            chosen = min(fits, key=lambda w: w.size) if fits else max(free, key=lambda w: w.size)
            self._files.remove(chosen)
            self._bytes -= chosen.size
        return self._move(chosen, size, path)

    def claim(self, inode: int, size: int, path: str) -> bool:
        """Move the file with ``inode`` (``size`` bytes, busy or not) to ``path``.

        For the client that wrote it and kept it mapped: it has proved with a
        lease of its own that nobody else has the file open, so it may write
        it again through that mapping (no page faults at all).
        """
        with self._lock:
            found = [w for w in self._files if w.inode == inode and w.size == size]
            if not found:
                return False
            chosen = found[0]
            self._files.remove(chosen)
            self._bytes -= chosen.size
        return self._move(chosen, size, path)

    def _move(self, chosen: _Warm, size: int, path: str) -> bool:
        try:
            os.rename(chosen.path, path)
            if chosen.size != size:
                os.truncate(path, size)
        except OSError:
            _unlink(chosen.path)
            _unlink(path)
            return False
        return True

    def shrink(self, keep: int) -> None:
        """Give back warm files (oldest first) until at most ``keep`` bytes remain."""
        with self._lock:
            dropped = self._shrink_locked(keep)
        for path in dropped:
            _unlink(path)

    def _shrink_locked(self, keep: int) -> list[str]:
        dropped = []
        while self._files and self._bytes > keep:
            old = self._files.pop(0)
            self._bytes -= old.size
            dropped.append(old.path)
        return dropped

    def _arm_locked(self) -> None:
        if self._files and not self._closed:
            oldest = min(w.since for w in self._files)
            self._idle.arm(self.idle - (time.monotonic() - oldest))

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            old = [w for w in self._files if now - w.since >= self.idle]
            for w in old:
                self._files.remove(w)
                self._bytes -= w.size
            self._arm_locked()
        for w in old:
            _unlink(w.path)

    def close(self) -> None:
        """Give every warm file back and stop the timer."""
        with self._lock:
            self._closed = True
            dropped = self._shrink_locked(0)
        self._idle.cancel()
        for path in dropped:
            _unlink(path)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


__all__ = ["WARM_PREFIX", "WarmPool", "leases_work", "unused"]
