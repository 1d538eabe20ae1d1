"""Reading Arrow IPC streams message by message from a buffered byte channel.

Frames each encapsulated message itself (spec section 2) instead of letting
pyarrow pull through a Python file object: that is several times cheaper per
small message, never blocks on bytes that cannot start a message, and reads
large bodies straight into their final buffer. Knows nothing about metadata
keys or methods.
"""

from __future__ import annotations

import contextlib
import enum
import io
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, NoReturn, cast, overload

import pyarrow as pa

from vgi_rpc._errors import IPCError, MessageTooLargeError, TransportError, VgiRpcError
from vgi_rpc._flat_row import MAX_ROW_BYTES, FlatLayout, FlatRow, flat_layout
from vgi_rpc._flatbuf import FlatbufferError, Header, decode_header, schema_shape
from vgi_rpc._limits import CLIENT_LIMITS, ResourceLimits
from vgi_rpc._memory_source import MemorySource, memory_source
from vgi_rpc._record import tuple_fields

CONTINUATION = b"\xff\xff\xff\xff"
EOS_MARKER = CONTINUATION + b"\0\0\0\0"
_POOL_THRESHOLD = 64 << 10
_SKIPPABLE = 4  # messages up to this many times the limit are read past, not kept
_SCHEMA, _DICTIONARY_BATCH, _RECORD_BATCH = 1, 2, 3
_PREFIX = struct.Struct("<4si")
_IN_MEMORY: type = MemorySource
_UNREAD: Any = object()  # ``IpcStreamReader._read``: no message read yet

Metadata = dict[bytes, bytes]


@contextlib.contextmanager
def untrusted(what: str) -> Iterator[None]:
    """The decode boundary: anything but a vgi_rpc error raised inside becomes an ``IPCError``.

    Whatever pyarrow, ``struct`` or an allocator raise on hostile bytes
    (``ArrowNotImplementedError``, ``OverflowError``, ``MemoryError`` ...) is
    the peer's fault, reported as malformed input instead of escaping.
    """
    try:
        yield
    except VgiRpcError:
        raise
    except Exception as exc:
        raise IPCError(f"malformed {what}: {type(exc).__name__}: {exc}") from exc


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
    except Exception as exc:
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


_HEADER_CACHE: dict[bytes, Header] = {}
_HEADER_CACHE_LIMIT = 1024
_CACHEABLE_METADATA_BYTES = 2048


def _parse_header(meta: bytes) -> Header:
    """The message header, cached for small ones (treat the result as read-only).

    Repeated calls of one method send byte-identical small headers.
    """
    cached = _HEADER_CACHE.get(meta)
    if cached is not None:
        return cached
    try:
        header = decode_header(meta)
    except FlatbufferError as exc:
        raise IPCError(f"malformed Arrow IPC message header: {exc}") from exc
    if len(meta) <= _CACHEABLE_METADATA_BYTES:
        if len(_HEADER_CACHE) >= _HEADER_CACHE_LIMIT:
            _HEADER_CACHE.clear()
        _HEADER_CACHE[meta] = header
    return header


if TYPE_CHECKING:  # at run time without eval: see Header in _flatbuf

    class _MessageFields(NamedTuple):
        header: Header
        metadata: bytes
        data: bytes | pa.Buffer  # the whole message (prefix, header, body)

    class _ReadPolicyFields(NamedTuple):
        validation: IpcValidation
        limits: ResourceLimits
        schemas: SchemaCache

else:
    _MessageFields = tuple_fields("_Message", ("header", "metadata", "data"), __name__)
    _ReadPolicyFields = tuple_fields("ReadPolicy", ("validation", "limits", "schemas"), __name__)


class _Message(_MessageFields):
    __slots__ = ()

    @property
    def buffer(self) -> pa.Buffer:
        data = self.data
        return data if isinstance(data, pa.Buffer) else pa.py_buffer(data)


