"""Server side of the shared-memory side channel: resolve pointer batches a client sent.

A client names its segment in request metadata (spec section 11); the server
attaches once per connection, reads pointer batches out of it zero-copy and
frees each allocation once the batch has been used (the reader frees).
Outputs are still sent inline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pyarrow as pa

from vgi_rpc._errors import IPCError
from vgi_rpc._ipc import Metadata
from vgi_rpc._logs import WIRE_TRANSPORT_LOGGER
from vgi_rpc.shm import ShmSegment
from vgi_rpc.wire import _keys as k

_log = logging.getLogger(WIRE_TRANSPORT_LOGGER)

Release = Callable[[], None]


def _noop() -> None:
    pass


class InboundShm:
    """The segments one connection's client advertised."""

    def __init__(self) -> None:
        self._segments: dict[str, ShmSegment] = {}

    def segment(self, metadata: Metadata) -> ShmSegment | None:
        """The segment a request names (attached on first use), if it names one."""
        raw = metadata.get(k.SHM_SEGMENT_NAME_KEY)
        if raw is None:
            return None
        name = raw.decode()
        segment = self._segments.get(name)
        if segment is None:
            size = metadata.get(k.SHM_SEGMENT_SIZE_KEY)
            try:
                segment = ShmSegment.attach(name, int(size) if size else None)
            except (OSError, ValueError) as exc:
                raise IPCError(f"cannot attach the client's shared memory {name!r}: {exc}") from exc
            self._segments[name] = segment
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
        try:
            offset = int(metadata[k.SHM_OFFSET_KEY])
            length = int(metadata[k.SHM_LENGTH_KEY])
        except (KeyError, ValueError) as exc:
            raise IPCError(f"malformed shared-memory pointer: {exc}") from exc
        resolved = segment.read_batch(offset, length)
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug(
                "resolved a %d-row batch from shared memory %s at %d+%d",
                resolved.num_rows,
                segment.name,
                offset,
                length,
            )
        rest = {
            key: value
            for key, value in metadata.items()
            if key not in (k.SHM_OFFSET_KEY, k.SHM_LENGTH_KEY)
        }
        rest[k.SHM_SOURCE_KEY] = segment.name.encode()
        return resolved, rest, lambda: segment.free(offset)

    def close(self) -> None:
        """Detach every segment (their creator unlinks them)."""
        for segment in self._segments.values():
            segment.close()
        self._segments.clear()


__all__ = ["InboundShm", "Release"]
