"""The object store's wire API: a ``typing.Protocol`` any vgi-rpc client can call.

Objects are bytes on the server: an Arrow IPC stream for a value (see
``_codec``) or the raw bytes of a blob. A put is ``put_inline`` (small), or
``allocate`` + (a local client writes the file it is given, a remote one calls
``write``) + ``seal``; ``seal_next`` seals and reserves a local client's next
put at once, so a stream of puts takes one round trip each. A get is ``open``
(small objects come back inline, a local client maps the file it names) and,
for a large remote object, the ``read`` producer stream of bounded chunks.
The hot calls take and return flat values only (ints, strings, bytes).
"""

from __future__ import annotations

import struct
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
    ``max_inline``: the largest ``put_inline``; ``get_inline``: the largest
    object ``open`` answers with its bytes.
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
    get_inline: int


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


_OPENED = struct.Struct("<qqB")  # id, nbytes, flags
_BLOB_FLAG = 1
_INLINE_FLAG = 2


@dataclass(frozen=True)
class Opened:
    """What a get needs: the bytes of a small object, else its shared-memory file (if any).

    On the wire ``open`` answers one ``binary`` (see ``to_wire``): a flat
    result is the cheapest a call can carry, and this is every get's path.
    """

    id: int
    kind: str
    nbytes: int
    path: str
    data: bytes | None

    def to_wire(self) -> bytes:
        """``<q id><q nbytes><B flags>`` (1: a blob, 2: data follows), then the data or the UTF-8 path."""
        flags = (_BLOB_FLAG if self.kind == BLOB else 0) | (
            _INLINE_FLAG if self.data is not None else 0
        )
        head = _OPENED.pack(self.id, self.nbytes, flags)
        return head + (self.data if self.data is not None else self.path.encode())

    @classmethod
    def from_wire(cls, wire: bytes) -> Opened:
        """Parse ``open``'s answer (``ValueError`` if malformed)."""
        if len(wire) < _OPENED.size:
            raise ValueError(f"malformed open() answer: {len(wire)} bytes")
        oid, nbytes, flags = _OPENED.unpack_from(wire)
        if flags & ~(_BLOB_FLAG | _INLINE_FLAG) or nbytes < 0:
            raise ValueError(f"malformed open() answer: flags {flags}, nbytes {nbytes}")
        rest = wire[_OPENED.size :]
        kind = BLOB if flags & _BLOB_FLAG else VALUE
        if flags & _INLINE_FLAG:
            if len(rest) != nbytes:
                raise ValueError(f"malformed open() answer: {len(rest)} of {nbytes} bytes")
            return cls(oid, kind, nbytes, "", rest)
        try:
            return cls(oid, kind, nbytes, rest.decode(), None)
        except UnicodeDecodeError as exc:
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

    def put_small(self, data: bytes) -> int:
        """Store a small value (its IPC stream) sent whole; return its id.

        ``put_inline`` without a name, persistence or properties: the common
        put, so it carries nothing else.
        """
        ...

    def put_inline(self, data: bytes, name: str | None, persist: bool, properties: str) -> int:
        """Store a small value (its IPC stream) sent whole; optionally name and persist it; return its id.

        ``properties``: extra metadata as a JSON object of strings (``""``: none).
        """
        ...

    def allocate(self, size: int, kind: str) -> Allocation:
        """Reserve ``size`` bytes for a put (freed if never sealed, or if the client disconnects)."""
        ...

    def write(self, put_id: int, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` of a pending put; return the bytes written so far."""
        ...

    def seal(self, put_id: int, name: str | None, persist: bool, properties: str) -> int:
        """Make a pending put an immutable object (validated first); return its id.

        ``properties`` as for ``put_inline``; a value's type name is the one its stream records.
        """
        ...

    def seal_next(self, put_id: int, next_put_id: int, next_size: int, reuse: int) -> int:
        """``seal`` (no name, persistence or properties); then reserve this connection's next put.

        The reservation (the connection's *spare*, replacing any it had) is
        ``next_size`` bytes as pending put ``next_put_id``, in the file
        ``spare-`` + ``next_put_id`` as 16 hex digits in the server's
        ``shm_dir``. The caller picks the id (at random, from 1 to 2**62) and
        finds the file there, so its next put of that size takes one round
        trip; when the file is missing (no room, or the id was taken) it calls
        ``allocate``. Only this connection may write, seal or abort a spare.
        ``reuse``: the inode of a deleted object's file this client wrote and
        still maps, and has shown (with a write lease on the descriptor behind
        its mapping) that nobody else has open; the spare is that file when the
        server still keeps it (0: any file).
        """
        ...

    def abort(self, put_id: int) -> None:
        """Drop a pending put and free its memory."""
        ...

    def open(self, ref: str) -> bytes:
        """Resolve an id (``o`` + hex) or a name, loading it from the store if needed.

        Answers ``Opened.to_wire``: an object of at most ``get_inline`` bytes
        (see ``info``) comes back whole, a larger one as its shared-memory
        file, to map on this host or to ``read`` from elsewhere.
        """
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

    def delete_one(self, object_id: int, force: bool, deep: bool) -> None:
        """``delete`` of one object: the common case, in flat arguments."""
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