def _read_failed(exc: OSError | ValueError) -> NoReturn:
    """Raise the ``TransportError`` a failed read means (``ValueError``: closed under us)."""
    if isinstance(exc, ValueError):
        raise TransportError(f"the channel was closed: {exc}") from exc
    if isinstance(exc, TransportError):
        raise exc
    raise TransportError(f"reading from the peer failed: {exc}") from exc


def read_message(
    source: io.BufferedReader, limits: ResourceLimits = CLIENT_LIMITS, prefix: bytes | None = None
) -> _Message | None:
    """Read one encapsulated message; ``None`` at an end-of-stream marker.

    Sizes are checked against ``limits`` before the message is allocated.
    ``prefix``: its first 8 bytes (or what arrived of them), already read.

    Raises:
        IPCError: The bytes cannot be an IPC message, or it exceeds ``limits``.
        TransportError: The channel ended or failed mid-message.
    """
    try:
        if prefix is None:
            prefix = source.read(8)
        if len(prefix) != 8:
            raise TransportError("peer closed the channel in the middle of an IPC message")
        marker, length = _PREFIX.unpack(prefix)
        if marker != CONTINUATION or not 0 < length <= limits.max_metadata_bytes:
            return _end_or_refuse(marker, length, limits)
        metadata = source.read(length)
        if len(metadata) != length:
            raise TransportError("peer closed the channel in the middle of an IPC message")
        header = _HEADER_CACHE.get(metadata) or _parse_header(metadata)
    except VgiRpcError:
        raise
    except (OSError, ValueError) as exc:  # from the source's reads
        _read_failed(exc)
    return _message_body(source, header, prefix, metadata, limits)


def _message_body(
    source: io.BufferedReader,
    header: Header,
    prefix: bytes,
    metadata: bytes,
    limits: ResourceLimits,
) -> _Message:
    """``read_message`` once its prefix and header have been read: the body, bounded."""
    try:
        body_length = header.body_length
        if not body_length:
            return _Message(header, metadata, prefix + metadata)
        total = 8 + len(metadata) + body_length
        if total >= _POOL_THRESHOLD or total > limits.max_message_bytes:
            return _Message(
                header, metadata, _read_large(source, header, prefix + metadata, limits)
            )
        if type(source) is _IN_MEMORY:  # ``isinstance`` would ask ``io``'s ABC machinery
            return _Message(header, metadata, _read_body(source, prefix + metadata, body_length))
        # Small: one more buffered read and one small copy beat a preallocated target.
        body = source.read(body_length)
        if len(body) != body_length:
            raise TransportError("peer closed the channel in the middle of an IPC message body")
        return _Message(header, metadata, prefix + metadata + body)
    except VgiRpcError:
        raise
    except (OSError, ValueError) as exc:  # from the source's reads
        _read_failed(exc)


def _end_or_refuse(marker: bytes, length: int, limits: ResourceLimits) -> _Message | None:
    """``None`` for an end-of-stream marker; raise for any other prefix out of bounds."""
    if marker != CONTINUATION:
        raise IPCError(
            f"not an Arrow IPC stream: a message must start with 0xFFFFFFFF, got {bytes(marker)!r}"
        )
    if length == 0:
        return None
    raise IPCError(
        f"IPC message header of {length} bytes is outside 1..{limits.max_metadata_bytes} "
        "(ResourceLimits.max_metadata_bytes)"
    )


def _read_large(
    source: io.BufferedReader, header: Header, head: bytes, limits: ResourceLimits
) -> pa.Buffer:
    """The body of a message of 64 KiB or more (or over ``limits``: then skipped, and refused)."""
    body_length = header.body_length
    total = len(head) + body_length
    if total > limits.max_message_bytes:
        problem = MessageTooLargeError(
            f"IPC message of {total} bytes exceeds the limit of {limits.max_message_bytes} "
            "(ResourceLimits.max_message_bytes)",
            header.custom_metadata,
        )
        if total <= _SKIPPABLE * limits.max_message_bytes:
            # Skip a plausible body without keeping it: the stream stays framed and the
            # connection usable. A wildly larger claim is not waited for.
            try:
                _discard(source, body_length)
            except TransportError:
                raise problem from None
        raise problem
    return _read_body(source, head, body_length)


