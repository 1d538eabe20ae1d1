"""Server side of the shared-memory side channel: resolve pointer batches a client sent.

A client names its segment in request metadata (spec section 11); the server
attaches once per connection, reads pointer batches out of it zero-copy and
frees each allocation once the batch has been used (the reader frees),
always before the response's first byte leaves, so the client never touches
the allocation table at the same time.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from vgi_rpc._errors import IPCError, TransportError
from vgi_rpc._ipc import Chunk, Metadata
from vgi_rpc._ipc_reader import ReadPolicy, validate_batch
from vgi_rpc._logs import DEBUG, WIRE_TRANSPORT_LOGGER, lazy_logger
from vgi_rpc.rpc._channel import Channel
from vgi_rpc.wire import keys as k

if TYPE_CHECKING:
    # imported where a segment is attached: a worker never offered one does not load them
    from vgi_rpc.shm import ShmSegment

_log = lazy_logger(WIRE_TRANSPORT_LOGGER)

Release = Callable[[], None]


def _noop() -> None:
    pass


class InboundShm:
    """The segment one connection's client advertised (one at a time).

    A pooled worker sees a new segment per borrow: attaching the new one
    detaches the previous, so a long-lived worker maps one segment at most.
    """

    def __init__(
        self,
        static: ShmSegment | None = None,
        policy: ReadPolicy | None = None,
        peer_uid: int | None = None,
    ) -> None:
        self._static = static
        self._segment: ShmSegment | None = None
        self._policy = policy
        self._peer_uid = peer_uid

    def segment(self, metadata: Metadata) -> ShmSegment | None:
        """The segment a request names (attached on first use), else the static one, if any.

        ``static`` is a segment both ends were given out of band (``ShmPipeTransport``).
        Only a private segment of the peer's user is attached (``ShmSegment.attach``).
        """
        raw = metadata.get(k.SHM_SEGMENT_NAME_KEY)
        if raw is None:
            return self._static
        name = raw.decode("utf-8", "replace").lstrip("/")
        for current in (self._static, self._segment):
            if current is not None and current.name.lstrip("/") == name:
                return current
        size = metadata.get(k.SHM_SEGMENT_SIZE_KEY)
        from vgi_rpc.shm import ShmSegment

        try:
            declared = int(size) if size else None
            segment = ShmSegment.attach(name, declared, owner_uid=self._peer_uid)
        except (OSError, ValueError) as exc:
            raise IPCError(
                f"cannot attach the client's shared memory {name[:80]!r}: {exc}"
            ) from exc
        self.close()
        self._segment = segment
        _log.debug("attached client shared memory %s", name)
        return segment

    def resolve(
        self, batch: pa.RecordBatch, metadata: Metadata | None, segment: ShmSegment | None
    ) -> tuple[pa.RecordBatch, Metadata | None, Release]:
        """Replace a pointer batch by the batch it points at; returns a release to call after use."""
        if (
            not metadata
            or batch.num_rows
            or k.SHM_OFFSET_KEY not in metadata
            or k.LOG_LEVEL_KEY in metadata
        ):
            return batch, metadata, _noop
        if segment is None:
            raise IPCError("received a shared-memory pointer batch but no segment was negotiated")
        from vgi_rpc.rpc._shm_pointer import read_pointed

        resolved, rest, offset, _ = read_pointed(segment, batch, metadata)
        if self._policy is not None:
            validate_batch(resolved, self._policy.validation)
        if _log.isEnabledFor(DEBUG):
            _log.debug(
                "resolved a %d-row batch from shared memory %s at %d+%s",
                resolved.num_rows,
                segment.name,
                offset,
                metadata.get(k.SHM_LENGTH_KEY, b"?").decode(),
            )
        return resolved, rest, _once(lambda: segment.free(offset))

    def close(self) -> None:
        """Detach the attached segment (its creator unlinks it; a static one stays open)."""
        if self._segment is not None:
            self._segment.close()
            self._segment = None

    def end(self) -> None:
        """The connection ended: detach, and remove an automatic segment's name if still there.

        Its client unlinks that name as soon as we have mapped it; a client killed
        in between cannot, and no one else would.
        """
        segment = self._segment
        self.close()
        if segment is not None:
            from vgi_rpc.shm import unlink_private

            unlink_private(segment.name)


class ReleaseBeforeSend:
    """A channel that runs ``release`` just before its first write.

    The request's allocation is freed after the call used it and before the
    client can see any response byte: the client only touches the shared
    allocation table again once it has a response, so the two never race.
    """

    def __init__(self, channel: Channel, release: Release) -> None:
        self._channel = channel
        self._release: Release | None = release

    @property
    def reader(self) -> io.BufferedReader:
        """The wrapped channel's reader."""
        return self._channel.reader

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Release (once), then send."""
        if self._release is not None:
            self.release()
        self._channel.write_chunks(chunks)

    def release(self) -> None:
        """Run the release now if it has not run yet."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def peer_failure(self, detail: str) -> TransportError:
        """The wrapped channel's peer failure."""
        return self._channel.peer_failure(detail)

    def close(self) -> None:
        """Close the wrapped channel."""
        self._channel.close()


def _once(release: Release) -> Release:
    done = False

    def run() -> None:
        nonlocal done
        if not done:
            done = True
            release()

    return run


__all__ = ["InboundShm", "Release", "ReleaseBeforeSend"]
