"""The object store's wire API: a ``typing.Protocol`` any vgi-rpc client can call.

Objects are bytes on the server: an Arrow IPC stream for a value (see
``_codec``) or the raw bytes of a blob. A put is ``put_inline`` (small), or
``allocate`` + (a local client writes the file it is given, a remote one calls
``write``) + ``seal``; ``seal_next`` seals and hands a local client the file of
its next put at once, so a stream of puts takes one round trip each. A get is ``open`` (small objects come back inline, a
local client maps the file it names) and, for a large remote object, the
``read`` producer stream of bounded chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from vgi_rpc import ArrowSerializableDataclass, Stream, StreamState

VALUE = "value"
BLOB = "blob"
CHUNK_SCHEMA = pa.schema([pa.field("chunk", pa.binary(), nullable=False)])


@dataclass(frozen=True)
class ServerInfo(ArrowSerializableDataclass):
    """Who the server is and what its limits are.

    ``memory_warm``: bytes of deleted objects' memory kept for later puts
    (given back when unused for a while, and at shutdown). ``memory_spare``:
    bytes handed to connected local clients for their next put (``seal_next``;
    given back when the client disconnects, or to make room). ``warm_limit``
    and ``warm_idle``: the server's ``--warm`` and ``--warm-idle``.
    """

    instance_id: str
    hostname: str
    pid: int
    shm_dir: str
    store: str
    memory_limit: int
    memory_used: int
    memory_warm: int
    memory_spare: int
    warm_limit: int
    warm_idle: float
    max_inline: int
    max_chunk: int


@dataclass(frozen=True)
class ObjectMeta(ArrowSerializableDataclass):
    """What the store knows about an object.

    ``isglobal``: persisted, so every instance on the store sees it.
    ``islocal``: held in this instance's memory. ``path``: its shared-memory
    file, for a client on this host (``""`` for a small object held inline).
    """

    id: int
    typename: str
    nbytes: int
    kind: str
    isglobal: bool
    islocal: bool
    instance_id: str
    hostname: str
    properties: dict[str, str]
    names: list[str]
    path: str = ""


@dataclass(frozen=True)
class Opened:
    """What a get needs: the bytes of a small object, else its shared-memory file (if any).

    On the wire ``open`` answers a ``map<utf8, binary>`` (see ``to_wire``): a
    dataclass result costs the core a nested IPC stream per call, and this is
    the hot path of every get.
    """

    id: int
    kind: str
    nbytes: int
    path: str
    data: bytes | None

    def to_wire(self) -> dict[str, bytes]:
        """``id`` and ``nbytes`` as decimal ASCII, ``kind`` and ``path`` as UTF-8, ``data`` if any."""
        wire = {
            "id": b"%d" % self.id,
            "kind": self.kind.encode(),
            "nbytes": b"%d" % self.nbytes,
            "path": self.path.encode(),
        }
        if self.data is not None:
            wire["data"] = self.data
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, bytes]) -> Opened:
        """Parse ``open``'s answer (``ValueError`` if malformed)."""
        try:
            return cls(
                int(wire["id"]),
                wire["kind"].decode(),
                int(wire["nbytes"]),
                wire["path"].decode(),
                wire.get("data"),
            )
        except (KeyError, UnicodeDecodeError) as exc:
            raise ValueError(f"malformed open() answer: {exc}") from None


@dataclass(frozen=True)
class Allocation(ArrowSerializableDataclass):
    """A pending put: write ``size`` bytes (to ``path``, or with ``write``), then ``seal``."""

    put_id: int
    size: int
    path: str


@dataclass(frozen=True)
class ObjectPage(ArrowSerializableDataclass):
    """One page of ``list_objects``; pass ``next_page_token`` for the next (``None``: last)."""

    objects: list[ObjectMeta]
    next_page_token: str | None


class ObjectStore(Protocol):
    """Immutable objects in shared memory, names, blobs, and persistence through ``pyarrow.fs``."""

    def info(self) -> ServerInfo:
        """The server's identity and limits."""
        ...

    def put_inline(
        self,
        data: bytes,
        kind: str,
        typename: str,
        name: str | None,
        persist: bool,
        properties: dict[str, str],
    ) -> int:
        """Store a small object sent whole; optionally name and persist it; return its id."""
        ...

    def allocate(self, size: int, kind: str) -> Allocation:
        """Reserve ``size`` bytes for a put (freed if never sealed, or if the client disconnects)."""
        ...

    def write(self, put_id: int, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` of a pending put; return the bytes written so far."""
        ...

    def seal(
        self,
        put_id: int,
        typename: str,
        name: str | None,
        persist: bool,
        properties: dict[str, str],
    ) -> int:
        """Make a pending put an immutable object (validated first); return its id."""
        ...

    def seal_next(
        self,
        put_id: int,
        typename: str,
        name: str | None,
        persist: bool,
        properties: dict[str, str],
        next_size: int,
        drop: int,
        reuse: int,
    ) -> dict[str, bytes]:
        """``seal``; then reserve ``next_size`` bytes for this connection's next put.

        Answers ``id`` (decimal ASCII) and, when the reservation was made,
        ``put_id``, ``size`` and ``path`` of the new pending put, so that put
        takes one round trip. ``drop``: a pending put to abort first (0: none).
        ``reuse``: the inode of a deleted object's file this client wrote and
        still maps, and has shown (with a write lease on the descriptor behind
        its mapping) that nobody else has open; the reservation is that file
        when the server still keeps it (0: any file).
        """
        ...

    def abort(self, put_id: int) -> None:
        """Drop a pending put and free its memory."""
        ...

    def open(self, ref: str, max_inline: int) -> dict[str, bytes]:
        """Resolve an id (``o`` + hex) or a name, loading it from the store if needed (``Opened.to_wire``)."""
        ...

    def read(self, object_id: int, chunk: int) -> Stream[StreamState]:
        """Stream the object's bytes as ``chunk`` batches of at most ``chunk`` bytes."""
        ...

    def get_meta(self, object_id: int) -> ObjectMeta:
        """Metadata of an object here or in the store (without loading it)."""
        ...

    def delete(self, object_ids: list[int], force: bool, deep: bool) -> None:
        """Delete objects (memory, store copy and names)."""
        ...

    def persist(self, object_id: int) -> ObjectMeta:
        """Write the object and its names to the store; durable when this returns."""
        ...

    def put_name(self, object_id: int, name: str, overwrite: bool) -> None:
        """Bind a name to an object."""
        ...

    def get_name(self, name: str, wait: bool, timeout: float | None) -> int:
        """The id bound to ``name``; with ``wait`` block until it is bound or ``timeout`` passes."""
        ...

    def drop_name(self, name: str) -> None:
        """Unbind a name."""
        ...

    def list_names(self, pattern: str, limit: int) -> dict[str, int]:
        """Names matching the glob ``pattern`` (at most ``limit``)."""
        ...

    def list_objects(
        self, pattern: str | None, page_size: int, page_token: str | None
    ) -> ObjectPage:
        """Objects whose typename matches the glob ``pattern``, a page at a time, by id."""
        ...


__all__ = [
    "BLOB",
    "CHUNK_SCHEMA",
    "VALUE",
    "Allocation",
    "ObjectMeta",
    "ObjectPage",
    "ObjectStore",
    "Opened",
    "ServerInfo",
]