def _read_body(source: io.BufferedReader, head: bytes, body_length: int) -> pa.Buffer:
    """The whole message (``head`` already read, then its body) as one buffer."""
    if isinstance(source, MemorySource):
        in_place = source.take_back(len(head), body_length)
        if in_place is not None:
            return in_place
    total = len(head) + body_length
    if total < _POOL_THRESHOLD:
        small = bytearray(total)
        small[: len(head)] = head
        _read_exact(source, memoryview(small)[len(head) :], "message body")
        return pa.py_buffer(small)
    # Large bodies go into Arrow's memory pool, which reuses freed pages instead of
    # faulting in fresh ones for every message.
    with untrusted("IPC message body"):
        whole = pa.allocate_buffer(total)
    view = memoryview(whole).cast("B")
    view[: len(head)] = head
    _read_exact(source, view[len(head) :], "message body")
    return whole


def _discard(source: io.BufferedReader, count: int) -> None:
    scratch = memoryview(bytearray(min(count, 1 << 20)))
    while count:
        step = min(count, len(scratch))
        _read_exact(source, scratch[:step], "message body")
        count -= step


# What a parsed schema costs beyond its flatbuffer, per field (measured: about 260 bytes).
_SCHEMA_BYTES_PER_FIELD = 320


class SchemaCache:
    """Parsed schemas by their exact message bytes, bounded in (estimated) bytes.

    Requests of one method repeat their schema, so parsing it once pays; a
    peer sending ever new wide schemas only evicts older entries.
    """

    def __init__(self, max_bytes: int) -> None:
        self._items: OrderedDict[bytes, tuple[pa.Schema, bool, bool, int]] = OrderedDict()
        self._max_bytes = max_bytes
        self.size = 0
        self._lock = threading.Lock()

    def flat(self, key: bytes) -> pa.Schema | None:
        """The schema already parsed from the message ``key``, if it has no dictionary or nested column."""
        with self._lock:
            entry = self._items.get(key)
        return entry[0] if entry is not None and not entry[2] else None

    def get(self, message: _Message, limits: ResourceLimits) -> tuple[pa.Schema, bool, bool]:
        """The schema, whether it has dictionary columns and whether it nests; bounds are checked first."""
        key = message.metadata
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
                return entry[0], entry[1], entry[2]
        try:
            fields, depth = schema_shape(key, limits.max_columns, limits.max_nesting_depth)
        except FlatbufferError as exc:
            raise IPCError(f"malformed Arrow IPC schema message: {exc}") from exc
        if fields > limits.max_columns:
            raise IPCError(
                f"schema declares more than {limits.max_columns} fields "
                "(ResourceLimits.max_columns)"
            )
        if depth > limits.max_nesting_depth:
            raise IPCError(
                f"schema nests fields more than {limits.max_nesting_depth} levels deep "
                "(ResourceLimits.max_nesting_depth)"
            )
        with untrusted("Arrow IPC schema message"):
            schema = pa.ipc.read_schema(message.buffer)
            check_types(schema)
        cost = len(key) + _SCHEMA_BYTES_PER_FIELD * fields
        dictionaries = has_dictionary(schema)
        nested = dictionaries or has_nested(schema)
        if cost > self._max_bytes:
            return schema, dictionaries, nested
        with self._lock:
            if key not in self._items:
                self._items[key] = (schema, dictionaries, nested, cost)
                self.size += cost
            while self.size > self._max_bytes:
                _, (_, _, _, dropped) = self._items.popitem(last=False)
                self.size -= dropped
        return schema, dictionaries, nested


_CLIENT_SCHEMAS = SchemaCache(CLIENT_LIMITS.schema_cache_bytes)


