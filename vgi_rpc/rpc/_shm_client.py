"""Client side of the shared-memory side channel (wire spec sections 11 and 15).

A ``ClientShm`` wraps the segment a client owns: it names the segment in
every request, stores large outgoing batches there as pointer batches, and
resolves the pointer batches the server sends back without copying.

Freeing follows one rule: the allocation table has no lock, so it is only
touched while the peer waits for us. Received allocations are freed just
before the next request or stream input is written (or at close), and only
once nothing references the batch read from them any more; a batch the
caller keeps holds its allocation until it is dropped.
"""

from __future__ import annotations

import logging
import weakref

import pyarrow as pa

from vgi_rpc._ipc import Metadata
from vgi_rpc._logs import WIRE_TRANSPORT_LOGGER
from vgi_rpc.rpc._shm_pointer import SHM_MIN_BATCH_BYTES, read_pointed, to_pointer
from vgi_rpc.shm import ShmSegment
from vgi_rpc.wire import keys as k

_log = logging.getLogger(WIRE_TRANSPORT_LOGGER)


class ClientShm:
    """A client-owned segment in use on one connection.

    Args:
        segment: The segment (the caller keeps ownership and unlinks it).
        min_bytes: Batches smaller than this are sent inline.
    """

    def __init__(self, segment: ShmSegment, *, min_bytes: int = SHM_MIN_BATCH_BYTES) -> None:
        self.segment = segment
        self.min_bytes = min_bytes
        self.advert: Metadata = {
            k.SHM_SEGMENT_NAME_KEY: segment.name.encode(),
            k.SHM_SEGMENT_SIZE_KEY: str(segment.size).encode(),
        }
        # (offset, weak reference to the view a received batch's buffers hold)
        self._held: list[tuple[int, weakref.ref[memoryview]]] = []

    def outgoing(
        self, batch: pa.RecordBatch, metadata: Metadata | None, *, place: bool = True
    ) -> tuple[pa.RecordBatch, Metadata | None]:
        """Free what can be freed, then store ``batch`` as a pointer when large and there is room.

        ``place=False`` only frees (the batch goes inline).
        """
        if self._held:
            self.collect()
        if not place:
            return batch, metadata
        return to_pointer(self.segment, batch, metadata, self.min_bytes)

    def incoming(
        self, batch: pa.RecordBatch, metadata: Metadata
    ) -> tuple[pa.RecordBatch, Metadata]:
        """Resolve a pointer batch the server wrote into our segment (zero-copy)."""
        resolved, rest, offset, view = read_pointed(self.segment, batch, metadata)
        self._held.append((offset, weakref.ref(view)))
        return resolved, rest

    def collect(self) -> None:
        """Free allocations whose batches are gone; call only while the server waits for us."""
        if not self._held:
            return
        keep = []
        for offset, ref in self._held:
            if ref() is None:
                self.segment.free(offset)
            else:
                keep.append((offset, ref))
        self._held = keep

    def reclaim(self) -> None:
        """Free every allocation no received batch holds (a private segment, between calls).

        Between calls the server holds nothing in our segment: it frees what it
        read before answering. The reference 0.42.3 server leaves each stream's
        last input allocated; without this a long-lived connection would fill up.
        Only for a segment no other connection uses, while the server waits.
        """
        self.collect()
        held = {offset for offset, _ in self._held}
        for offset, _ in self.segment.allocations():
            if offset not in held:
                self.segment.free(offset)

    @property
    def held(self) -> int:
        """Received allocations still referenced by live batches."""
        return len(self._held)


__all__ = ["ClientShm"]
