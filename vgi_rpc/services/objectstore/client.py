"""The convenience client: ``connect()`` and ``ObjectStoreClient`` (put / get / names / blobs).

Each thread gets its own connection, so a thread blocked in
``get_name(wait=True)`` never stalls another thread's calls. On one host
(a unix socket) puts write straight into the server's shared memory and gets
map it read-only; elsewhere bytes move in bounded chunks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import mmap
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from types import TracebackType

import pyarrow as pa
from typing_extensions import Buffer

from vgi_rpc import IPCError, RpcError, tcp_connect, unix_connect
from vgi_rpc.services.objectstore._codec import Encoded, decode, decode_small, encode, encode_small
from vgi_rpc.services.objectstore._entries import map_file
from vgi_rpc.services.objectstore._errors import BlobSealed, ObjectNotFound, PutAborted, typed
from vgi_rpc.services.objectstore._ids import ObjectID, random_bits
from vgi_rpc.services.objectstore._mappings import WriterMappings
from vgi_rpc.services.objectstore._receive import ReceiveBuffers
from vgi_rpc.services.objectstore._write import write_file, write_into
from vgi_rpc.services.objectstore.protocol import (
    BLOB,
    VALUE,
    ObjectMeta,
    ObjectPage,
    ObjectStore,
    Opened,
    ServerInfo,
)

_CHUNK = 2 << 20  # measured best on loopback TCP (cache-sized turns)
WARM = 1 << 30  # receive buffers of dropped remote gets kept for reuse, at most


def default_socket() -> str:
    """The socket path used when none is given: in ``$XDG_RUNTIME_DIR``, else the temp dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "vgi-objectstore.sock")
    return os.path.join(tempfile.gettempdir(), f"vgi-objectstore-{os.getuid()}.sock")


class _TypedErrors:
    """Raises the store's typed error for an ``RpcError`` (a class: cheaper than a generator)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, RpcError):
            error = typed(exc)
            if error is not exc:
                raise error from None


_TYPED = _TypedErrors()


def _typed_errors() -> _TypedErrors:
    return _TYPED


def _properties(properties: dict[str, str]) -> str:
    """Extra metadata as it travels: a JSON object of strings."""
    pairs: list[tuple[object, object]] = list(
        properties.items()
    )  # checked: callers may not be typed
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs):
        raise TypeError("properties must map str to str")
    return json.dumps(properties)


@dataclasses.dataclass(frozen=True, slots=True)
class _Spare:
    """A pending put the server handed this thread's connection for its next put."""

    put_id: int
    size: int
    path: str


@dataclasses.dataclass(frozen=True)
class Blob:
    """A sealed blob: its id and its bytes (a read-only buffer, mapped when local)."""

    id: ObjectID
    buffer: pa.Buffer

    def __len__(self) -> int:
        return self.buffer.size

    def __bytes__(self) -> bytes:
        return self.buffer.to_pybytes()


class BlobWriter:
    """A writable buffer of fixed size; ``seal()`` (or leaving the ``with`` block) makes it a blob."""

    def __init__(self, client: ObjectStoreClient, size: int) -> None:
        self._client = client
        self.size = size
        self.id: ObjectID | None = None
        with _typed_errors():
            self._allocation = client.proxy.allocate(size, BLOB)
        self._map: mmap.mmap | None = None
        self._remote: bytearray | None = None
        self._views: list[memoryview] = []  # released at seal, so they cannot write any more
        if client.local and size:
            fd = os.open(self._allocation.path, os.O_RDWR)
            try:
                self._map = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        else:
            self._remote = bytearray(size)

    @property
    def buffer(self) -> memoryview:
        """The writable bytes (``BlobSealed`` once sealed)."""
        if self.id is not None:
            raise BlobSealed(f"blob {self.id} is sealed; objects are immutable")
        view = memoryview(self._map if self._map is not None else self._remote or bytearray())
        self._views.append(view)
        return view

    def write(self, data: bytes | memoryview, offset: int = 0) -> None:
        """Copy ``data`` in at ``offset`` (``BlobSealed`` once sealed)."""
        with self.buffer as view:
            view[offset : offset + len(data)] = data

    def seal(self, *, name: str | None = None, persist: bool = False) -> ObjectID:
        """Make the blob immutable and visible; return its id."""
        if self.id is not None:
            raise BlobSealed(f"blob {self.id} is sealed already")
        proxy = self._client.proxy
        put_id = self._allocation.put_id
        for view in self._views:
            with contextlib.suppress(BufferError):  # numpy arrays made from it keep it alive
                view.release()
        self._views.clear()
        if self._map is not None:
            with contextlib.suppress(BufferError):  # see above: the mapping then lives on with them
                self._map.close()
            self._map = None
        elif self._remote is not None:
            self._client.upload(put_id, memoryview(self._remote))
            self._remote = None
        with _typed_errors():
            self.id = ObjectID(proxy.seal(put_id, name, persist, ""))
        return self.id

    def abort(self) -> None:
        """Discard the blob unsealed."""
        if self.id is None:
            self._map = self._remote = None
            with _typed_errors():
                self._client.proxy.abort(self._allocation.put_id)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif self.id is None:
            self.seal()

    close = seal


