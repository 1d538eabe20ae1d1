"""``ObjectStoreServer``: the implementation of the ``ObjectStore`` Protocol.

Holds the object table and pending puts; memory comes from ``_memory``,
durability from ``_store``, names from ``_names``. A pending put belongs to
the connection that made it and is freed when that connection ends.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections import OrderedDict

import pyarrow as pa

from vgi_rpc import Stream
from vgi_rpc.services.objectstore import _validate as check
from vgi_rpc.services.objectstore._codec import scalars
from vgi_rpc.services.objectstore._entries import SERVERS, Entry, Pending, ReadState, mapped
from vgi_rpc.services.objectstore._errors import (
    BlobSealed,
    InvalidRequest,
    NameNotFound,
    NameTaken,
    NameTimeout,
    ObjectNotFound,
    OutOfMemory,
    PutAborted,
)
from vgi_rpc.services.objectstore._ids import ObjectID, random_bits
from vgi_rpc.services.objectstore._memory import Segment, SharedMemory
from vgi_rpc.services.objectstore._meta import held_meta, page, stored_meta
from vgi_rpc.services.objectstore._names import NameTable
from vgi_rpc.services.objectstore._shapes import StreamShapes
from vgi_rpc.services.objectstore._spares import Spares
from vgi_rpc.services.objectstore._store import Store
from vgi_rpc.services.objectstore.protocol import (
    BLOB,
    CHUNK_SCHEMA,
    VALUE,
    Allocation,
    ObjectMeta,
    ObjectPage,
    Opened,
    ServerInfo,
)

MAX_INLINE = 256 << 10
GET_INLINE = 64 << 10  # open() answers objects this small with their bytes
MAX_CHUNK = 8 << 20
LEASE_SECONDS = 600.0  # a pending put with no connection (HTTP) untouched this long is freed
WARM_IDLE = 10.0
MAX_HTTP_WAITERS = 8  # of the HTTP server's 32 request threads


MAX_PUT_ID = 1 << 62


def spare_name(put_id: int) -> str:
    """The file name of spare ``put_id`` (see ``seal_next``)."""
    return f"spare-{put_id:016x}"


def default_warm(memory_limit: int) -> int:
    """Bytes of deleted objects' memory kept warm by default: a quarter of the limit, at most 1 GiB."""
    return min(memory_limit // 4, 1 << 30)


class ObjectStoreServer:
    """The object store: put it behind ``RpcServer`` (or use ``start`` / ``serve``).

    Args:
        memory_limit: Most bytes of objects (and pending puts) held in shared memory.
        store: Where persisted objects and names live (``None``: persistence off).
        shm_root: Directory for the shared-memory files (``/dev/shm``).
        warm: Most bytes of deleted objects' memory kept for later puts
            (``None``: ``default_warm(memory_limit)``; 0: give it all back at once).
        warm_idle: Seconds before unused warm memory is given back.
    """

    def __init__(
        self,
        *,
        memory_limit: int = 2 << 30,
        store: Store | None = None,
        shm_root: str | None = None,
        warm: int | None = None,
        warm_idle: float = WARM_IDLE,
    ) -> None:
        self.instance_id = secrets.token_hex(8)
        self.hostname = socket.gethostname()
        self.memory = SharedMemory(
            memory_limit,
            shm_root,
            warm=default_warm(memory_limit) if warm is None else warm,
            warm_idle=warm_idle,
        )
        self.store = store
        self._objects: dict[int, Entry] = {}
        self.names = NameTable(store, self._exists, self._persisted)
        self._pending: dict[int, Pending] = {}
        self._sealed: OrderedDict[int, int] = OrderedDict()
        self._lock = threading.RLock()
        self._connection = threading.local()
        self._http_waits = threading.BoundedSemaphore(MAX_HTTP_WAITERS)
        self.spares = Spares(self._pending, self._lock, self.memory, warm_idle)
        self.shapes = StreamShapes()
        SERVERS[self.instance_id] = self

    # connections and lifecycle

    def connection_opened(self) -> int:
        """Mark the current thread as serving a new connection; return its id."""
        self._connection.id = secrets.randbits(62)
        return int(self._connection.id)

    def connection_closed(self, connection: int) -> None:
        """Free the pending puts of a connection that ended (its client may have died)."""
        self._connection.id = None
        self.spares.forget(connection)
        with self._lock:
            dead = [pid for pid, p in self._pending.items() if p.owner == connection]
            segments = [self._pending.pop(pid).segment for pid in dead]
        for segment in segments:
            self.memory.free(segment)

    def close(self) -> None:
        """Wake every waiter, free all shared memory and remove its directory."""
        self.names.close()
        with self._lock:
            self._objects.clear()
            self._pending.clear()
        self.spares.close()
        self.memory.close()
        SERVERS.pop(self.instance_id, None)

    def info(self) -> ServerInfo:
        """The server's identity and limits."""
        return ServerInfo(
            instance_id=self.instance_id,
            hostname=self.hostname,
            pid=os.getpid(),
            shm_dir=self.memory.directory,
            store=self.store.uri if self.store else "",
            memory_limit=self.memory.limit,
            memory_used=self.memory.used,
            memory_warm=self.memory.warm.held,
            memory_spare=self.memory.spare,
            warm_limit=self.memory.warm.limit,
            warm_idle=self.memory.warm.idle,
            max_inline=MAX_INLINE,
            max_chunk=MAX_CHUNK,
            get_inline=GET_INLINE,
        )

    # puts

    def put_small(self, data: bytes) -> int:
        """Store a small value sent whole, with no name, persistence or properties."""
        return self._put_inline(data, None, False, {})

    def put_inline(self, data: bytes, name: str | None, persist: bool, properties: str) -> int:
        """Store a small value sent whole (kept in the server's memory, no file)."""
        return self._put_inline(data, name, persist, check.properties_text(properties))

    def _put_inline(
        self, data: bytes, name: str | None, persist: bool, props: dict[str, str]
    ) -> int:
        check.bounded(len(data), "inline data size", 0, MAX_INLINE)
        self._check_name_free(name)
        data = bytes(data)
        template = scalars().match(data)  # a prebuilt scalar stream: well-formed as it is
        typename = template.typename if template else check.value_stream(pa.py_buffer(data))
        self._reserve(len(data))
        entry = Entry(ObjectID.generate(), VALUE, typename[:200] or VALUE, len(data), props, None)
        entry.data = data
        return self._commit(entry, name, persist)

    def _check_name_free(self, name: str | None) -> None:
        if name is not None and self.names.find(check.name(name)) is not None:
            raise NameTaken(f"the name {name!r} is taken")

    def _commit(self, entry: Entry, name: str | None, persist: bool) -> int:
        with self._lock:
            self._objects[entry.id] = entry
        if persist:
            self.persist(entry.id)
        if name is not None:
            self.put_name(entry.id, name, False)
        return entry.id

    def _reserve(self, size: int) -> None:
        try:
            self.memory.reserve(size)
        except OutOfMemory:
            if not self._spill(size):
                raise
            self.memory.reserve(size)

    def _release(self, entry: Entry) -> None:
        entry.unmap()
        if entry.segment is not None:
            self.memory.free(entry.segment)
            entry.segment = None
        if entry.data is not None:
            self.memory.release(entry.nbytes)
            entry.data = None

    def allocate(self, size: int, kind: str) -> Allocation:
        """Reserve a shared-memory file for a put."""
        check.kind(kind)
        self._expire_leases()
        segment = self._allocate(size, recycle=kind == VALUE)  # a value put writes every byte
        put_id = random_bits(62) + 1
        with self._lock:
            while put_id in self._pending:  # a client's spare may have taken it
                put_id = random_bits(62) + 1
            owner = getattr(self._connection, "id", None)
            self._pending[put_id] = Pending(segment, kind, owner, time.monotonic())
        return Allocation(put_id=put_id, size=size, path=segment.path)

    def _allocate(
        self,
        size: int,
        *,
        recycle: bool = False,
        spare: bool = False,
        inode: int = 0,
        name: str = "",
    ) -> Segment:
        try:
            return self.memory.allocate(size, recycle=recycle, spare=spare, inode=inode, name=name)
        except OutOfMemory:
            if spare:
                raise
        if self.spares.reclaim():
            try:
                return self.memory.allocate(size, recycle=recycle)
            except OutOfMemory:
                pass
        if not self._spill(size):
            self.memory.check(size)  # the error names the limit and what is in use
        return self.memory.allocate(size, recycle=recycle)

    def _spill(self, size: int) -> bool:
        """Drop persisted objects from memory (they stay in the store) until ``size`` fits."""
        with self._lock:
            candidates = [
                e for e in self._objects.values() if e.persisted and e.segment is not None
            ]
            freed: list[Segment] = []
            for entry in candidates:
                if self.memory.limit - self.memory.used + sum(s.size for s in freed) >= size:
                    break
                assert entry.segment is not None
                freed.append(entry.segment)
                entry.segment = None
                entry.unmap()
        for segment in freed:
            self.memory.free(segment)
        return self.memory.limit - self.memory.used >= size

    def _expire_leases(self) -> None:
        now = time.monotonic()
        with self._lock:
            old = [
                pid
                for pid, p in self._pending.items()
                if p.owner is None and now - p.touched > LEASE_SECONDS
            ]
            segments = [self._pending.pop(pid).segment for pid in old]
        for segment in segments:
            self.memory.free(segment)

    def _take_pending(self, put_id: int, *, pop: bool) -> Pending:
        with self._lock:
            if put_id in self._sealed:
                raise BlobSealed(
                    f"put {put_id} was sealed as {ObjectID(self._sealed[put_id])}; objects are immutable"
                )
            pending = self._pending.get(put_id)
            if pending is None or not self._mine(pending):
                raise PutAborted(
                    f"no pending put {put_id}: never allocated, aborted, expired or its client left"
                )
            if pop:
                del self._pending[put_id]
            pending.touched = time.monotonic()
            return pending

    def _mine(self, pending: Pending) -> bool:
        """A spare is its connection's alone (its id is in its file name)."""
        return not pending.spare or pending.owner == getattr(self._connection, "id", None)

    def write(self, put_id: int, offset: int, data: bytes) -> int:
        """Write into a pending put."""
        pending = self._take_pending(put_id, pop=False)
        check.bounded(offset, "offset", 0, pending.segment.size - len(data))
        fd = os.open(pending.segment.path, os.O_WRONLY)
        try:
            view = memoryview(data)
            position = offset
            while view:
                written = os.pwrite(fd, view, position)
                view, position = view[written:], position + written
        finally:
            os.close(fd)
        return offset + len(data)

    def seal(self, put_id: int, name: str | None, persist: bool, properties: str) -> int:
        """Validate a pending put and make it an immutable object; return its id."""
        pending = self._take_pending(put_id, pop=True)
        try:
            props = check.properties_text(properties)
        except BaseException:
            self.memory.free(pending.segment)
            raise
        return self._seal(put_id, pending, name, persist, props)

    def _seal(
        self,
        put_id: int,
        pending: Pending,
        name: str | None,
        persist: bool,
        props: dict[str, str],
    ) -> int:
        try:
            self._check_name_free(name)
            typename = self._checked(put_id, pending)[:200] or pending.kind
        except BaseException:
            self.memory.free(pending.segment)
            raise
        self.memory.claim(pending.segment)
        entry = Entry(
            ObjectID.generate(),
            pending.kind,
            typename,
            pending.segment.size,
            props,
            pending.segment,
        )
        with self._lock:
            self._sealed[put_id] = entry.id
            while len(self._sealed) > 4096:
                self._sealed.popitem(last=False)
        return self._commit(entry, name, persist)

    def _checked(self, put_id: int, pending: Pending) -> str:
        """Check a put's file: its size, and a value's stream (by its edges when its shape is known).

        Returns the value's type name (``""`` for a blob).
        """
        segment = pending.segment
        fd = os.open(segment.path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size != segment.size:
                raise InvalidRequest(
                    f"put {put_id} holds {size} bytes, not the {segment.size} allocated"
                )
            if pending.kind != VALUE:
                return ""
            typename = self.shapes.known(fd, size)
        finally:
            os.close(fd)
        if typename is None:
            data = mapped(segment)
            typename = check.value_stream(data)
            self.shapes.learn(data, typename)
        return typename

    def seal_next(self, put_id: int, next_put_id: int, next_size: int, reuse: int) -> int:
        """Seal a plain put, then reserve ``next_size`` bytes as this connection's spare ``next_put_id``.

        The spare's file is named ``spare_name(next_put_id)``; none is made
        when there is no room, no warm memory, no connection (HTTP) or the id
        is taken. It replaces the connection's previous spare, if unused.
        ``reuse``: the inode of a deleted object's file the client wrote and
        still maps alone, to be handed back as the spare (0: any).
        """
        oid = self._seal(put_id, self._take_pending(put_id, pop=True), None, False, {})
        owner = getattr(self._connection, "id", None)
        if owner is None or next_size <= 0 or not self.memory.warm.limit:
            return oid  # no connection (HTTP) to tie a spare to, or nothing may be kept warm
        if not 0 < next_put_id <= MAX_PUT_ID or not 0 < next_size <= self.memory.limit:
            return oid
        with self._lock:
            if next_put_id in self._pending or next_put_id in self._sealed:
                return oid  # taken: the client finds no file and allocates
        try:
            segment = self._allocate(
                next_size, recycle=True, spare=True, inode=reuse, name=spare_name(next_put_id)
            )
        except (OutOfMemory, FileExistsError):
            return oid  # no room to spare: the next put allocates as usual
        taken, replaced = self.spares.hand_out(segment, owner, next_put_id)
        for unused_segment in (None if taken else segment, replaced):
            if unused_segment is not None:  # the id was taken meanwhile / the old spare
                self.memory.free(unused_segment)
        return oid

    def abort(self, put_id: int) -> None:
        """Drop a pending put (nothing if it is already gone, or is another connection's spare)."""
        with self._lock:
            pending = self._pending.get(put_id)
            if pending is None or not self._mine(pending):
                return
            del self._pending[put_id]
        self.memory.free(pending.segment)

    # gets and metadata

    def _held(self, oid: int) -> Entry | None:
        """The entry of an object this instance holds; a global one deleted elsewhere is dropped."""
        with self._lock:
            entry = self._objects.get(oid)
        if entry is None or not entry.persisted or self.store is None or self.store.has_object(oid):
            return entry
        with self._lock:
            self._objects.pop(oid, None)
        self._release(entry)
        return None

    def local_entry(self, object_id: int) -> Entry:
        """The object in this instance's memory, loading it from the store if needed."""
        oid = check.object_id(object_id)
        entry = self._held(oid)
        if entry is not None and entry.held:
            return entry
        meta = self.store.object_meta(oid) if self.store else None
        if meta is None:
            raise ObjectNotFound(f"no object {oid}")
        return self._load(oid, meta)

    def _load(self, oid: ObjectID, meta: dict[str, object]) -> Entry:
        assert self.store is not None
        nbytes = meta.get("nbytes")
        if not isinstance(nbytes, int) or nbytes < 0:
            raise ObjectNotFound(f"object {oid} has malformed metadata in the store")
        segment = self._allocate(nbytes, recycle=True)  # read_object writes every byte
        try:
            with pa.memory_map(segment.path, "r+") as target:
                self.store.read_object(oid, nbytes, target)
            if meta.get("kind", VALUE) != BLOB:  # the store may be shared: check it as a put
                try:
                    check.value_stream(mapped(segment))
                except InvalidRequest as exc:
                    raise ObjectNotFound(f"object {oid} is damaged in the store: {exc}") from None
        except BaseException:
            self.memory.free(segment)
            raise
        with self._lock:
            entry = self._objects.get(oid)
            if entry is not None and entry.held:  # another thread loaded it first
                self.memory.free(segment)
                return entry
            props = meta.get("properties")
            entry = Entry(
                oid,
                BLOB if meta.get("kind") == BLOB else VALUE,
                str(meta.get("typename", "")),
                nbytes,
                dict(props) if isinstance(props, dict) else {},
                segment,
                persisted=True,
            )
            self._objects[oid] = entry
        return entry

    def open(self, ref: str) -> bytes:
        """Resolve an id or a name to a local object (loading it from the store if needed)."""
        target = check.reference(ref)
        oid = target if isinstance(target, ObjectID) else self.get_name(target, False, None)
        entry = self.local_entry(oid)
        if entry.opened is not None:
            return entry.opened
        path = entry.segment.path if entry.segment is not None else ""
        if entry.nbytes <= GET_INLINE:  # the bytes themselves: not kept twice
            data = entry.data if entry.data is not None else entry.buffer().to_pybytes()
            return Opened(entry.id, entry.kind, entry.nbytes, path, data).to_wire()
        entry.opened = Opened(entry.id, entry.kind, entry.nbytes, path, None).to_wire()
        return entry.opened

    def read(self, object_id: int, chunk: int) -> Stream[ReadState]:
        """Stream an object's bytes in bounded chunks."""
        entry = self.local_entry(object_id)
        check.bounded(chunk, "chunk", 1, MAX_CHUNK)
        return Stream(
            output_schema=CHUNK_SCHEMA, state=ReadState(self.instance_id, entry.id, 0, chunk)
        )

    def get_meta(self, object_id: int) -> ObjectMeta:
        """Metadata of an object here or in the store."""
        oid = check.object_id(object_id)
        entry = self._held(oid)
        if entry is not None:
            return self._meta(entry)
        stored = self.store.object_meta(oid) if self.store else None
        if stored is None:
            raise ObjectNotFound(f"no object {oid}")
        return stored_meta(oid, stored, self.names.of(oid))

    def _meta(self, entry: Entry) -> ObjectMeta:
        return held_meta(entry, self.instance_id, self.hostname, self.names.of(entry.id))

    # delete and persist

    def delete(self, object_ids: list[int], force: bool, deep: bool) -> None:
        """Delete objects: memory, store copy and every name bound to them."""
        oids = [check.object_id(i) for i in object_ids]
        for oid in oids:  # all or nothing: check every id first
            if not self._exists(oid):
                raise ObjectNotFound(f"no object {oid} (deleted already, or never put)")
        with self._lock:
            entries = [(oid, self._objects.pop(oid, None)) for oid in oids]
        # an object held here and never persisted has no store copy, nor names there
        stored = {oid for oid, entry in entries if entry is None or entry.persisted}
        try:  # gone from the table: their memory goes back even if the store fails
            self.names.drop_objects(oids, stored)
            if self.store is not None:
                for oid in oids:
                    if oid in stored:
                        self.store.delete_object(oid)
        finally:
            for _, entry in entries:
                if entry is not None:
                    self._release(entry)

    def delete_one(self, object_id: int, force: bool, deep: bool) -> None:
        """``delete`` of one object."""
        self.delete([object_id], force, deep)

    def persist(self, object_id: int) -> ObjectMeta:
        """Write the object and its names to the store; durable when this returns."""
        if self.store is None:
            raise PutAborted("this server has no store: start it with --store to persist")
        oid = check.object_id(object_id)
        with self._lock:
            entry = self._objects.get(oid)
        if entry is None:
            return self.get_meta(oid)  # already global (persisted by another instance), or unknown
        if not entry.persisted:
            meta = {
                "id": str(oid),
                "typename": entry.typename,
                "nbytes": entry.nbytes,
                "kind": entry.kind,
                "properties": entry.properties,
                "instance_id": self.instance_id,
                "hostname": self.hostname,
            }
            self.store.put_object(oid, entry.buffer(), meta)
            entry.persisted = True
            self.names.persist(oid)
        return self._meta(entry)

    # names

    def _exists(self, oid: int) -> bool:
        if self._held(oid) is not None:
            return True
        return self.store is not None and self.store.has_object(oid)

    def _persisted(self, oid: int) -> bool | None:
        with self._lock:
            entry = self._objects.get(oid)
        return None if entry is None else entry.persisted

    def put_name(self, object_id: int, name: str, overwrite: bool) -> None:
        """Bind a name to an object (persisted with it when the object is persisted)."""
        check.name(name)
        oid = check.object_id(object_id)
        if not self._exists(oid):
            raise ObjectNotFound(f"no object {oid} to name {name!r}")
        self.names.put(oid, name, overwrite)

    def get_name(self, name: str, wait: bool, timeout: float | None) -> int:
        """The id bound to ``name``; with ``wait``, block until bound or ``timeout`` seconds pass.

        Over HTTP a wait holds one of the server's shared request threads, so at
        most ``MAX_HTTP_WAITERS`` wait at once; another is refused (``NameTimeout``)
        rather than left to starve every other HTTP caller.
        """
        name = check.name(name)
        if not wait or getattr(self._connection, "id", None) is not None:
            return self.names.get(name, wait, timeout)  # a connection's own thread waits
        if not self._http_waits.acquire(blocking=False):
            try:
                return self.names.get(name, False, None)
            except NameNotFound:
                raise NameTimeout(
                    f"no name {name!r}, and {MAX_HTTP_WAITERS} get_name calls already wait over "
                    "HTTP (each holds a request thread): retry, or wait over a socket or TCP"
                ) from None
        try:
            return self.names.get(name, wait, timeout)
        finally:
            self._http_waits.release()

    def drop_name(self, name: str) -> None:
        """Unbind a name, here and in the store."""
        self.names.drop(check.name(name))

    def list_names(self, pattern: str, limit: int) -> dict[str, int]:
        """Names matching a glob, here and in the store."""
        return self.names.matching(
            check.pattern(pattern), check.bounded(limit, "limit", 1, 100_000)
        )

    def list_objects(
        self, pattern: str | None, page_size: int, page_token: str | None
    ) -> ObjectPage:
        """A page of objects (by id) whose typename matches ``pattern``."""
        check.bounded(page_size, "page_size", 1, 10_000)
        matches = None if pattern is None else check.pattern(pattern)
        after = 0
        if page_token is not None:
            token = check.reference(page_token)
            if not isinstance(token, ObjectID):
                raise InvalidRequest(f"not a page token: {page_token[:40]!r}")
            after = int(token)
        with self._lock:
            ids = set(self._objects)
        if self.store is not None:
            ids.update(self.store.object_ids())
        return page(ids, after, page_size, matches, self.get_meta)
