"""The one interface the RPC core needs from a transport.

A ``Channel`` is a bidirectional byte stream: a buffered reader for
incoming IPC streams, a vectored write for outgoing chunks, and a way to
describe a dead peer. Concrete channels live in ``vgi_rpc.transports``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Protocol

from vgi_rpc._errors import TransportError
from vgi_rpc._ipc import Chunk


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


__all__ = ["Channel"]
