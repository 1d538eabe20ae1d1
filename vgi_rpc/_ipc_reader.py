"""Reading Arrow IPC streams message by message from a buffered byte channel.

Frames each encapsulated message itself (spec section 2) instead of letting
pyarrow pull through a Python file object: that is several times cheaper per
small message, never blocks on bytes that cannot start a message, and reads
large bodies straight into their final buffer. Knows nothing about metadata
keys or methods.
"""

from __future__ import annotations

import enum
import io
import struct
import threading
from collections import OrderedDict
from typing import NamedTuple

import pyarrow as pa

from vgi_rpc._errors import IPCError, TransportError

CONTINUATION = b"\xff\xff\xff\xff"
EOS_MARKER = CONTINUATION + b"\0\0\0\0"
MAX_METADATA_BYTES = 64 << 20
_POOL_THRESHOLD = 64 << 10
_SCHEMA, _DICTIONARY_BATCH, _RECORD_BATCH = 1, 2, 3
_PREFIX = struct.Struct("<4si")
_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")

Metadata = dict[bytes, bytes]


class IpcValidation(enum.Enum):
    """How thoroughly received batches are checked before use.

    NONE trusts the peer; STANDARD checks structure (offsets, lengths);
    FULL also checks data buffers (e.g. UTF-8 validity). FULL is the default.
    """

    NONE = "none"
    STANDARD = "standard"
    FULL = "full"


def validate_batch(batch: pa.RecordBatch, level: IpcValidation) -> None:
    """Validate ``batch`` at ``level``; raise ``IPCError`` if it is malformed."""
    if level is IpcValidation.NONE:
        return
    try:
        batch.validate(full=level is IpcValidation.FULL)
    except pa.ArrowInvalid as exc:
        raise IPCError(f"received batch failed {level.name} validation: {exc}") from exc


def _read_exact(source: io.BufferedReader, view: memoryview, what: str) -> None:
    filled = 0
    total = len(view)
    try:
        while filled < total:
            n = source.readinto(view[filled:])
            if not n:
                raise TransportError(f"peer closed the channel in the middle of an IPC {what}")
            filled += n
    except ValueError as exc:  # the channel was closed under us (shutdown from another thread)
        raise TransportError(f"the channel was closed: {exc}") from exc
    except OSError as exc:
        if isinstance(exc, TransportError):
            raise
        raise TransportError(f"reading from the peer failed: {exc}") from exc


class _Header(NamedTuple):
    """The fields of an IPC ``Message`` flatbuffer that framing and dispatch need."""

    header_type: int
    body_length: int
    custom_metadata: Metadata | None


_HEADER_CACHE: dict[bytes, _Header] = {}
_HEADER_CACHE_LIMIT = 1024
_CACHEABLE_METADATA_BYTES = 2048


def _parse_header(meta: bytes) -> _Header:
    """Decode Message.header_type (field 1), bodyLength (3) and custom_metadata (4).

    Repeated calls of one method send byte-identical headers, so small ones
    are cached; the result must be treated as read-only.
    """
    cached = _HEADER_CACHE.get(meta)
    if cached is not None:
        return cached
    try:
        header = _decode_header(meta)
    except (struct.error, IndexError) as exc:
        raise IPCError(f"malformed Arrow IPC message header: {exc}") from exc
    if header.body_length < 0:
        raise IPCError(
            f"malformed Arrow IPC message header: negative body length {header.body_length}"
        )
    if len(meta) <= _CACHEABLE_METADATA_BYTES:
        if len(_HEADER_CACHE) >= _HEADER_CACHE_LIMIT:
            _HEADER_CACHE.clear()
        _HEADER_CACHE[meta] = header
    return header


