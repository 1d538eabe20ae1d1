"""The one interface the RPC core needs from a transport.

A ``Channel`` is a bidirectional byte stream: a buffered reader for
incoming IPC streams, a vectored write for outgoing chunks, and a way to
describe a dead peer. A channel that can do more (a shared-memory segment
both ends were given, the peer's credentials) declares it through
``capabilities()``; the core asks ``capabilities_of(channel)`` and never
looks for transport attributes. Concrete channels live in ``vgi_rpc.transports``.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from vgi_rpc._errors import TransportError
from vgi_rpc._ipc import Chunk
from vgi_rpc.shm import ShmSegment


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


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelCapabilities:
    """What a channel can do beyond moving bytes.

    Attributes:
        shared_segment: A shared-memory segment both ends were given out of band
            (large batches travel through it as pointer batches).
        peer_uid: The peer's user id, when the transport knows it (unix sockets);
            a client's shared memory must belong to this user.
    """

    shared_segment: ShmSegment | None = None
    peer_uid: int | None = None


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
    "NO_CAPABILITIES",
    "Channel",
    "ChannelCapabilities",
    "DeclaresCapabilities",
    "capabilities_of",
]