def check_types(schema: pa.Schema) -> None:
    """Refuse type parameters pyarrow parses but cannot compute with (a decimal's scale).

    Raises:
        IPCError: A decimal's precision or scale, or a fixed width, is out of range.
    """
    pending: list[pa.DataType] = [field.type for field in schema]
    while pending:
        t = pending.pop()
        if isinstance(t, pa.Decimal128Type | pa.Decimal256Type):
            widest = 38 if isinstance(t, pa.Decimal128Type) else 76
            if not 1 <= t.precision <= widest or abs(t.scale) > widest:
                raise IPCError(f"schema declares an invalid decimal type {t}")
        elif isinstance(t, pa.FixedSizeBinaryType) and not 0 <= t.byte_width < 1 << 31:
            raise IPCError(f"schema declares an invalid fixed_size_binary width {t.byte_width}")
        elif isinstance(t, pa.FixedSizeListType) and not 0 <= t.list_size < 1 << 31:
            raise IPCError(f"schema declares an invalid fixed_size_list size {t.list_size}")
        if pa.types.is_dictionary(t):
            pending += [t.index_type, t.value_type]
        else:
            pending += [t.field(i).type for i in range(t.num_fields)]


def has_nested(schema: pa.Schema) -> bool:
    """Whether any column has child arrays (lists, structs, maps, unions, run-end encoding)."""
    return any(field.type.num_fields or pa.types.is_run_end_encoded(field.type) for field in schema)


def has_dictionary(schema: pa.Schema) -> bool:
    """Whether any column, at any depth, is dictionary-encoded."""

    def walk(t: pa.DataType) -> bool:
        if pa.types.is_dictionary(t):
            return True
        return any(walk(t.field(i).type) for i in range(t.num_fields))

    return any(walk(f.type) for f in schema)


_BODYLESS: dict[tuple[int, bytes], tuple[pa.Schema, pa.RecordBatch]] = {}
_BODYLESS_MAX_FIELDS = 64


def _bodyless_batch(schema: pa.Schema, message: _Message) -> pa.RecordBatch:
    """Decode a message without body once (ticks, void results, parameterless requests), then reuse it.

    The decoded batch depends only on the schema and the header (the custom
    metadata travels beside it), so byte-identical headers share one batch.
    """
    key = (id(schema), message.metadata)
    entry = _BODYLESS.get(key)
    if entry is not None and entry[0] is schema:
        return entry[1]
    batch = pa.ipc.read_record_batch(pa.ipc.read_message(message.buffer), schema)
    if len(schema) <= _BODYLESS_MAX_FIELDS and len(key[1]) <= _CACHEABLE_METADATA_BYTES:
        if len(_BODYLESS) >= 256:
            _BODYLESS.clear()
        _BODYLESS[key] = (schema, batch)  # the entry keeps the schema alive, so its id stays unique
    return batch


