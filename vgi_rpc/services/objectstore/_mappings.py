"""The files a local client wrote, kept mapped so that it can write them again without faults.

Writing through a mapping whose pages are already in the page tables runs
at memcpy speed; mapping a file afresh costs a fault per 4 KiB. So the
client keeps the mapping (and the descriptor behind it) of the last files
it wrote. Once such an object is deleted, the server parks its file instead
of reusing it (the client still has it open), and the client may ask for it
back as the file of its next put, but only after proving, with a write lease
on that very descriptor, that no other open file or mapping refers to it:
Linux grants the lease only then, and the client's own mapping shares the
descriptor's open file, so it does not count. A reader's zero-copy view
makes the lease fail, and the file is never written again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import mmap
import os
import threading
import time

import pyarrow as pa

from vgi_rpc.services.objectstore._idle import IdleTimer

_LEASE = getattr(fcntl, "F_SETLEASE", None)


@dataclasses.dataclass
class _Held:
    fd: int
    map: mmap.mmap
    size: int
    path: str  # where the object lives while it exists
    used: float


class WriterMappings:
    """At most ``keep`` files this client wrote, mapped writable, each kept ``idle`` seconds.

    Files larger than ``largest`` (the server's ``--warm``: it never parks
    them) are not kept.
    """

    def __init__(self, keep: int = 2, idle: float = 10.0, largest: int = 1 << 62) -> None:
        self.keep = keep if _LEASE is not None else 0
        self.idle = idle
        self.largest = largest
        self._held: dict[int, _Held] = {}  # by inode
        self._lock = threading.Lock()
        self._idle = IdleTimer(self._lock, self._expire)

    def target(self, path: str) -> tuple[int, pa.Buffer] | None:
        """The file's inode and a writable buffer over all of it, from the mapping kept of it.

        ``None`` when this file is not to be kept (write it with ``write(2)``:
        faster than faulting its pages into a mapping used once).
        """
        found = os.stat(path)  # the usual case, a file kept mapped: no descriptor to open
        with self._lock:
            held = self._held.get(found.st_ino)
            if held is not None and held.size == found.st_size:
                held.path, held.used = path, time.monotonic()
                return found.st_ino, pa.py_buffer(held.map)
        fd = os.open(path, os.O_RDWR)
        try:
            stat = os.fstat(fd)
            with self._lock:
                held = self._held.get(stat.st_ino)
                if held is not None and held.size != stat.st_size:
                    self._drop_locked(stat.st_ino)
                    held = None
                if held is not None:
                    held.path, held.used = path, time.monotonic()
                    os.close(fd)  # the kept descriptor is the one behind the mapping
                    return stat.st_ino, pa.py_buffer(held.map)
            if not self.keep or not 0 < stat.st_size <= self.largest:
                os.close(fd)
                return None
            mapping = mmap.mmap(fd, stat.st_size)
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            self._held[stat.st_ino] = _Held(fd, mapping, stat.st_size, path, time.monotonic())
            while len(self._held) > self.keep:
                oldest = min(self._held, key=lambda i: self._held[i].used)
                self._drop_locked(oldest)
            self._idle.arm(self.idle)
        return stat.st_ino, pa.py_buffer(mapping)

    def reusable(self, size: int, exclude: int) -> int:
        """The inode of a kept file of ``size`` bytes whose object is deleted and that nobody else opens (0: none)."""
        with self._lock:
            for inode, held in list(self._held.items()):
                if inode == exclude or held.size != size or os.path.exists(held.path):
                    continue  # a different size, or its object still exists
                if os.fstat(held.fd).st_nlink == 0:  # the server let it go for good
                    self._drop_locked(inode)
                    continue
                if _alone(held.fd):
                    return inode
        return 0

    def _drop_locked(self, inode: int) -> None:
        held = self._held.pop(inode)
        with contextlib.suppress(BufferError):  # a buffer still exported: closed when it dies
            held.map.close()
        os.close(held.fd)

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            for inode in [i for i, h in self._held.items() if now - h.used >= self.idle]:
                self._drop_locked(inode)
            if self._held:
                oldest = min(h.used for h in self._held.values())
                self._idle.arm(self.idle - (now - oldest))

    def clear(self) -> None:
        """Let every kept mapping go."""
        with self._lock:
            for inode in list(self._held):
                self._drop_locked(inode)
        self._idle.cancel()


def _alone(fd: int) -> bool:
    """True when no open file but ``fd``'s own (and mappings made from it) refers to its inode."""
    assert _LEASE is not None
    try:
        fcntl.fcntl(fd, _LEASE, fcntl.F_WRLCK)
    except OSError:
        return False
    fcntl.fcntl(fd, _LEASE, fcntl.F_UNLCK)
    return True


__all__ = ["WriterMappings"]