class _ChunkSender(io.RawIOBase):
    """A file-like sink that sends what the IPC writer writes in ``write`` calls of one chunk.

    The object is never held whole: at most one chunk is buffered.
    """

    def __init__(self, client: ObjectStoreClient, put_id: int) -> None:
        super().__init__()
        self._client = client
        self._put_id = put_id
        self._pending = bytearray()
        self._offset = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:
        view = memoryview(data)
        size = len(view)
        while view:
            room = self._client.chunk - len(self._pending)
            if not self._pending and len(view) >= room:
                self._send(view[:room])  # a whole chunk straight from the writer's buffer
                view = view[room:]
                continue
            self._pending += view[:room]
            view = view[room:]
            if len(self._pending) == self._client.chunk:
                self._flush()
        return size

    def _send(self, data: memoryview | bytearray) -> None:
        self._client.upload(self._put_id, memoryview(data), offset=self._offset)
        self._offset += len(data)

    def _flush(self) -> None:
        if self._pending:
            self._send(self._pending)
            self._pending = bytearray()

    def close(self) -> None:
        if not self.closed:
            self._flush()
        super().close()


class ObjectStoreClient:
    """Talks to one object store server; use ``connect()`` to make one.

    ``warm``: bytes of buffers of remote gets whose values were dropped, kept
    for 10 s to receive the next ones (fresh pages cost more than the copy).
    On the server's host, ``warm`` (non-zero) also keeps the last two files
    this client wrote mapped, so that it writes them again at memcpy speed
    once their objects are deleted (see ``_mappings``).
    """

    def __init__(
        self,
        opener: Callable[[], AbstractContextManager[ObjectStore]],
        *,
        local: bool,
        warm: int = WARM,
    ) -> None:
        self._opener = opener
        self._receive = ReceiveBuffers(0 if local else warm)
        self._tls = threading.local()
        # each thread's connection, so those of threads that have ended can be closed
        self._open: list[tuple[threading.Thread, AbstractContextManager[ObjectStore]]] = []
        self._lock = threading.Lock()
        self._closed = False
        self.server: ServerInfo = self.proxy.info()
        self.local = local and os.path.isdir(self.server.shm_dir)
        # the files this client wrote stay mapped only while the server may keep them warm
        keep = 2 if self.local and warm and self.server.warm_limit else 0
        self._mappings = WriterMappings(
            keep=keep, idle=self.server.warm_idle, largest=self.server.warm_limit
        )
        self.max_inline = min(self.server.max_inline, 64 << 10)
        self.chunk = min(self.server.max_chunk, _CHUNK)
        # a local put asks for a spare (its next put's file) only where the server keeps any
        self._spares = self.local and bool(self.server.warm_limit)

    @property
    def proxy(self) -> ObjectStore:
        """This thread's proxy (its own connection)."""
        proxy: ObjectStore | None = getattr(self._tls, "proxy", None)
        if proxy is None:
            if self._closed:
                raise ValueError("the object store client is closed")
            self._close_finished_threads()
            connected = self._opener()
            proxy = connected.__enter__()
            with self._lock:
                self._open.append((threading.current_thread(), connected))
            self._tls.proxy = proxy
        return proxy

    def _close_finished_threads(self) -> None:
        with self._lock:
            done = [c for t, c in self._open if not t.is_alive()]
            self._open = [(t, c) for t, c in self._open if t.is_alive()]
        for connected in done:
            connected.__exit__(None, None, None)

    @property
    def connections(self) -> int:
        """Connections open now (one per live thread that has used this client)."""
        self._close_finished_threads()
        with self._lock:
            return len(self._open)

    # values

    def put(
        self,
        value: object,
        *,
        name: str | None = None,
        persist: bool = False,
        properties: dict[str, str] | None = None,
    ) -> ObjectID:
        """Store ``value`` (immutable from now on) and return its id."""
        props = _properties(properties) if properties else ""
        small = encode_small(value)
        if small is not None:
            return self._put_inline(small[1], name, persist, props)
        encoded = encode(value)
        with _typed_errors():
            if encoded.data_size() < self.max_inline:  # likely small: write the IPC only once
                data = encoded.to_bytes()
                size = len(data)
                if size <= self.max_inline:
                    return self._put_inline(data, name, persist, props)
            else:
                size = encoded.ipc_size()
            if self.local:
                return self._put_local(encoded, size, name, persist, props)
            allocation = self.proxy.allocate(size, VALUE)
            try:
                with pa.PythonFile(_ChunkSender(self, allocation.put_id), mode="w") as sink:
                    encoded.write_to(sink)
                oid = self.proxy.seal(allocation.put_id, name, persist, props)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.proxy.abort(allocation.put_id)
                raise
        return ObjectID(oid)

    def _put_inline(self, data: bytes, name: str | None, persist: bool, props: str) -> ObjectID:
        with _typed_errors():
            if name is None and not persist and not props:
                return ObjectID(self.proxy.put_small(data))
            return ObjectID(self.proxy.put_inline(data, name, persist, props))

    def _put_local(
        self, encoded: Encoded, size: int, name: str | None, persist: bool, props: str
    ) -> ObjectID:
        """Write into the spare the server handed out with the last put (or a new allocation).

        One round trip when the size repeats: ``seal_next`` seals this put and
        hands out the file for the next one, sized like this one.
        """
        spare: _Spare | None = getattr(self._tls, "spare", None)
        self._tls.spare = None
        if spare is not None and spare.size == size:
            try:
                return self._write_and_seal(
                    encoded, size, spare.put_id, spare.path, name, persist, props
                )
            except (FileNotFoundError, PutAborted):
                pass  # the server took the spare back to make room: allocate instead
        # (a spare of another size is replaced by the next one the server hands out)
        allocation = self.proxy.allocate(size, VALUE)
        return self._write_and_seal(
            encoded, size, allocation.put_id, allocation.path, name, persist, props
        )

    def _write_and_seal(
        self,
        encoded: Encoded,
        size: int,
        put_id: int,
        path: str,
        name: str | None,
        persist: bool,
        props: str,
    ) -> ObjectID:
        plain = name is None and not persist and not props
        spare = _Spare(random_bits(62) + 1, size, "") if plain and self._spares else None
        try:
            kept = self._mappings.target(path) if self._mappings.keep else None
            if kept is not None:
                # through a mapping this client keeps: no faults once the file comes back
                inode, buffer = kept
                # asked before the copy, which leaves the caches cold for what follows it
                reuse = self._mappings.reusable(size, exclude=inode)
                write_into(encoded, buffer)
                del buffer, kept
            else:
                write_file(encoded, path)
                reuse = 0
            with _typed_errors():
                if plain:  # and reserve the file of the next put
                    next_id = spare.put_id if spare else 0
                    oid = self.proxy.seal_next(put_id, next_id, size, reuse)
                else:
                    oid = self.proxy.seal(put_id, name, persist, props)
        except BaseException as exc:
            if not isinstance(exc, (FileNotFoundError, PutAborted)):
                with contextlib.suppress(Exception):
                    self.proxy.abort(put_id)
            raise
        if spare is not None:  # made, unless its file turns out to be missing
            path = os.path.join(self.server.shm_dir, f"spare-{spare.put_id:016x}")
            self._tls.spare = _Spare(spare.put_id, size, path)
        return ObjectID(oid)

    def upload(self, put_id: int, data: memoryview, offset: int = 0) -> None:
        """Send bytes of a pending put (at ``offset``) in bounded chunks."""
        with _typed_errors():
            for start in range(0, len(data), self.chunk):
                self.proxy.write(put_id, offset + start, data[start : start + self.chunk])  # type: ignore[arg-type]  # bytes-like is accepted

    def _buffer(self, meta: Opened) -> pa.Buffer:
        if meta.data is not None:
            return pa.py_buffer(meta.data)
        if self.local and meta.path:
            try:
                return map_file(meta.path)
            except FileNotFoundError:
                raise ObjectNotFound(f"object {ObjectID(meta.id)} was deleted meanwhile") from None
        out = self._receive.take(meta.nbytes)
        view = memoryview(out).cast("B")
        position = 0
        with _typed_errors():
            for batch in self.proxy.read(meta.id, self.chunk):
                chunk = batch.batch.column(0)[0].as_buffer()
                if position + chunk.size > meta.nbytes:
                    raise IPCError(
                        f"object {ObjectID(meta.id)}: the server sent more than its {meta.nbytes} bytes"
                    )
                view[position : position + chunk.size] = memoryview(chunk).cast("B")
                position += chunk.size
        if position != meta.nbytes:
            raise ObjectNotFound(
                f"object {ObjectID(meta.id)}: got {position} of {meta.nbytes} bytes"
            )
        return out

    def get(self, ref: ObjectID | str) -> object:
        """The value (or ``Blob``) with this id or name; zero-copy on the server's host."""
        with _typed_errors():
            meta = Opened.from_wire(self.proxy.open(str(ref)))
        if meta.kind == BLOB:
            return Blob(ObjectID(meta.id), self._buffer(meta))
        if meta.data is not None:
            known, value = decode_small(meta.data)
            if known:
                return value
        # Mapped from the server's memory, a value is one the server validated when it was
        # sealed; bytes that crossed a connection are validated here.
        mapped = meta.data is None and self.local and bool(meta.path)
        try:
            return decode(self._buffer(meta), validate=not mapped)
        except (IPCError, ValueError, KeyError) as exc:
            raise IPCError(
                f"object {ObjectID(meta.id)}: the server sent a malformed value: {exc}"
            ) from None

    def get_blob(self, ref: ObjectID | str) -> Blob:
        """The blob with this id or name."""
        value = self.get(ref)
        if not isinstance(value, Blob):
            raise TypeError(f"{ref} is a value, not a blob; use get()")
        return value

    def create_blob(self, size: int) -> BlobWriter:
        """A writable buffer of ``size`` bytes in server memory; seal it to make a blob."""
        return BlobWriter(self, size)

    # metadata, deletion, persistence

    def get_meta(self, object_id: ObjectID | int) -> ObjectMeta:
        """typename, nbytes, isglobal, islocal, instance_id, hostname, properties, names."""
        with _typed_errors():
            meta = self.proxy.get_meta(int(object_id))
        return dataclasses.replace(meta, id=ObjectID(meta.id))

    def delete(
        self, object_ids: ObjectID | int | Sequence[int], force: bool = True, deep: bool = True
    ) -> None:
        """Delete objects and their names; memory is given back at once."""
        with _typed_errors():
            if isinstance(object_ids, int):  # flat arguments: no list to decode on either side
                self.proxy.delete_one(int(object_ids), force, deep)
            else:
                self.proxy.delete([int(i) for i in object_ids], force, deep)

    def persist(self, object_id: ObjectID | int) -> None:
        """Make the object (and its names) durable in the store, visible to every instance."""
        with _typed_errors():
            self.proxy.persist(int(object_id))

    # names

    def put_name(self, object_id: ObjectID | int, name: str, overwrite: bool = False) -> None:
        """Bind ``name`` to the object."""
        with _typed_errors():
            self.proxy.put_name(int(object_id), name, overwrite)

    def get_name(self, name: str, wait: bool = False, timeout: float | None = None) -> ObjectID:
        """The id bound to ``name``; ``wait=True`` blocks (server-side) until it is bound."""
        with _typed_errors():
            return ObjectID(self.proxy.get_name(name, wait, timeout))

    def drop_name(self, name: str) -> None:
        """Unbind ``name``."""
        with _typed_errors():
            self.proxy.drop_name(name)

    def list_names(self, pattern: str = "*", limit: int = 1000) -> dict[str, ObjectID]:
        """Names matching the glob ``pattern``."""
        with _typed_errors():
            return {n: ObjectID(i) for n, i in self.proxy.list_names(pattern, limit).items()}

    def list_objects(
        self, pattern: str | None = None, page_size: int = 100, page_token: str | None = None
    ) -> ObjectPage:
        """One page of objects whose typename matches ``pattern``; follow ``next_page_token``."""
        with _typed_errors():
            return self.proxy.list_objects(pattern, page_size, page_token)

    # lifecycle

    def close(self) -> None:
        """Close every connection this client opened."""
        with self._lock:
            self._closed = True
            opened, self._open = self._open, []
        for _, connected in opened:
            connected.__exit__(None, None, None)
        self._tls = threading.local()
        self._receive.clear()
        self._mappings.clear()

    def __enter__(self) -> ObjectStoreClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(
    socket: str | None = None,
    *,
    url: str | None = None,
    host: str | None = None,
    port: int | None = None,
    prefix: str = "/vgi",
    warm: int = WARM,
) -> ObjectStoreClient:
    """Connect to an object store: a unix ``socket`` (zero-copy), an HTTP ``url``, or TCP ``host``/``port``.

    With no argument, the default socket (``default_socket()``). ``warm``:
    see ``ObjectStoreClient`` (remote clients only).
    """
    if url is not None:
        from vgi_rpc.http import http_connect

        return ObjectStoreClient(
            lambda: http_connect(ObjectStore, url, prefix=prefix, timeout=None),
            local=False,
            warm=warm,
        )
    if host is not None or port is not None:
        if host is None or port is None:
            raise ValueError("TCP needs both host and port")
        return ObjectStoreClient(
            lambda: tcp_connect(ObjectStore, host, port), local=False, warm=warm
        )
    path = socket or default_socket()
    return ObjectStoreClient(lambda: unix_connect(ObjectStore, path), local=True, warm=warm)


__all__ = ["Blob", "BlobWriter", "ObjectStoreClient", "connect", "default_socket"]