class IpcStreamReader:
    """One IPC stream being read from a channel, batch by batch, within ``limits``."""

    def __init__(
        self,
        source: io.BufferedReader,
        first: _Message,
        limits: ResourceLimits = CLIENT_LIMITS,
        schemas: SchemaCache = _CLIENT_SCHEMAS,
    ) -> None:
        if first.header.header_type != _SCHEMA:
            raise IPCError(
                f"an IPC stream must start with a schema message, got message type {first.header.header_type}"
            )
        self._source = source
        self._limits = limits
        self._free_rows = limits.min_free_rows
        self._rows_per_byte = limits.max_rows_per_byte
        self.schema, dictionaries, self._nested = schemas.get(first, limits)
        # One-row batches of this schema may be read without pyarrow (``read(rows=True)``).
        self._layout: FlatLayout | None = None
        self._layout_known = self._nested  # looked up on the first ``read(rows=True)``
        self._done = False
        # The custom metadata of the last batch message read, even when it failed to decode.
        self.last_metadata: Metadata | None = None
        # Dictionary batches cannot be fed to pyarrow one by one, so streams with
        # dictionary columns keep their messages and are decoded by a stream reader.
        self._replay: list[pa.Buffer] | None = None
        self._replay_bytes = 0
        if dictionaries:
            self._replay = [first.buffer]
        # Small plain batches from a pipe or socket are framed inline (``read``).
        self._plain = self._replay is None and type(source) is io.BufferedReader
        self._plain_limit = min(_POOL_THRESHOLD, limits.max_message_bytes + 1)

    @overload
    def read(
        self, validation: IpcValidation = ..., rows: Literal[False] = ...
    ) -> tuple[pa.RecordBatch, Metadata | None] | None: ...

    @overload
    def read(
        self, validation: IpcValidation, rows: bool
    ) -> tuple[pa.RecordBatch | FlatRow, Metadata | None] | None: ...

    def read(
        self, validation: IpcValidation = IpcValidation.NONE, rows: bool = False
    ) -> tuple[pa.RecordBatch | FlatRow, Metadata | None] | None:
        """The next batch and its custom metadata; ``None`` once the stream's EOS is read.

        With ``rows``, a canonical one-row batch of flat columns comes back as
        a ``FlatRow``: its values read and checked without pyarrow. Anything
        else (a row that is not canonical too) is read by pyarrow.

        Raises:
            IPCError: The message is malformed, over a limit, or fails ``validation``.
            TransportError: The channel ended or failed.
        """
        if rows or not self._plain or self._done:
            return self._read(validation, rows, _UNREAD)
        # The common message of a pipe or socket, framed inline with ``read_message``'s
        # checks: a small record batch without custom metadata. Anything else is handed,
        # as far as it was read, to the general path.
        source = self._source
        limits = self._limits
        try:
            prefix = source.read(8)
            marker, length = _PREFIX.unpack(prefix) if len(prefix) == 8 else (b"", 0)
            if marker != CONTINUATION or not 0 < length <= limits.max_metadata_bytes:
                return self._read(validation, rows, read_message(source, limits, prefix))
            metadata = source.read(length)
            if len(metadata) != length:
                raise TransportError("peer closed the channel in the middle of an IPC message")
            header = _HEADER_CACHE.get(metadata) or _parse_header(metadata)
            body_length = header.body_length
            if (
                header.header_type != _RECORD_BATCH
                or header.custom_metadata is not None
                or not 0 < body_length < self._plain_limit - 8 - length
            ):
                message = _message_body(source, header, prefix, metadata, limits)
                return self._read(validation, rows, message)
            body = source.read(body_length)
            if len(body) != body_length:
                raise TransportError("peer closed the channel in the middle of an IPC message body")
        except MessageTooLargeError as exc:
            self.last_metadata = exc.metadata
            raise
        except (OSError, ValueError) as exc:  # from the source's reads (a TransportError as it is)
            _read_failed(exc)
        self.last_metadata = None
        data = prefix + metadata + body
        try:  # the decode boundary, as in ``_batch``
            batch = pa.ipc.read_record_batch(pa.ipc.read_message(data), self.schema)
        except Exception as exc:
            raise IPCError(
                f"malformed Arrow IPC record batch: {type(exc).__name__}: {exc}"
            ) from exc
        if (
            validation is not IpcValidation.FULL
            or self._nested
            or batch.num_rows > self._free_rows + self._rows_per_byte * body_length
        ):
            return self._checked(batch, None, _Message(header, metadata, data), validation)
        try:
            batch.validate(full=True)
        except Exception as exc:
            raise IPCError(f"received batch failed FULL validation: {exc}") from exc
        return batch, None

    def _read(
        self, validation: IpcValidation, rows: bool, first: _Message | object | None
    ) -> tuple[pa.RecordBatch | FlatRow, Metadata | None] | None:
        """``read``'s general path; ``first``: a message already read (``None``: an EOS marker)."""
        while True:
            if first is _UNREAD:
                if self._done:
                    return None
                try:
                    message = read_message(self._source, self._limits)
                except MessageTooLargeError as exc:
                    self.last_metadata = exc.metadata
                    raise
            else:
                message, first = cast("_Message | None", first), _UNREAD
            if message is None:
                self._done = True
                return None
            header = message.header
            if header.header_type == _RECORD_BATCH:
                metadata = self.last_metadata = header.custom_metadata
                if rows and header.body_length:
                    row = self._row(message)
                    if row is not None:
                        return row, metadata
                return self._batch(message, validation)
            if header.header_type == _DICTIONARY_BATCH and self._replay is not None:
                self._keep(message)
                continue
            raise IPCError(f"unexpected IPC message type {header.header_type} inside a stream")

    def _batch(
        self, message: _Message, validation: IpcValidation
    ) -> tuple[pa.RecordBatch, Metadata | None]:
        """Decode a record batch message, bound its rows and validate it."""
        header = message.header
        body_length = header.body_length
        metadata = header.custom_metadata
        try:  # the decode boundary, inline: this is the hot path of every call
            if body_length and self._replay is None:
                batch = pa.ipc.read_record_batch(pa.ipc.read_message(message.data), self.schema)
            else:
                batch, metadata = self._decode(message)
        except VgiRpcError:
            raise
        except Exception as exc:
            raise IPCError(
                f"malformed Arrow IPC record batch: {type(exc).__name__}: {exc}"
            ) from exc
        return self._checked(batch, metadata, message, validation)

    def _checked(
        self,
        batch: pa.RecordBatch,
        metadata: Metadata | None,
        message: _Message,
        validation: IpcValidation,
    ) -> tuple[pa.RecordBatch, Metadata | None]:
        """A decoded batch, its rows bounded and validated at ``validation``."""
        if batch.num_rows > self._free_rows + self._rows_per_byte * message.header.body_length:
            self._check_rows(batch, message, nested=False)  # raises
        if validation is not IpcValidation.NONE:
            try:
                batch.validate(full=validation is IpcValidation.FULL)
            except Exception as exc:
                raise IPCError(
                    f"received batch failed {validation.name} validation: {exc}"
                ) from exc
            # Children are only safe to walk once valid; flat schemas have none.
            if self._nested:
                self._check_rows(batch, message, nested=True)
        return batch, metadata

    def _row(self, message: _Message) -> FlatRow | None:
        """The message as a row read without pyarrow, when it is a canonical small one."""
        if not self._layout_known:
            self._layout, self._layout_known = flat_layout(self.schema), True
        layout = self._layout
        if layout is None:
            return None
        data = message.data
        limits = self._limits
        body_length = message.header.body_length
        if (
            body_length > MAX_ROW_BYTES
            or limits.min_free_rows + (limits.max_rows_per_byte * body_length) < 1
        ):
            return None
        if type(data) is not bytes:  # a view of an in-memory source: small, so copied
            data = bytes(memoryview(data))
        values = layout.decode(message.metadata, data, message.header.custom_metadata)
        return FlatRow(values, layout, data) if values is not None else None

    def _next(self) -> _Message | None:
        if self._done:
            return None
        try:
            message = read_message(self._source, self._limits)
        except MessageTooLargeError as exc:
            self.last_metadata = exc.metadata
            raise
        if message is None:
            self._done = True
        return message

    def _keep(self, message: _Message) -> None:
        assert self._replay is not None
        self._replay_bytes += message.buffer.size
        if self._replay_bytes > self._limits.max_message_bytes:
            raise IPCError(
                f"dictionary batches of this stream exceed {self._limits.max_message_bytes} "
                "bytes (ResourceLimits.max_message_bytes)"
            )
        self._replay.append(message.buffer)

    def _check_rows(self, batch: pa.RecordBatch, message: _Message, *, nested: bool) -> None:
        allowed = self._limits.max_rows(message.header.body_length)
        claimed = batch.num_rows
        if nested and claimed <= allowed:
            with untrusted("Arrow IPC record batch"):
                claimed = max(claimed, claimed_elements(batch, allowed))
        if claimed > allowed:
            raise IPCError(
                f"a batch of {message.header.body_length} body bytes claims {claimed} values "
                f"(at most {allowed}: ResourceLimits.max_rows_per_byte)"
            )

    def _decode(self, message: _Message) -> tuple[pa.RecordBatch, Metadata | None]:
        if self._replay is None:
            header = message.header
            if not header.body_length:
                return _bodyless_batch(self.schema, message), header.custom_metadata
            batch = pa.ipc.read_record_batch(pa.ipc.read_message(message.data), self.schema)
            return batch, header.custom_metadata
        parts = [*self._replay, message.buffer, pa.py_buffer(EOS_MARKER)]
        stream = pa.ipc.open_stream(b"".join(memoryview(part) for part in parts))
        batch, metadata = stream.read_next_batch_with_custom_metadata()
        received: pa.KeyValueMetadata | None = metadata
        return batch, (dict(received) if received is not None else None)

    def drain(self) -> int:
        """Read and discard the rest of the stream without decoding it; the batches skipped."""
        skipped = 0
        while (message := self._next()) is not None:
            skipped += message.header.header_type == _RECORD_BATCH
        return skipped


