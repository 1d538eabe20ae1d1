"""Shared memory beside a byte transport: ``ShmPipeTransport`` and client-owned segments.

Three ways to share a segment (wire spec section 11):

- automatic (the default on local transports): the client channel carries a
  ``SegmentOffer`` and the connection sets a segment up by itself on its first
  large batch (``vgi_rpc.rpc``'s ``AutoShm``);
- static: both ends are handed the same ``ShmSegment`` out of band and wrap
  their channel in ``ShmPipeTransport(channel, shm)``;
- negotiated up front (``shm_size=N``): a client creates a segment for one
  connection, asks the server with ``__transport_options__`` (section 15) and,
  if it agrees, names the segment in every request. The client owns the
  segment and unlinks it.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence

from vgi_rpc._errors import TransportError
from vgi_rpc._ipc import Chunk
from vgi_rpc._logs import WIRE_TRANSPORT_LOGGER
from vgi_rpc.rpc import (
    DEFAULT_SHM_MAX_SIZE,
    Channel,
    ChannelCapabilities,
    ClientShm,
    RpcConnection,
    SegmentOffer,
    capabilities_of,
    server_takes_shm,
)
from vgi_rpc.shm import HEADER_SIZE, ShmSegment

_log = logging.getLogger(WIRE_TRANSPORT_LOGGER)


class ShmPipeTransport:
    """A channel plus a shared-memory segment both ends were given.

    Pass it to ``RpcConnection`` on the client and to ``RpcServer.serve`` on the
    server; large batches then travel through ``shm`` as pointer batches.
    Closing it closes the channel only: the segment's owner closes and unlinks it.
    """

    def __init__(self, pipe: Channel, shm: ShmSegment) -> None:
        self._pipe = pipe
        self._shm = shm

    @property
    def shm(self) -> ShmSegment:
        """The shared segment."""
        return self._shm

    @property
    def pipe(self) -> Channel:
        """The wrapped channel."""
        return self._pipe

    def capabilities(self) -> ChannelCapabilities:
        """The shared segment, plus whatever the wrapped channel declares."""
        inner = capabilities_of(self._pipe)
        return ChannelCapabilities(shared_segment=self._shm, peer_uid=inner.peer_uid)

    @property
    def reader(self) -> io.BufferedReader:
        """The channel's reader."""
        return self._pipe.reader

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Send through the channel."""
        self._pipe.write_chunks(chunks)

    def peer_failure(self, detail: str) -> TransportError:
        """The channel's error for a vanished peer."""
        return self._pipe.peer_failure(detail)

    def close(self) -> None:
        """Close the channel (not the segment)."""
        self._pipe.close()


def check_shm_size(size: int | None, max_size: int = DEFAULT_SHM_MAX_SIZE) -> None:
    """Refuse segment sizes that cannot hold the header plus data, before anything starts.

    ``size``: ``None`` (automatic), 0 (off) or a segment size; ``max_size``: the
    automatic segment's ceiling.

    Raises:
        ValueError: A size is not an int larger than the 64 KiB header.
    """
    if size is not None and (type(size) is not int or 0 < size <= HEADER_SIZE or size < 0):
        raise ValueError(  # bool and float are refused too
            f"shm_size must be 0 (off) or an int above {HEADER_SIZE} (the segment header), "
            f"got {size!r}"
        )
    if type(max_size) is not int or max_size <= HEADER_SIZE:
        raise ValueError(
            f"shm_max_size must be an int above {HEADER_SIZE} (the segment header), "
            f"got {max_size!r}"
        )


def segment_offer(size: int | None, max_size: int) -> SegmentOffer | None:
    """The offer a local client channel carries: automatic shared memory unless ``shm_size`` is set."""
    return SegmentOffer(max_size) if size is None else None


def start_shm(
    connection: RpcConnection, size: int, capable: bool | None = None
) -> ShmSegment | None:
    """Create a segment for ``connection`` if the server takes shared memory.

    ``capable`` is a cached answer to ``__transport_options__`` for this
    worker; ``None`` asks. Returns the segment (the caller must ``end_shm`` it)
    or ``None`` when the connection stays inline.
    """
    if capable is None:
        capable = server_takes_shm(connection)
    if not capable:
        _log.info("the server does not take shared memory; large batches go inline")
        return None
    segment = ShmSegment.create(size)
    connection.use_shm(ClientShm(segment))
    _log.debug("using shared memory %s (%d bytes)", segment.name, segment.size)
    return segment


def end_shm(segment: ShmSegment | None) -> None:
    """Unmap and remove a client-owned segment (batches still using it keep their mapping)."""
    if segment is None:
        return
    with contextlib.suppress(OSError):
        segment.close()
    segment.unlink()
    _log.debug("removed shared memory %s", segment.name)


__all__ = ["ShmPipeTransport", "check_shm_size", "end_shm", "segment_offer", "start_shm"]
