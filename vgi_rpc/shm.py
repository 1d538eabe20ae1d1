"""Shared-memory segments in the vgi-rpc layout (wire spec section 11).

A segment starts with a 64 KiB header (magic ``VGIS``, version, data size,
a sorted table of live allocations) followed by the data region; batches
are stored as Arrow IPC streams in first-fit allocations. Segments made by
another implementation are readable here and ours by theirs.

This module is the segment only; ``vgi_rpc.rpc._shm_pointer`` turns batches
into pointer batches and back.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import struct
import sys
from typing import TYPE_CHECKING

import pyarrow as pa

from vgi_rpc._errors import IPCError
from vgi_rpc._ipc import Chunk, _encoder, encode_stream
from vgi_rpc._ipc_reader import EOS_MARKER, IpcValidation, has_dictionary
from vgi_rpc._logs import WIRE_TRANSPORT_LOGGER, lazy_logger

if TYPE_CHECKING:  # multiprocessing is imported when a segment is made, not by every worker
    from multiprocessing import shared_memory

HEADER_SIZE = 65536
MAGIC = b"VGIS"
VERSION = 1
_HEADER = struct.Struct("<4sIQII")
_ALLOC = struct.Struct("<QQ")
MAX_ALLOCS = (HEADER_SIZE - _HEADER.size) // _ALLOC.size  # 4094
_ALIGN = 64  # our allocations start on cache lines; readers only need offset and length

_log = lazy_logger(WIRE_TRANSPORT_LOGGER)


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class ShmSegment:
    """A shared-memory segment holding Arrow IPC batches in the vgi-rpc layout.

    Use ``create`` to make (and own) one, ``attach`` to open another process's.
    """

    def __init__(self, shm: shared_memory.SharedMemory, *, owner: bool) -> None:
        self._shm = shm
        self._owner = owner
        buf = shm.buf
        assert buf is not None  # always mapped while open
        self._buf: memoryview = buf

    @classmethod
    def create(cls, size: int) -> ShmSegment:
        """Create a segment of ``size`` bytes (header included) and initialise its header."""
        if size <= HEADER_SIZE:
            raise ValueError(
                f"a segment needs more than {HEADER_SIZE} bytes (its header), got {size}"
            )
        from multiprocessing import shared_memory

        shm = shared_memory.SharedMemory(create=True, size=size)
        segment = cls(shm, owner=True)
        _HEADER.pack_into(segment._buf, 0, MAGIC, VERSION, shm.size - HEADER_SIZE, 0, 0)
        return segment

    @classmethod
    def create_private(cls, size: int) -> ShmSegment:
        """Create a segment only this user may open, its memory reserved now, with no tracker.

        What automatic shared memory uses: on Linux the segment is a mode-0600
        file in ``/dev/shm`` whose pages are all allocated here
        (``posix_fallocate``), so a full ``/dev/shm`` fails now with ``OSError``
        rather than with SIGBUS in whichever process writes a batch later. No
        resource tracker process is started: the owner unlinks the segment
        (``unlink``), which it may do as soon as the peer has mapped it.

        Raises:
            OSError: The segment cannot be created or its memory reserved.
            ValueError: ``size`` does not exceed the header.
        """
        if size <= HEADER_SIZE:
            raise ValueError(
                f"a segment needs more than {HEADER_SIZE} bytes (its header), got {size}"
            )
        if os.path.isdir(_SHM_DIR):
            mapping: _Mapping | shared_memory.SharedMemory = _create_reserved(size)
        else:
            mapping = _create_untracked(size)
        segment = cls(mapping, owner=True)  # type: ignore[arg-type]  # duck-typed SharedMemory
        _HEADER.pack_into(segment._buf, 0, MAGIC, VERSION, mapping.size - HEADER_SIZE, 0, 0)
        return segment

    @classmethod
    def attach(
        cls, name: str, size: int | None = None, *, owner_uid: int | None = None
    ) -> ShmSegment:
        """Open an existing segment by OS name without taking ownership (its creator unlinks it).

        Only a private segment of the expected owner is mapped: a plain name
        (no path), on Linux a regular file in ``/dev/shm`` owned by
        ``owner_uid`` (this process's user by default) that no other user may
        read or write, at least a header long, with the vgi-rpc magic.

        Raises:
            IPCError: The name, owner, mode, size or header is not that of a vgi-rpc segment.
            OSError: The segment cannot be opened.
        """
        name = name.lstrip("/")
        if not _SEGMENT_NAME.fullmatch(name):
            raise IPCError(f"{name[:80]!r} is not a shared-memory segment name")
        mapping = _open_private(name, os.geteuid() if owner_uid is None else owner_uid)
        segment = cls(mapping, owner=False)  # type: ignore[arg-type]  # duck-typed SharedMemory
        magic, version, data_size, _, _ = _HEADER.unpack_from(segment._buf, 0)
        if magic != MAGIC or version != VERSION:
            segment.close()
            raise IPCError(
                f"shared memory {name!r} is not a vgi-rpc segment (magic {magic!r}, version {version})"
            )
        if data_size + HEADER_SIZE > mapping.size or (
            size is not None and data_size + HEADER_SIZE > size
        ):
            segment.close()
            raise IPCError(
                f"shared memory {name!r}: header says {data_size} data bytes, mapping has {mapping.size}"
            )
        return segment

    @property
    def name(self) -> str:
        """The OS name other processes attach by."""
        return self._shm.name

    @property
    def size(self) -> int:
        """Total size in bytes, header included."""
        return HEADER_SIZE + int(_HEADER.unpack_from(self._buf, 0)[2])

    def allocations(self) -> list[tuple[int, int]]:
        """The live allocations as (absolute offset, length), sorted by offset."""
        count = struct.unpack_from("<I", self._buf, 16)[0]
        return [_ALLOC.unpack_from(self._buf, _HEADER.size + i * _ALLOC.size) for i in range(count)]

    def _store(self, allocs: list[tuple[int, int]]) -> None:
        for i, (offset, length) in enumerate(allocs):
            _ALLOC.pack_into(self._buf, _HEADER.size + i * _ALLOC.size, offset, length)
        struct.pack_into("<I", self._buf, 16, len(allocs))

    def allocate(self, length: int) -> int | None:
        """Reserve ``length`` bytes first-fit; the absolute offset, or ``None`` when nothing fits."""
        allocs = self.allocations()
        if len(allocs) >= MAX_ALLOCS or length <= 0:
            return None
        end = self.size
        start = HEADER_SIZE
        for index, (offset, used) in enumerate([*allocs, (end, 0)]):
            if start + length <= offset:
                allocs.insert(index, (start, length))
                self._store(allocs)
                return start
            start = _align(offset + used)
        return None

    def free(self, offset: int) -> None:
        """Release the allocation starting at ``offset`` (unknown offsets are ignored)."""
        allocs = [a for a in self.allocations() if a[0] != offset]
        self._store(allocs)

    def write_batch(self, batch: pa.RecordBatch) -> tuple[int, int] | None:
        """Store ``batch`` as a whole IPC stream; (offset, length), or ``None`` if it does not fit."""
        encoder = _encoder(batch.schema)
        chunks: list[Chunk]
        if encoder is None:
            chunks = [_dictionary_messages(batch)]
        else:
            chunks = [encoder.schema_message, *encoder.encode(batch, None), EOS_MARKER]
        views = [memoryview(c).cast("B") for c in chunks]
        length = sum(len(v) for v in views)
        offset = self.allocate(length)
        if offset is None:
            return None
        position = offset
        for view in views:
            self._buf[position : position + len(view)] = view
            position += len(view)
        return offset, length

    def view(self, offset: int, length: int) -> memoryview:
        """A memoryview of ``length`` bytes at ``offset`` (no copy).

        Raises:
            IPCError: The range is not inside the data region.
        """
        if offset < HEADER_SIZE or length < 0 or offset + length > self.size:
            raise IPCError(f"shared-memory range {offset}+{length} is outside the data region")
        return self._buf[offset : offset + length]

    def read_buffer(self, offset: int, length: int) -> pa.Buffer:
        """A zero-copy view of ``length`` bytes at ``offset``."""
        return pa.py_buffer(self.view(offset, length))

    def read_batch(
        self, offset: int, length: int, schema: pa.Schema | None = None
    ) -> pa.RecordBatch:
        """The batch stored at ``offset`` (zero-copy: it references the segment's memory).

        ``schema`` is the pointer batch's schema: a dictionary-encoded batch is
        stored without its schema message and end-of-stream marker, so they are
        put back around the stored bytes (a copy).
        """
        return read_stored_batch(self.read_buffer(offset, length), offset, schema)

    def close(self) -> None:
        """Unmap the segment (batches still referencing it keep the mapping alive until freed)."""
        try:
            self._shm.close()
        except BufferError:
            _log.debug(
                "shared memory %s still referenced by live batches; unmapped when they go",
                self.name,
            )

    def unlink(self) -> None:
        """Remove the segment from the system (the creator's job)."""
        with contextlib.suppress(FileNotFoundError):
            self._shm.unlink()

    def __enter__(self) -> ShmSegment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        if self._owner:
            self.unlink()


_SEGMENT_NAME = re.compile(r"(?![.]{1,2}$)[A-Za-z0-9_.-]{1,250}")
_SHM_DIR = "/dev/shm"


class _Mapping:
    """A read-write mapping of another process's segment (the parts of SharedMemory we use)."""

    def __init__(self, name: str, fd: int, size: int) -> None:
        self.name = name
        self.size = size
        import mmap  # here: a worker that is never offered a segment does not need it

        self._mmap: mmap.mmap | None = mmap.mmap(fd, size)
        self.buf: memoryview | None = memoryview(self._mmap)

    def close(self) -> None:
        if self.buf is not None:
            self.buf.release()
            self.buf = None
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None

    def unlink(self) -> None:
        raise PermissionError("only the creator unlinks a segment")


class _OwnedMapping(_Mapping):
    """A segment this process created in ``/dev/shm`` (it may unlink it)."""

    def unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(_SHM_DIR, self.name))


# Names of segments made by ``create_private``: the creator's pid, then random bytes.
PRIVATE_PREFIX = "vgi_rpc_"


def unlink_private(name: str) -> None:
    """Remove a ``create_private`` segment's name after its creator died (best effort).

    A server calls this for the segment a vanished client had named: the client
    unlinks it itself once the server has mapped it, so this only matters when
    the client was killed in between. Other names, and files that are not this
    user's, are left alone.
    """
    name = name.lstrip("/")
    if not name.startswith(PRIVATE_PREFIX) or not _SEGMENT_NAME.fullmatch(name):
        return
    path = os.path.join(_SHM_DIR, name)
    with contextlib.suppress(OSError):
        if os.lstat(path).st_uid == os.geteuid():
            os.unlink(path)


def _create_reserved(size: int) -> _OwnedMapping:
    name = f"{PRIVATE_PREFIX}{os.getpid()}_{os.urandom(6).hex()}"
    path = os.path.join(_SHM_DIR, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise  # ENOSPC: /dev/shm cannot hold it
            os.ftruncate(fd, size)  # a file system without fallocate: sparse, as SharedMemory does
        return _OwnedMapping(name, fd, size)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    finally:
        os.close(fd)


def _create_untracked(size: int) -> shared_memory.SharedMemory:
    from multiprocessing import resource_tracker, shared_memory

    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(create=True, size=size, track=False)
    shm = shared_memory.SharedMemory(create=True, size=size)
    with contextlib.suppress(Exception):  # the owner unlinks it; the tracker must not
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]  # private name is the tracker's key
    return shm


def shm_free_bytes() -> int | None:
    """Bytes free for new segments in ``/dev/shm`` (``None`` where unknown)."""
    try:
        stats = os.statvfs(_SHM_DIR)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def _open_private(name: str, owner_uid: int) -> _Mapping | shared_memory.SharedMemory:
    """Map segment ``name`` after checking, on the open descriptor, that it is ``owner_uid``'s alone."""
    if not os.path.isdir(_SHM_DIR):
        return _attach_portable(name)
    fd = os.open(os.path.join(_SHM_DIR, name), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IPCError(f"shared memory {name!r} is not a regular segment")
        if info.st_uid != owner_uid:
            raise IPCError(
                f"shared memory {name!r} belongs to uid {info.st_uid}, not to the peer (uid {owner_uid})"
            )
        if info.st_mode & 0o077:
            raise IPCError(
                f"shared memory {name!r} is open to other users (mode {stat.S_IMODE(info.st_mode):o}); "
                "a vgi-rpc segment is private to its creator"
            )
        if info.st_size <= HEADER_SIZE:
            raise IPCError(
                f"shared memory {name!r} has {info.st_size} bytes, less than a segment header"
            )
        return _Mapping(name, fd, info.st_size)
    finally:
        os.close(fd)


def _attach_portable(name: str) -> shared_memory.SharedMemory:
    from multiprocessing import resource_tracker, shared_memory

    if sys.version_info >= (3, 13):
        shm = shared_memory.SharedMemory(name=name, create=False, track=False)
    else:
        shm = shared_memory.SharedMemory(name=name, create=False)
        # Before 3.13 attaching registers the segment with the resource tracker,
        # which would unlink the creator's segment when this process exits.
        with contextlib.suppress(Exception):
            resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]  # private name is the tracker's key
    if shm.size <= HEADER_SIZE:
        shm.close()
        raise IPCError(f"shared memory {name!r} has {shm.size} bytes, less than a segment header")
    return shm


def _dictionary_messages(batch: pa.RecordBatch) -> pa.Buffer:
    """The dictionary and batch messages of ``batch``'s IPC stream (spec section 11 layout)."""
    stream = encode_stream(batch.schema, [(batch, None)])
    reader = pa.BufferReader(stream)
    pa.ipc.read_message(reader)  # skip the schema message
    start = reader.tell()
    return stream.slice(start, stream.size - start - len(EOS_MARKER))


def read_stored_batch(
    buffer: pa.Buffer, offset: int, schema: pa.Schema | None = None
) -> pa.RecordBatch:
    """Decode one batch stored in a segment (see ``ShmSegment.read_batch``).

    The peer wrote it: it is framed and bounded like a request (not validated:
    the caller validates at its own level), and must have the pointer's schema.
    """
    from vgi_rpc._ipc_embedded import read_embedded_batch

    if schema is not None and has_dictionary(schema):
        head = schema.serialize()
        buffer = pa.py_buffer(b"".join([head.to_pybytes(), buffer.to_pybytes(), EOS_MARKER]))
    where = f"the batch at shared-memory offset {offset}"
    batch = read_embedded_batch(buffer, where, IpcValidation.NONE)
    if schema is not None and not batch.schema.equals(schema):
        raise IPCError(f"{where} has another schema than its pointer batch")
    return batch


__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "MAX_ALLOCS",
    "PRIVATE_PREFIX",
    "VERSION",
    "ShmSegment",
    "shm_free_bytes",
    "unlink_private",
]
