"""The server's records: held objects, pending puts, and the ``read`` producer state.

``ReadState`` travels in HTTP stream tokens, so it holds only ids and
offsets; it finds its server through ``SERVERS`` (one entry per instance in
this process).
"""

from __future__ import annotations

import dataclasses
import mmap
import os
from typing import Protocol

import numpy as np
import pyarrow as pa

from vgi_rpc import CallContext, OutputCollector, ProducerState
from vgi_rpc.services.objectstore._errors import ObjectNotFound
from vgi_rpc.services.objectstore._memory import Segment


@dataclasses.dataclass
class Entry:
    """An object this instance knows.

    Its bytes are in shared memory (``segment``), held inline (``data``, small
    objects), or only in the store (neither).
    """

    id: int
    kind: str
    typename: str
    nbytes: int
    properties: dict[str, str]
    segment: Segment | None
    persisted: bool = False
    data: bytes | None = None
    view: pa.Buffer | None = None  # the segment mapped once, for streaming it out
    opened: bytes | None = None  # open()'s answer naming the file, kept while it stays there

    @property
    def held(self) -> bool:
        """Whether the bytes are in this instance's memory."""
        return self.segment is not None or self.data is not None

    def buffer(self) -> pa.Buffer:
        """The object's bytes (zero-copy; the segment stays mapped until ``unmap``)."""
        if self.data is not None:
            return pa.py_buffer(self.data)
        view = self.view
        if view is None:
            assert self.segment is not None
            view = self.view = mapped(self.segment)
        return view

    def unmap(self) -> None:
        """Drop this server's own mapping (slices still being sent keep theirs alive)."""
        self.view = None
        self.opened = None


@dataclasses.dataclass
class Pending:
    """An allocated, unsealed put; ``owner`` is its connection (``None`` over HTTP).

    A ``spare`` was handed out by ``seal_next`` for the client's next put;
    the client may never use it.
    """

    segment: Segment
    kind: str
    owner: int | None
    touched: float
    spare: bool = False


class EntrySource(Protocol):
    """What ``ReadState`` needs from the server."""

    def local_entry(self, object_id: int) -> Entry:
        """The object, in memory."""
        ...


SERVERS: dict[str, EntrySource] = {}


def map_file(path: str) -> pa.Buffer:
    """A file's bytes, mapped read-only; the mapping lives as long as the buffer.

    ``mmap`` rather than ``pa.memory_map``: Arrow's reads advise the kernel to
    fault the whole range in (``MADV_WILLNEED``), which costs time in
    proportion to the size; a view should cost the same at any size.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return pa.py_buffer(b"")
        return pa.py_buffer(mmap.mmap(fd, size, prot=mmap.PROT_READ))
    finally:
        os.close(fd)


def mapped(segment: Segment) -> pa.Buffer:
    """The segment's bytes, mapped read-only (zero-copy)."""
    return map_file(segment.path)


@dataclasses.dataclass
class ReadState(ProducerState):
    """Producer state of ``read``: which object, where it is, how much per batch."""

    instance_id: str
    object_id: int
    offset: int
    chunk: int

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        """Emit the next chunk of the object's bytes, zero-copy from its shared memory."""
        server = SERVERS.get(self.instance_id)
        if server is None:
            raise ObjectNotFound(f"instance {self.instance_id} is not serving here")
        entry = server.local_entry(self.object_id)
        if self.offset >= entry.nbytes:
            out.finish()
            return
        size = min(self.chunk, entry.nbytes - self.offset)
        data = entry.buffer().slice(self.offset, size)
        offsets = pa.array(np.array([0, size], dtype=np.int32)).buffers()[1]
        out.emit_arrays([pa.Array.from_buffers(pa.binary(), 1, [None, offsets, data])])
        self.offset += size


__all__ = ["SERVERS", "Entry", "EntrySource", "Pending", "ReadState", "map_file", "mapped"]
