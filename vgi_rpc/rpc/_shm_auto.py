"""Automatic shared memory: a client connection sets up a segment by itself.

The transport declares that the peer is on this host under our user
(``SegmentOffer``). Nothing happens until a batch of ``AUTO_SHM_TRIGGER``
bytes or more crosses the connection inline, either way. Then, before the
next request, the client creates a private segment sized for such batches,
names it in ``__transport_options__`` (our server maps it to answer, so a
worker that cannot, being on another host or user behind the pipe, says
no) and names it in every request from then on: large batches travel as
pointer batches, exactly as with a segment made up front.

Two rules keep this compatible with every server:

- a *request* batch goes by pointer only into a segment an earlier,
  answered request already named (a server that caches the connection's
  segment by name would otherwise read the pointer in the previous one);
- the segment's name is unlinked as soon as the first result (not an
  error) of a request naming it arrives: the server has mapped it by then,
  and from that point nothing is left in ``/dev/shm`` however either process
  ends (our server also removes a name a killed client left behind).

A batch that no longer fits makes the next request move to a segment twice
as large (or as the batch needs), up to ``SegmentOffer.max_size``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pyarrow as pa

from vgi_rpc._ipc import Metadata
from vgi_rpc._logs import WIRE_TRANSPORT_LOGGER
from vgi_rpc.rpc._channel import SegmentOffer
from vgi_rpc.rpc._shm_client import ClientShm
from vgi_rpc.shm import HEADER_SIZE, ShmSegment, shm_free_bytes

# A batch this large crossing inline sets a segment up; once there is one,
# batches from SHM_MIN_BATCH_BYTES (128 KiB) up go through it.
AUTO_SHM_TRIGGER = 1 << 20
AUTO_SHM_MIN_SIZE = 4 << 20
_MiB = 1 << 20

_log = logging.getLogger(WIRE_TRANSPORT_LOGGER)

Probe = Callable[[Metadata], bool]  # asks the server whether it can use the advertised segment


class AutoShm:
    """The automatic segment of one client connection (``None`` until a large batch)."""

    def __init__(self, offer: SegmentOffer) -> None:
        self.offer = offer
        self.client: ClientShm | None = None
        self.wanted = 0  # largest batch that crossed inline since the last request
        self.may_point = False  # an answered request named the current segment
        self.unlink_pending = False
        self.growing = not offer.refused

    def saw(self, batch: pa.RecordBatch) -> None:
        """``batch`` crossed inline: if large, set up (or grow) a segment before the next request.

        A pointer batch has no rows and counts for nothing.
        """
        if self.growing and batch.num_rows:
            size = batch.get_total_buffer_size()  # cheap; a slice counts its whole buffers
            if size >= AUTO_SHM_TRIGGER and size > self.wanted:
                self.wanted = size

    def before_request(self, batch: pa.RecordBatch, probe: Probe) -> bool:
        """A request is about to leave an idle connection: set up, grow or tidy the segment.

        Returns whether ``client`` changed (the request metadata must name the new one).
        """
        if self.client is None:
            self.saw(batch)  # a large request sets one up at once
        if self.wanted and self.prepare(probe):
            return True
        if self.client is not None:
            self.client.reclaim()  # the segment is this connection's alone; the server idle
        return False

    def outgoing_request(
        self, batch: pa.RecordBatch, metadata: Metadata | None
    ) -> tuple[pa.RecordBatch, Metadata | None]:
        """A request batch, by pointer once a served request has named the segment."""
        client = self.client
        if client is None:
            return batch, metadata
        placed, metadata = client.outgoing(batch, metadata, place=self.may_point)
        if self.may_point and placed is batch:
            self.saw(batch)  # did not fit: grow for next time
        return placed, metadata

    def prepare(self, probe: Probe) -> bool:
        """Before a request (the connection idle): act on a noted batch; whether ``client`` changed."""
        wanted, self.wanted = self.wanted, 0
        size = self._next_size(wanted)
        if size is None:
            self.growing = False
            return False
        try:
            segment = ShmSegment.create_private(size)
        except OSError as exc:
            _log.info("no automatic shared memory (%s): batches stay inline", exc)
            self.growing = False
            return False
        candidate = ClientShm(segment)
        try:
            accepted = probe(candidate.advert)
        except BaseException:
            _release(segment)
            raise
        if not accepted:
            _release(segment)
            self.growing = False
            if self.client is None:
                self.offer.refused = True
                _log.info("the server does not take shared memory; large batches go inline")
            return False
        self.release()
        self.client = candidate
        self.may_point = False
        _log.debug("automatic shared memory %s (%d bytes)", segment.name, segment.size)
        return True

    def _next_size(self, wanted: int) -> int | None:
        """The new segment's size: room for several batches of ``wanted`` bytes, within limits."""
        current = self.client.segment.size if self.client is not None else 0
        # three at once: a request and its result, or the output a caller still holds
        # while the next one arrives (every page is reserved up front, so not more)
        size = max(AUTO_SHM_MIN_SIZE, 3 * wanted + HEADER_SIZE, 2 * current)
        size = min(-(-size // _MiB) * _MiB, self.offer.max_size)
        free = shm_free_bytes()
        if free is not None:
            size = min(size, free // 2)  # never take most of what is left for everyone else
        return size if size > max(current, wanted + HEADER_SIZE + _MiB) else None

    def received(self, batch: pa.RecordBatch, error: bool) -> None:
        """A response batch arrived (a pointer batch has no rows and counts for no size)."""
        if self.unlink_pending and not error:
            self.response_seen()
        if self.growing:  # ``saw``, inline: this runs for every batch
            size = batch.get_total_buffer_size()  # came inline: a large one sets up or grows
            if size >= AUTO_SHM_TRIGGER and size > self.wanted and batch.num_rows:
                self.wanted = size

    def request_sent(self, method: str) -> None:
        """A request naming the current segment left: a result proves the server mapped it.

        Framework methods (``__transport_options__``, ``__describe__``) prove
        nothing: a server may answer them without looking at the segment.
        """
        if self.client is not None and not self.may_point and not method.startswith("__"):
            self.unlink_pending = True

    def response_seen(self) -> None:
        """A result (not an error) of such a request arrived: unlink the name.

        A server that caches the connection's segment maps it before it calls
        the method; an error may come earlier (an unknown protocol, say).
        """
        self.unlink_pending = False
        if self.client is not None:
            self.client.segment.unlink()
            self.may_point = True

    def release(self) -> None:
        """Let the current segment go (batches still using it keep their mapping)."""
        client, self.client = self.client, None
        self.may_point = self.unlink_pending = False
        if client is not None:
            _release(client.segment)


def _release(segment: ShmSegment) -> None:
    segment.unlink()
    segment.close()


__all__ = ["AUTO_SHM_MIN_SIZE", "AUTO_SHM_TRIGGER", "AutoShm", "Probe"]