def _decode_header(meta: bytes) -> _Header:
    u16, u32 = _U16.unpack_from, _U32.unpack_from
    table = u32(meta, 0)[0]
    vtable = table - _I32.unpack_from(meta, table)[0]
    vtable_size = u16(meta, vtable)[0]
    offsets = [u16(meta, vtable + slot)[0] if slot < vtable_size else 0 for slot in (6, 10, 12)]
    header_type = meta[table + offsets[0]] if offsets[0] else 0
    body_length = _I64.unpack_from(meta, table + offsets[1])[0] if offsets[1] else 0
    if not offsets[2]:
        return _Header(header_type, body_length, None)
    pos = table + offsets[2]
    vector = pos + u32(meta, pos)[0]
    custom: Metadata = {}
    for entry in range(vector + 4, vector + 4 + 4 * u32(meta, vector)[0], 4):
        kv = entry + u32(meta, entry)[0]
        kv_vtable = kv - _I32.unpack_from(meta, kv)[0]
        kv_size = u16(meta, kv_vtable)[0]
        pair = []
        for slot in (4, 6):
            offset = u16(meta, kv_vtable + slot)[0] if slot < kv_size else 0
            if not offset:
                pair.append(b"")
                continue
            start = kv + offset + u32(meta, kv + offset)[0]
            pair.append(meta[start + 4 : start + 4 + u32(meta, start)[0]])
        custom[pair[0]] = pair[1]
    return _Header(header_type, body_length, custom)


class _Message(NamedTuple):
    header: _Header
    metadata: bytes
    buffer: pa.Buffer


def read_message(source: io.BufferedReader) -> _Message | None:
    """Read one encapsulated message; ``None`` at an end-of-stream marker.

    Raises:
        IPCError: The bytes cannot be an IPC message.
        TransportError: The channel ended or failed mid-message.
    """
    prefix = bytearray(8)
    _read_exact(source, memoryview(prefix), "message")
    marker, length = _PREFIX.unpack(prefix)
    if marker != CONTINUATION:
        raise IPCError(
            f"not an Arrow IPC stream: a message must start with 0xFFFFFFFF, got {bytes(marker)!r}"
        )
    if length == 0:
        return None
    if length < 0 or length > MAX_METADATA_BYTES:
        raise IPCError(f"not an Arrow IPC stream: implausible message metadata length {length}")
    try:
        metadata = source.read(length)
    except (OSError, ValueError) as exc:
        raise TransportError(f"reading from the peer failed: {exc}") from exc
    if len(metadata) != length:
        raise TransportError("peer closed the channel in the middle of an IPC message")
    header = _parse_header(metadata)
    if not header.body_length:
        return _Message(header, metadata, pa.py_buffer(prefix + metadata))
    total = 8 + length + header.body_length
    if total < _POOL_THRESHOLD:
        small = bytearray(total)
        small[: 8 + length] = prefix + metadata
        _read_exact(source, memoryview(small)[8 + length :], "message body")
        return _Message(header, metadata, pa.py_buffer(small))
    # Large bodies go into Arrow's memory pool, which reuses freed pages instead of
    # faulting in fresh ones for every message.
    try:
        whole = pa.allocate_buffer(total)
    except MemoryError as exc:
        raise IPCError(f"cannot allocate {total} bytes for an IPC message body") from exc
    view = memoryview(whole).cast("B")
    view[: 8 + length] = prefix + metadata
    _read_exact(source, view[8 + length :], "message body")
    return _Message(header, metadata, whole)


