"""Write-ahead log: one Arrow IPC record batch per entry, framed, checksummed, fsynced.

Owns the on-disk log of one namespace (a directory of segment files on the
local file system) and nothing else: it neither knows what a batch means nor
touches the index. An entry is acknowledged only after ``append`` returns,
which is after ``fdatasync``.

Entry framing (little endian)::

    b"VIW1" | offset u64 | length u32 | crc32(offset, length, payload) u32 | payload

``payload`` is an Arrow IPC stream holding one batch. Offsets are consecutive
integers starting at 1. On open, a torn or corrupt entry at the end of the last
segment (a crash mid-write) is cut off; corruption anywhere else is an error.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import struct
import zlib
from collections.abc import Iterator

import pyarrow as pa

from vgi_rpc import IPCError, read_ipc_stream
from vgi_rpc.services.vectorindex._errors import StorageError

_MAGIC = b"VIW1"
_HEADER = struct.Struct("<4sQII")
MAX_ENTRY_BYTES = 1 << 30
_PREFIX, _SUFFIX = "wal-", ".log"

log = logging.getLogger("vgi_rpc.services.vectorindex.wal")
# Tests set this to an offset: the process then kills itself half way through writing it.
_CRASH_AT = int(os.environ.get("VGI_VECTORINDEX_WAL_CRASH_AT", "0") or 0)


def _crc(offset: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<QI", offset, len(payload))))


def encode_batch(batch: pa.RecordBatch) -> pa.Buffer:
    """Serialize one batch as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


def decode_batch(payload: bytes | pa.Buffer) -> pa.RecordBatch:
    """Read the single batch of an entry payload (bounded and validated in full).

    The log may live on shared storage: its checksum catches damage, not
    edits, so an entry is read like a request before the index trusts it.
    """
    try:
        _, batches = read_ipc_stream(payload)
    except IPCError as exc:
        raise StorageError(f"unreadable log entry: {exc}") from None
    if len(batches) != 1:
        raise StorageError(f"log entry holds {len(batches)} batches, expected 1")
    return batches[0]


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteAheadLog:
    """The write-ahead log of one namespace.

    Use ``replay(after)`` once (it also repairs a torn tail), then ``append``.
    Not thread-safe: the namespace's single writer calls it.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.next_offset = 1
        self._file: int | None = None
        self._opened = False

    def _segments(self) -> list[tuple[int, str]]:
        found = []
        for name in os.listdir(self.directory):
            if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
                first = name[len(_PREFIX) : -len(_SUFFIX)]
                if first.isdigit():
                    found.append((int(first), os.path.join(self.directory, name)))
        return sorted(found)

    def replay(self, after: int) -> Iterator[tuple[int, pa.RecordBatch]]:
        """Yield ``(offset, batch)`` for every entry after ``after``, then get ready to append.

        ``after`` is the offset the caller's snapshot already holds.
        """
        segments = self._segments()
        last = after
        for index, (first, path) in enumerate(segments):
            is_last = index == len(segments) - 1
            for offset, batch in self._read_segment(path, first, is_last):
                if offset > last + 1 and offset > after + 1:
                    raise StorageError(
                        f"log gap: entry {offset} follows {last} in {path}; the log is incomplete"
                    )
                if offset > after:
                    yield offset, batch
                last = max(last, offset)
        self.next_offset = last + 1
        self._opened = True

    def _read_segment(
        self, path: str, first: int, is_last: bool
    ) -> Iterator[tuple[int, pa.RecordBatch]]:
        with open(path, "rb") as f:
            data = f.read()
        pos, expected = 0, first
        while pos < len(data):
            problem, entry = self._parse(data, pos, expected)
            if problem is not None:
                if not is_last:
                    raise StorageError(f"corrupt log entry at byte {pos} of {path}: {problem}")
                log.warning("dropping a torn log tail at byte %d of %s: %s", pos, path, problem)
                with open(path, "r+b") as f:
                    f.truncate(pos)
                    os.fsync(f.fileno())
                return
            assert entry is not None
            length, payload = entry
            yield expected, decode_batch(payload)
            pos += _HEADER.size + length
            expected += 1

    @staticmethod
    def _parse(data: bytes, pos: int, expected: int) -> tuple[str | None, tuple[int, bytes] | None]:
        if len(data) - pos < _HEADER.size:
            return "truncated header", None
        magic, offset, length, crc = _HEADER.unpack_from(data, pos)
        if magic != _MAGIC:
            return "bad magic", None
        if offset != expected:
            return f"offset {offset}, expected {expected}", None
        if length > MAX_ENTRY_BYTES or pos + _HEADER.size + length > len(data):
            return "truncated payload", None
        payload = data[pos + _HEADER.size : pos + _HEADER.size + length]
        if _crc(offset, payload) != crc:
            return "checksum mismatch", None
        return None, (length, payload)

    def _open_segment(self) -> int:
        if self._file is None:
            segments = self._segments()
            if segments and segments[-1][0] <= self.next_offset:
                path = segments[-1][1]
            else:
                path = os.path.join(self.directory, f"{_PREFIX}{self.next_offset:020d}{_SUFFIX}")
            self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            _fsync_dir(self.directory)
        return self._file

    def append(self, batch: pa.RecordBatch) -> int:
        """Append one entry and sync it to disk; return its offset."""
        if not self._opened:
            raise StorageError("replay the log before appending to it")
        payload = encode_batch(batch)
        if payload.size > MAX_ENTRY_BYTES:
            raise StorageError(f"log entry of {payload.size} bytes exceeds {MAX_ENTRY_BYTES}")
        offset = self.next_offset
        view = memoryview(payload)
        header = _HEADER.pack(_MAGIC, offset, payload.size, _crc(offset, view))
        fd = self._open_segment()
        if offset == _CRASH_AT:  # fault injection for crash tests: die mid-write
            os.write(fd, header + bytes(view[: len(view) // 2]))
            os.fdatasync(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            os.writev(fd, [header, view])
            os.fdatasync(fd)
        except OSError as exc:
            raise StorageError(f"cannot append to the log in {self.directory}: {exc}") from exc
        self.next_offset += 1
        return offset

    def roll(self) -> None:
        """Start a new segment at the next offset (after a snapshot)."""
        self.close()
        path = os.path.join(self.directory, f"{_PREFIX}{self.next_offset:020d}{_SUFFIX}")
        self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _fsync_dir(self.directory)

    def drop_through(self, offset: int) -> int:
        """Delete segments holding only entries up to ``offset``; return how many."""
        segments = self._segments()
        dropped = 0
        for (_, path), (next_first, _) in itertools.pairwise(segments):
            if next_first - 1 <= offset:
                os.unlink(path)
                dropped += 1
        if dropped:
            _fsync_dir(self.directory)
        return dropped

    @property
    def last_offset(self) -> int:
        """The offset of the newest entry (0 when the log is empty)."""
        return self.next_offset - 1

    def close(self) -> None:
        """Close the open segment file."""
        if self._file is not None:
            os.close(self._file)
            self._file = None
