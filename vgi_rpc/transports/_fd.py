"""A ``Channel`` over a pair of file descriptors (pipes). Moves bytes, nothing else."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Sequence

from vgi_rpc._errors import TransportError
from vgi_rpc._ipc import MAX_IO_CHUNK, Chunk, buffered_reader, write_chunks_to_fd
from vgi_rpc._logs import WIRE_TRANSPORT_LOGGER, lazy_logger
from vgi_rpc.rpc import NO_CAPABILITIES, ChannelCapabilities, SegmentOffer

_log = lazy_logger(WIRE_TRANSPORT_LOGGER)


class FdChannel:
    """Reads from one descriptor and writes to another; owns both unless told otherwise.

    Args:
        read_fd: Descriptor the peer's bytes arrive on.
        write_fd: Descriptor our bytes leave on.
        describe_failure: Builds the error for a vanished peer (adds exit status and stderr
            for a subprocess); defaults to a plain ``TransportError``.
        owns_fds: Close both descriptors in ``close()``.
        segment_offer: The peer (our own worker or thread) may be offered a shared-memory
            segment: automatic shared memory for a client connection on this channel.
    """

    def __init__(
        self,
        read_fd: int,
        write_fd: int,
        *,
        describe_failure: Callable[[str], TransportError] | None = None,
        owns_fds: bool = True,
        segment_offer: SegmentOffer | None = None,
    ) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._reader = buffered_reader(read_fd)
        self._describe_failure = describe_failure or TransportError
        self._owns_fds = owns_fds
        self._capabilities = (
            ChannelCapabilities(segment_offer=segment_offer) if segment_offer else NO_CAPABILITIES
        )
        self._closed = False
        _log.debug("channel open: read fd %d, write fd %d", read_fd, write_fd)

    @property
    def reader(self) -> io.BufferedReader:
        """Buffered reader on the read descriptor."""
        return self._reader

    def capabilities(self) -> ChannelCapabilities:
        """A segment offer when the peer is our own worker or thread; nothing more."""
        return self._capabilities

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Send all chunks with vectored writes."""
        try:
            if len(chunks) == 1:  # the usual small message: one plain write takes it whole
                chunk = chunks[0]
                if type(chunk) is not memoryview and len(chunk) <= MAX_IO_CHUNK:
                    written = os.write(self._write_fd, chunk)
                    if written == len(chunk):
                        return
                    chunks = (memoryview(chunk).cast("B")[written:],)
            write_chunks_to_fd(self._write_fd, chunks)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise self.peer_failure(f"the peer stopped reading: {exc}") from exc
        except OSError as exc:
            raise TransportError(f"writing to the peer failed: {exc}") from exc

    def peer_failure(self, detail: str) -> TransportError:
        """The error describing a vanished peer."""
        return self._describe_failure(detail)

    def close_write(self) -> None:
        """Close only our sending side, so the peer sees end of file."""
        if self._owns_fds and self._write_fd >= 0:
            fd, self._write_fd = self._write_fd, -1
            _close_quietly(fd)

    def close(self) -> None:
        """Close both descriptors (when owned); idempotent."""
        if self._closed:
            return
        self._closed = True
        _log.debug("channel close: read fd %d, write fd %d", self._read_fd, self._write_fd)
        if self._owns_fds:
            self.close_write()
            fd, self._read_fd = self._read_fd, -1
            if fd >= 0:
                _close_quietly(fd)


PIPE_SIZE = 1 << 20


def widen_pipe(fd: int) -> None:
    """Grow a pipe's kernel buffer to 1 MiB (Linux): fewer wake-ups per large batch.

    Best effort: other systems, or a lower ``pipe-max-size``, keep the default.
    """
    import fcntl  # the spawning side's: a worker serving on stdin/stdout never widens

    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, set_size, PIPE_SIZE)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


__all__ = ["PIPE_SIZE", "FdChannel", "widen_pipe"]