class _SchemaCache:
    """Parsed schemas by their exact message bytes (requests of one method repeat them)."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[bytes, tuple[pa.Schema, bool]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, message: _Message) -> tuple[pa.Schema, bool]:
        """The schema and whether it has dictionary columns."""
        key = message.metadata
        with self._lock:
            entry = self._items.get(key)
        if entry is not None:
            return entry
        try:
            schema = pa.ipc.read_schema(message.buffer)
        except (pa.ArrowInvalid, OSError) as exc:
            raise IPCError(f"malformed Arrow IPC schema message: {exc}") from exc
        entry = (schema, has_dictionary(schema))
        with self._lock:
            self._items[key] = entry
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return entry


_SCHEMAS = _SchemaCache()


def has_dictionary(schema: pa.Schema) -> bool:
    """Whether any column, at any depth, is dictionary-encoded."""

    def walk(t: pa.DataType) -> bool:
        if pa.types.is_dictionary(t):
            return True
        return any(walk(t.field(i).type) for i in range(t.num_fields))

    return any(walk(f.type) for f in schema)


_BODYLESS: dict[tuple[int, bytes], tuple[pa.Schema, pa.RecordBatch]] = {}


def _bodyless_batch(schema: pa.Schema, message: _Message) -> pa.RecordBatch:
    """Decode a message without body or metadata once (ticks, void results), then reuse it."""
    key = (id(schema), message.metadata)
    entry = _BODYLESS.get(key)
    if entry is not None and entry[0] is schema:
        return entry[1]
    batch = pa.ipc.read_record_batch(pa.ipc.read_message(message.buffer), schema)
    if len(_BODYLESS) >= 256:
        _BODYLESS.clear()
    _BODYLESS[key] = (schema, batch)  # the entry keeps the schema alive, so its id stays unique
    return batch


class IpcStreamReader:
    """One IPC stream being read from a channel, batch by batch."""

    def __init__(self, source: io.BufferedReader, first: _Message) -> None:
        if first.header.header_type != _SCHEMA:
            raise IPCError(
                f"an IPC stream must start with a schema message, got message type {first.header.header_type}"
            )
        self._source = source
        self.schema, dictionaries = _SCHEMAS.get(first)
        self._done = False
        # Dictionary batches cannot be fed to pyarrow one by one, so streams with
        # dictionary columns keep their messages and are decoded by a stream reader.
        self._replay: list[pa.Buffer] | None = None
        if dictionaries:
            self._replay = [first.buffer]

    def read(
        self, validation: IpcValidation = IpcValidation.NONE
    ) -> tuple[pa.RecordBatch, Metadata | None] | None:
        """The next batch and its custom metadata; ``None`` once the stream's EOS is read."""
        if self._done:
            return None
        while True:
            message = read_message(self._source)
            if message is None:
                self._done = True
                return None
            if message.header.header_type == _RECORD_BATCH:
                decoded = self._decode(message)
                validate_batch(decoded[0], validation)
                return decoded
            if message.header.header_type == _DICTIONARY_BATCH and self._replay is not None:
                self._replay.append(message.buffer)
                continue
            raise IPCError(
                f"unexpected IPC message type {message.header.header_type} inside a stream"
            )

    def _decode(self, message: _Message) -> tuple[pa.RecordBatch, Metadata | None]:
        try:
            if self._replay is None:
                header = message.header
                if not header.body_length and header.custom_metadata is None:
                    return _bodyless_batch(self.schema, message), None
                batch = pa.ipc.read_record_batch(pa.ipc.read_message(message.buffer), self.schema)
                return batch, header.custom_metadata
            parts = [*self._replay, message.buffer, pa.py_buffer(EOS_MARKER)]
            stream = pa.ipc.open_stream(b"".join(memoryview(part) for part in parts))
            batch, metadata = stream.read_next_batch_with_custom_metadata()
            received: pa.KeyValueMetadata | None = metadata
            return batch, (dict(received) if received is not None else None)
        except (pa.ArrowInvalid, OSError, struct.error, IndexError) as exc:
            raise IPCError(f"malformed Arrow IPC record batch: {exc}") from exc

    def drain(self) -> None:
        """Read and discard the rest of the stream."""
        while self.read() is not None:
            pass


def open_stream_reader(source: io.BufferedReader) -> IpcStreamReader | None:
    """Start reading the next IPC stream; ``None`` on a clean end of file before it."""
    try:
        if not source.peek(1):
            return None
    except (OSError, ValueError) as exc:
        raise TransportError(f"reading from the peer failed: {exc}") from exc
    first = read_message(source)
    if first is None:
        raise IPCError(
            "an IPC stream must start with a schema message, got an end-of-stream marker"
        )
    return IpcStreamReader(source, first)


__all__ = [
    "EOS_MARKER",
    "IpcStreamReader",
    "IpcValidation",
    "Metadata",
    "has_dictionary",
    "open_stream_reader",
    "read_message",
    "validate_batch",
]