def open_stream_reader(
    source: io.BufferedReader,
    limits: ResourceLimits = CLIENT_LIMITS,
    schemas: SchemaCache = _CLIENT_SCHEMAS,
) -> IpcStreamReader | None:
    """Start reading the next IPC stream; ``None`` on a clean end of file before it."""
    try:
        if not source.peek(1):
            return None
    except (OSError, ValueError) as exc:
        raise TransportError(f"reading from the peer failed: {exc}") from exc
    first = read_message(source, limits)
    if first is None:
        raise IPCError(
            "an IPC stream must start with a schema message, got an end-of-stream marker"
        )
    return IpcStreamReader(source, first, limits, schemas)


def claimed_elements(batch: pa.RecordBatch, stop: int) -> int:
    """Rows plus the lengths of every nested child array (stops counting past ``stop``).

    Null-typed and nested arrays need no buffers of their own, so a tiny
    message could otherwise claim billions of values for a decoder to build.
    """
    total = batch.num_rows
    pending: list[pa.Array[Any]] = list(batch.columns)
    while pending and total <= stop:
        array = pending.pop()
        total += len(array)
        pending.extend(_children(array))
    return total


def _children(array: pa.Array[Any]) -> list[pa.Array[Any]]:
    t = array.type
    if pa.types.is_dictionary(t):
        return [array.indices, array.dictionary]  # type: ignore[attr-defined]
    if isinstance(array, pa.ListArray | pa.LargeListArray | pa.FixedSizeListArray):
        return [array.values]
    if isinstance(array, pa.ListViewArray | pa.LargeListViewArray):
        return [array.values]
    if isinstance(array, pa.StructArray):
        return [array.field(i) for i in range(t.num_fields)]
    if isinstance(array, pa.UnionArray):
        return [array.field(i) for i in range(t.num_fields)]
    if pa.types.is_run_end_encoded(t):
        return [array.run_ends, array.values]  # type: ignore[attr-defined]
    return []


class ReadPolicy(_ReadPolicyFields):
    """How one receiver reads untrusted streams: validation level, limits and schema cache."""

    __slots__ = ()

    @classmethod
    def make(cls, validation: IpcValidation, limits: ResourceLimits) -> ReadPolicy:
        """A policy with its own schema cache sized by ``limits``."""
        return cls(validation, limits, SchemaCache(limits.schema_cache_bytes))

    def open(self, source: io.BufferedReader) -> IpcStreamReader | None:
        """``open_stream_reader`` under this policy."""
        return open_stream_reader(source, self.limits, self.schemas)

    def for_body(self, size: int) -> ReadPolicy:
        """This policy for a source known to hold ``size`` bytes (an HTTP body)."""
        return self._replace(limits=self.limits.for_body(size))


__all__ = [
    "EOS_MARKER",
    "IpcStreamReader",
    "IpcValidation",
    "MessageTooLargeError",
    "Metadata",
    "ReadPolicy",
    "SchemaCache",
    "check_types",
    "has_dictionary",
    "memory_source",
    "open_stream_reader",
    "read_message",
    "untrusted",
    "validate_batch",
]
