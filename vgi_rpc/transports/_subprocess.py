"""Subprocess transport, client side: ``connect`` spawns a worker (``run_server`` is its loop).

The worker speaks on its stdin/stdout. Shutdown is always clean: the
client closing stdin ends the worker; a dead worker surfaces as
``PeerExitedError`` with its exit status and the tail of its stderr.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import os
import select
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, TypeVar

from vgi_rpc._errors import PeerExitedError, TransportError
from vgi_rpc._ipc import IpcValidation
from vgi_rpc._logs import WIRE_TRANSPORT_LOGGER, Message
from vgi_rpc.rpc import DEFAULT_SHM_MAX_SIZE, Connected, RpcConnection, SegmentOffer, make_proxy
from vgi_rpc.transports._fd import FdChannel, widen_pipe
from vgi_rpc.transports._shm import check_shm_size, end_shm, segment_offer, start_shm

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalLocationConfig

P = TypeVar("P")
_log = logging.getLogger(WIRE_TRANSPORT_LOGGER)
_STDERR_TAIL_LINES = 20


class StderrMode(enum.Enum):
    """What happens to a worker's stderr.

    INHERIT: shared with ours. PIPE: read by a thread, forwarded line by line
    to a logger and kept for error messages. DEVNULL: discarded.
    """

    INHERIT = "inherit"
    PIPE = "pipe"
    DEVNULL = "devnull"


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """``proc.wait(timeout)``, but woken the moment the process exits.

    ``Popen.wait`` with a timeout polls with growing sleeps (up to 50 ms), which
    can add ten milliseconds or more to every worker shutdown; a pidfd becomes
    readable exactly when the process exits. Falls back to ``Popen.wait`` where
    pidfds are not available.

    Raises:
        subprocess.TimeoutExpired: The process is still running after ``timeout`` seconds.
    """
    if proc.returncode is not None:
        return proc.returncode
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3, or already reaped elsewhere
        return proc.wait(timeout=timeout)
    try:
        poller = select.poll()  # not select.select: a pidfd may be numbered past FD_SETSIZE
        poller.register(pidfd, select.POLLIN)
        poller.poll(max(0, int(timeout * 1000) + 1))  # ms, rounded up
    finally:
        os.close(pidfd)
    # Readable: the process has exited and is ours to reap. Timed out: raises TimeoutExpired.
    return proc.wait(timeout=0)


class WorkerProcess:
    """A spawned worker and the channel to it."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        stderr: StderrMode = StderrMode.INHERIT,
        stderr_logger: logging.Logger | None = None,
        env: dict[str, str] | None = None,
        segment_offer: SegmentOffer | None = None,
    ) -> None:
        stderr_target: int | None = {
            StderrMode.INHERIT: None,
            StderrMode.PIPE: subprocess.PIPE,
            StderrMode.DEVNULL: subprocess.DEVNULL,
        }[stderr]
        try:
            self.process = subprocess.Popen(
                list(cmd),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr_target,
                env=env,
                bufsize=0,
            )
        except OSError as exc:
            raise TransportError(f"cannot start worker {list(cmd)!r}: {exc}") from exc
        self.cmd = list(cmd)
        # Whether the worker said it can use shared memory (asked once per process).
        self.shm_capable: bool | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
        self._stderr_thread: threading.Thread | None = None
        if stderr is StderrMode.PIPE:
            assert self.process.stderr is not None
            logger = stderr_logger or logging.getLogger(
                f"vgi_rpc.worker.{os.path.basename(self.cmd[0])}"
            )
            self._stderr_thread = threading.Thread(
                target=self._drain_stderr,
                args=(self.process.stderr, logger),
                daemon=True,
                name="vgi_rpc-stderr",
            )
            self._stderr_thread.start()
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        widen_pipe(self.process.stdin.fileno())
        widen_pipe(self.process.stdout.fileno())
        self.channel = FdChannel(
            self.process.stdout.fileno(),
            self.process.stdin.fileno(),
            describe_failure=self.failure,
            owns_fds=False,
            segment_offer=segment_offer,  # our own child: this host, this user
        )
        _log.debug("worker started: pid %d, cmd %s", self.process.pid, self.cmd)

    def _drain_stderr(self, pipe: IO[bytes], logger: logging.Logger) -> None:
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._tail.append(line)
            logger.info("%s", line)

    def failure(self, detail: str) -> TransportError:
        """Describe a vanished worker: wait briefly for its exit status, add stderr."""
        try:
            code: int | None = wait_exit(self.process, 2.0)
        except subprocess.TimeoutExpired:
            code = None
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=1.0)
        message = f"worker {self.cmd[0]!r} (pid {self.process.pid}) is gone: {detail}"
        return PeerExitedError(message, returncode=code, stderr_tail="\n".join(self._tail))

    def close(self, timeout: float = 5.0) -> int | None:
        """Close stdin so the worker exits; escalate to terminate/kill; reap it. Returns its status."""
        proc = self.process
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            wait_exit(proc, timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                wait_exit(proc, timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=timeout)
        if proc.stderr is not None:
            proc.stderr.close()
        _log.debug("worker exited: pid %d, status %s", proc.pid, proc.returncode)
        return proc.returncode


def connect(
    protocol: type[P],
    cmd: Sequence[str],
    *,
    on_log: Callable[[Message], None] | None = None,
    external_location: ExternalLocationConfig | None = None,
    stderr: StderrMode = StderrMode.INHERIT,
    stderr_logger: logging.Logger | None = None,
    ipc_validation: IpcValidation = IpcValidation.FULL,
    env: dict[str, str] | None = None,
    shm_size: int | None = None,
    shm_max_size: int = DEFAULT_SHM_MAX_SIZE,
) -> Connected[P]:
    """Spawn ``cmd`` as a worker and return a context manager of a proxy typed as ``protocol``.

    ``with connect(Calculator, [sys.executable, "worker.py"]) as calc: calc.add(a=1.0, b=2.0)``.
    Leaving the block closes the worker's stdin and reaps it.

    Shared memory is automatic: the first batch of 1 MiB or more sets up a
    segment (grown as needed up to ``shm_max_size`` bytes) that large batches
    travel through from then on, if the worker can map it. ``shm_size=0`` turns
    that off; ``shm_size=N`` instead creates one segment of N bytes (header
    included) up front. Either is removed when the block ends, even if the worker died.
    With ``external_location`` large requests go to external storage and the
    pointers the worker sends are fetched back (``vgi_rpc.external``).
    """
    check_shm_size(shm_size, shm_max_size)
    worker = WorkerProcess(
        cmd,
        stderr=stderr,
        stderr_logger=stderr_logger,
        env=env,
        segment_offer=segment_offer(shm_size, shm_max_size),
    )
    connection = RpcConnection(
        protocol,
        worker.channel,
        on_log=on_log,
        ipc_validation=ipc_validation,
        external_location=external_location,
    )
    segment = None
    if shm_size:
        try:
            segment = start_shm(connection, shm_size)
        except BaseException:
            connection.close()
            worker.close()
            raise

    def close() -> None:
        try:
            connection.close()
        finally:
            try:
                worker.close()
            finally:
                end_shm(segment)

    return Connected(make_proxy(protocol, connection), close)


__all__ = ["StderrMode", "WorkerProcess", "connect"]
