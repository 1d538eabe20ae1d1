"""The one interface the RPC core needs from a transport.

A ``Channel`` is a bidirectional byte stream: a buffered reader for
incoming IPC streams, a vectored write for outgoing chunks, and a way to
describe a dead peer. A channel that can do more (a shared-memory segment
both ends were given, the peer's credentials, a peer on this host that may be
offered a segment) declares it through
``capabilities()``; the core asks ``capabilities_of(channel)`` and never
looks for transport attributes. Concrete channels live in ``vgi_rpc.transports``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from vgi_rpc._errors import TransportError
from vgi_rpc._ipc import Chunk
from vgi_rpc._record import record

if TYPE_CHECKING:
    from vgi_rpc.shm import ShmSegment

# The largest segment automatic shared memory grows to, header included (``shm_max_size``).
DEFAULT_SHM_MAX_SIZE = 1 << 30
# Smaller batches are cheaper inline: shm saves a copy through the kernel but costs
# an allocation, a pointer round trip and a free. The reference uses the same gate.
# (Here, not in _shm_pointer: the byte-stream loop needs it before any segment exists.)
SHM_MIN_BATCH_BYTES = 128 * 1024


class Channel(Protocol):
    """A bidirectional byte stream between one client and one server."""

    @property
    def reader(self) -> io.BufferedReader:
        """Buffered reader of the bytes the peer sends."""
        ...

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Send every chunk in order; raise ``TransportError`` if the peer is gone."""
        ...

    def peer_failure(self, detail: str) -> TransportError:
        """Build the error to raise when the peer vanished (may add exit status, stderr)."""
        ...

    def close(self) -> None:
        """Close both directions; idempotent."""
        ...


@record()
class SegmentOffer:
    """The peer is on this host under our user: a client may give it a segment of its own.

    A transport attaches one to the client side of a pipe to our own worker or
    thread, or of a unix socket whose peer runs as our user; never to TCP or HTTP.

    Attributes:
        max_size: The largest segment a connection may create, header included.
        refused: Set once the peer said no (or could not map one): never asked again
            on this channel, a pooled worker's included.
    """

    __slots__ = ("max_size", "refused")

    max_size: int
    refused: bool

    def __init__(self, max_size: int = DEFAULT_SHM_MAX_SIZE, refused: bool = False) -> None:
        self.max_size = max_size
        self.refused = refused


@record(frozen=True)
class ChannelCapabilities:
    """What a channel can do beyond moving bytes.

    Attributes:
        shared_segment: A shared-memory segment both ends were given out of band
            (large batches travel through it as pointer batches).
        peer_uid: The peer's user id, when the transport knows it (unix sockets);
            a client's shared memory must belong to this user.
        segment_offer: Set on a client channel whose peer may be offered a segment
            (automatic shared memory).
    """

    __slots__ = ("peer_uid", "segment_offer", "shared_segment")

    shared_segment: ShmSegment | None
    peer_uid: int | None
    segment_offer: SegmentOffer | None

    def __init__(
        self,
        shared_segment: ShmSegment | None = None,
        peer_uid: int | None = None,
        segment_offer: SegmentOffer | None = None,
    ) -> None:
        init = object.__setattr__
        init(self, "shared_segment", shared_segment)
        init(self, "peer_uid", peer_uid)
        init(self, "segment_offer", segment_offer)


NO_CAPABILITIES = ChannelCapabilities()


@runtime_checkable
class DeclaresCapabilities(Protocol):
    """A channel that says what it can do beyond moving bytes."""

    def capabilities(self) -> ChannelCapabilities:
        """This channel's capabilities."""
        ...


def capabilities_of(channel: object) -> ChannelCapabilities:
    """What ``channel`` declares; a channel that declares nothing only moves bytes."""
    if isinstance(channel, DeclaresCapabilities):
        return channel.capabilities()
    return NO_CAPABILITIES


__all__ = [
    "DEFAULT_SHM_MAX_SIZE",
    "NO_CAPABILITIES",
    "Channel",
    "ChannelCapabilities",
    "DeclaresCapabilities",
    "SegmentOffer",
    "capabilities_of",
]
