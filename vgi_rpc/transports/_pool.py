"""``WorkerPool``: keeps idle subprocess workers alive between ``connect`` blocks.

Workers are reused per command line. A worker handed back mid-stream, after a
transport failure, or dead is discarded, never reused. A reaper thread evicts
workers idle longer than ``idle_timeout``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from vgi_rpc._errors import TransportError
from vgi_rpc._ipc import IpcValidation
from vgi_rpc._logs import POOL_LOGGER, Message
from vgi_rpc.rpc import DEFAULT_SHM_MAX_SIZE, Connected, RpcConnection, make_proxy
from vgi_rpc.transports._shm import check_shm_size, end_shm, segment_offer, start_shm
from vgi_rpc.transports._subprocess import StderrMode, WorkerProcess

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalLocationConfig

P = TypeVar("P")
_log = logging.getLogger(POOL_LOGGER)


@dataclasses.dataclass(frozen=True, slots=True)
class PoolMetrics:
    """Counters since the pool was created, plus current idle/active worker counts."""

    borrows: int
    spawns: int
    reuses: int
    returns: int
    discards: int
    evictions: int
    idle: int
    active: int


@dataclasses.dataclass(slots=True)
class _Idle:
    worker: WorkerProcess
    since: float


class WorkerPool:
    """A pool of reusable subprocess workers.

    Args:
        max_idle: Most idle workers kept, over all commands (oldest evicted first).
        idle_timeout: Seconds an idle worker may wait before it is stopped.
        stderr: What happens to workers' stderr.
        stderr_logger: Logger for worker stderr lines with ``StderrMode.PIPE``.
        shm_size: Shared memory per borrow. ``None`` (default): automatic, a segment
            set up by the borrow's first large batch and grown up to ``shm_max_size``;
            0: off; N: a segment of N bytes (header included) made up front for every
            borrow, the worker asked once whether it can use shared memory
            (``__transport_options__``). A borrow's segment is removed when the borrow
            ends, even if the worker died meanwhile; a worker that cannot map one gets
            everything inline.
        shm_max_size: The automatic segment's ceiling, header included (1 GiB).
    """

    def __init__(
        self,
        max_idle: int = 4,
        idle_timeout: float = 60.0,
        stderr: StderrMode = StderrMode.INHERIT,
        stderr_logger: logging.Logger | None = None,
        shm_size: int | None = None,
        shm_max_size: int = DEFAULT_SHM_MAX_SIZE,
    ) -> None:
        check_shm_size(shm_size, shm_max_size)
        if max_idle < 0 or idle_timeout <= 0:
            raise ValueError("max_idle must be >= 0 and idle_timeout > 0")
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.shm_size = shm_size
        self.shm_max_size = shm_max_size
        self._stderr = stderr
        self._stderr_logger = stderr_logger
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, ...], list[_Idle]] = {}
        self._active = 0
        self._counts = dict.fromkeys(
            ("borrows", "spawns", "reuses", "returns", "discards", "evictions"), 0
        )
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="vgi_rpc-pool-reaper", daemon=True)
        self._reaper.start()

    @property
    def metrics(self) -> PoolMetrics:
        """A snapshot of the pool's counters."""
        with self._lock:
            return PoolMetrics(**self._counts, idle=self._idle_count(), active=self._active)

    @property
    def idle_count(self) -> int:
        """Idle workers right now."""
        with self._lock:
            return self._idle_count()

    @property
    def active_count(self) -> int:
        """Borrowed workers right now."""
        with self._lock:
            return self._active

    def _idle_count(self) -> int:
        return sum(len(entries) for entries in self._idle.values())

    def connect(
        self,
        protocol: type[P],
        cmd: Sequence[str],
        *,
        on_log: Callable[[Message], None] | None = None,
        external_location: ExternalLocationConfig | None = None,
        ipc_validation: IpcValidation = IpcValidation.FULL,
    ) -> Connected[P]:
        """Borrow a worker running ``cmd`` (reusing an idle one) as a context manager of a proxy."""
        if self._closed.is_set():
            raise TransportError("this WorkerPool is closed")
        worker = self._borrow(tuple(cmd))
        connection = RpcConnection(
            protocol,
            worker.channel,
            on_log=on_log,
            ipc_validation=ipc_validation,
            external_location=external_location,
        )
        segment = None
        if self.shm_size:
            try:
                segment = start_shm(connection, self.shm_size, worker.shm_capable)
            except BaseException:
                connection.healthy = False  # the handshake may have stopped half-way
                self._give_back(worker, connection)
                raise
            worker.shm_capable = segment is not None

        def give_back() -> None:
            try:
                connection.release_shm()
                self._give_back(worker, connection)
            finally:
                end_shm(segment)

        return Connected(make_proxy(protocol, connection), give_back)

    def _borrow(self, key: tuple[str, ...]) -> WorkerProcess:
        dead: list[WorkerProcess] = []
        try:
            return self._take_or_spawn(key, dead)
        finally:
            for worker in dead:
                worker.close(timeout=2.0)

    def _take_or_spawn(self, key: tuple[str, ...], dead: list[WorkerProcess]) -> WorkerProcess:
        with self._lock:
            self._counts["borrows"] += 1
            entries = self._idle.get(key, [])
            while entries:
                entry = entries.pop()
                if entry.worker.process.poll() is None:
                    self._counts["reuses"] += 1
                    self._active += 1
                    _log.debug("reusing worker pid %d for %s", entry.worker.process.pid, key[0])
                    return entry.worker
                self._counts["discards"] += 1
                dead.append(entry.worker)
                _log.info("discarding dead idle worker pid %d", entry.worker.process.pid)
            self._counts["spawns"] += 1
            self._active += 1
        try:
            worker = WorkerProcess(
                key,
                stderr=self._stderr,
                stderr_logger=self._stderr_logger,
                segment_offer=segment_offer(self.shm_size, self.shm_max_size),
            )
        except BaseException:
            with self._lock:
                self._active -= 1
            raise
        _log.debug("spawned worker pid %d for %s", worker.process.pid, key[0])
        return worker

    def _give_back(self, worker: WorkerProcess, connection: RpcConnection) -> None:
        session = connection.open_session
        abandoned = session is not None and not session.closed
        reusable = (
            not abandoned
            and connection.healthy
            and worker.process.poll() is None
            and not self._closed.is_set()
        )
        evicted: list[WorkerProcess] = []
        with self._lock:
            self._active -= 1
            self._counts["returns"] += 1
            if reusable:
                self._idle.setdefault(tuple(worker.cmd), []).append(_Idle(worker, time.monotonic()))
                evicted = self._trim()
            else:
                self._counts["discards"] += 1
        if not reusable:
            why = "abandoned mid-stream" if abandoned else "broken or exited"
            _log.info("discarding worker pid %d (%s)", worker.process.pid, why)
            worker.close(timeout=2.0)
        for old in evicted:
            old.close(timeout=2.0)

    def _trim(self) -> list[WorkerProcess]:
        """Evict the oldest idle workers beyond ``max_idle`` (lock held)."""
        evicted = []
        while self._idle_count() > self.max_idle:
            key, oldest = min(
                ((k, e) for k, entries in self._idle.items() for e in entries),
                key=lambda item: item[1].since,
            )
            self._idle[key].remove(oldest)
            self._counts["evictions"] += 1
            evicted.append(oldest.worker)
        return evicted

    def _reap(self) -> None:
        interval = min(self.idle_timeout / 2, 1.0)
        while not self._closed.wait(interval):
            now = time.monotonic()
            expired: list[WorkerProcess] = []
            with self._lock:
                for entries in self._idle.values():
                    for entry in [e for e in entries if now - e.since >= self.idle_timeout]:
                        entries.remove(entry)
                        self._counts["evictions"] += 1
                        expired.append(entry.worker)
            for worker in expired:
                _log.debug(
                    "evicting worker pid %d after %.1fs idle", worker.process.pid, self.idle_timeout
                )
                worker.close(timeout=2.0)

    def close(self) -> None:
        """Stop the reaper and every idle worker; borrowed workers stop when given back."""
        self._closed.set()
        self._reaper.join(timeout=5)
        with self._lock:
            idle = [e.worker for entries in self._idle.values() for e in entries]
            self._idle.clear()
        for worker in idle:
            worker.close(timeout=2.0)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["PoolMetrics", "WorkerPool"]
