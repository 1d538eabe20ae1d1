"""Server-owned shared memory: one file per object in a private ``/dev/shm`` directory.

Owns allocation, the memory limit, freeing and cleanup (also of directories
left by a server that was killed). Knows nothing of RPC, values or the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import shutil
import threading

from vgi_rpc.services.objectstore._errors import InvalidRequest, OutOfMemory
from vgi_rpc.services.objectstore._ids import random_name
from vgi_rpc.services.objectstore._warm import WarmPool

_PREFIX = "vgi-objectstore-"
_DIR_PATTERN = re.compile(re.escape(_PREFIX) + r"(\d+)-[0-9a-f]{12}")


def default_root() -> str:
    """``/dev/shm`` where it exists (Linux), else the temp directory."""
    return (
        "/dev/shm"
        if os.path.isdir("/dev/shm")
        else os.path.realpath(os.environ.get("TMPDIR", "/tmp"))
    )


def human(size: int) -> str:
    """``size`` in bytes, also in the largest binary unit that keeps it >= 1."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "B" else f"{size} bytes ({value:.1f} {unit})"
        value /= 1024
    raise AssertionError("unreachable")


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """One allocation: a file of ``size`` bytes at ``path``."""

    path: str
    size: int


class SharedMemory:
    """Allocates files in a directory only this server writes, within ``limit`` bytes.

    Args:
        limit: Most bytes held at once (pending puts and warm files included).
        root: Where the private directory goes (``/dev/shm`` by default).
        warm: Most bytes of deleted objects' files kept for reuse (see ``_warm``).
        warm_idle: Seconds before an unused warm file is given back.
    """

    def __init__(
        self, limit: int, root: str | None = None, *, warm: int = 0, warm_idle: float = 10.0
    ) -> None:
        if limit <= 0:
            raise ValueError(f"the memory limit must be positive, not {limit}")
        self.limit = limit
        self.root = root or default_root()
        sweep_stale(self.root)
        self.directory = os.path.join(self.root, f"{_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")
        os.mkdir(self.directory, 0o700)
        self._used = 0
        self._spare: set[str] = set()  # segments handed to a client for its next put
        self._spare_bytes = 0
        self._segments: dict[str, Segment] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.warm = WarmPool(self.directory, min(warm, limit), warm_idle)

    @property
    def used(self) -> int:
        """Bytes allocated now."""
        return self._used

    @property
    def spare(self) -> int:
        """Bytes of segments handed out in advance for clients' next puts (not yet written)."""
        return self._spare_bytes

    def check(self, size: int) -> None:
        """Raise ``OutOfMemory`` / ``InvalidRequest`` unless ``size`` could be allocated now."""
        if size < 0:
            raise InvalidRequest(f"an object size cannot be negative ({size})")
        if size > self.limit - self._used - self._spare_bytes:
            raise OutOfMemory(
                f"cannot allocate {human(size)}: the memory limit is {human(self.limit)} "
                f"and {human(self._used + self._spare_bytes)} are in use"
            )

    def allocate(
        self,
        size: int,
        *,
        recycle: bool = False,
        spare: bool = False,
        inode: int = 0,
        name: str = "",
    ) -> Segment:
        """A file of ``size`` bytes: zero-filled, or with ``recycle`` maybe a warm one.

        A warm file holds a deleted object's old bytes; only take one when
        every byte will be written before anyone reads it. A ``spare`` is
        counted apart until ``claim`` (it is a client's next put, not in use yet).
        ``inode``: the warm file its client asks back (see ``WarmPool.claim``).
        ``name``: the file's name (random when empty; ``FileExistsError`` if taken).

        Raises:
            OutOfMemory: It would exceed the limit, or the file system has no room.
        """
        with self._lock:
            if self._closed:
                raise OutOfMemory("the server is shutting down")
            self.check(size)
            if not name:
                name = ("spare-" if spare else "") + random_name()
            path = os.path.join(self.directory, name)
            if path in self._segments:
                raise FileExistsError(path)
            if recycle and inode and self.warm.claim(inode, size, path):
                return self._add_locked(path, size, spare)
            if recycle and self.warm.take(size, path):
                return self._add_locked(path, size, spare)
            # warm files count in the limit
            self.warm.shrink(self.limit - self._used - self._spare_bytes - size)
            free = _free_bytes(self.directory)
            if size > free and self.warm.held:
                self.warm.shrink(0)
                free = _free_bytes(self.directory)
            if size > free:
                raise OutOfMemory(
                    f"cannot allocate {human(size)}: {self.root} has {human(free)} free"
                )
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.ftruncate(fd, size)
            except OSError:
                os.unlink(path)
                raise
            finally:
                os.close(fd)
            return self._add_locked(path, size, spare)

    def _add_locked(self, path: str, size: int, spare: bool) -> Segment:
        segment = Segment(path, size)
        self._segments[path] = segment
        if spare:
            self._spare.add(path)
            self._spare_bytes += size
        else:
            self._used += size
        return segment

    def claim(self, segment: Segment) -> None:
        """Count a spare segment as in use (its put was sealed)."""
        with self._lock:
            if segment.path in self._spare:
                self._spare.discard(segment.path)
                self._spare_bytes -= segment.size
                self._used += segment.size

    def reserve(self, size: int) -> None:
        """Count ``size`` bytes held outside any file (small objects kept inline)."""
        with self._lock:
            self.check(size)
            self._used += size

    def release(self, size: int) -> None:
        """Give back bytes counted by ``reserve``."""
        with self._lock:
            self._used = max(0, self._used - size)

    def free(self, segment: Segment) -> None:
        """Give the segment's memory back, or keep it warm if nobody maps it; idempotent.

        Either way its path stops resolving at once; unlinked pages go when
        the last client view of them is dropped.
        """
        with self._lock:
            if self._segments.pop(segment.path, None) is None:
                return
            if segment.path in self._spare:
                self._spare.discard(segment.path)
                self._spare_bytes -= segment.size
            else:
                self._used -= segment.size
        self.warm.offer(segment.path)

    def close(self) -> None:
        """Free everything and remove the directory."""
        with self._lock:
            self._closed = True
            self._segments.clear()
            self._spare.clear()
            self._used = self._spare_bytes = 0
        self.warm.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _free_bytes(directory: str) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(root: str) -> list[str]:
    """Remove directories left in ``root`` by servers that no longer run; return them."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.listdir(root):
            match = _DIR_PATTERN.fullmatch(entry)
            if match and not _alive(int(match.group(1))):
                shutil.rmtree(os.path.join(root, entry), ignore_errors=True)
                removed.append(entry)
    return removed


__all__ = ["Segment", "SharedMemory", "default_root", "human", "sweep_stale"]
