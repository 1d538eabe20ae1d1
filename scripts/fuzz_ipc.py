"""Arrow IPC framing and a minimal flatbuffer walker, for structure-aware mutations.

Only what the mutators need: split a byte stream into messages, and find the
byte positions of ``bodyLength``, a record batch's ``length``, its field nodes,
its buffer descriptors, and the ``bitWidth`` of integer fields in a schema, so
those can be rewritten in place without re-encoding anything.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field

import pyarrow as pa

CONTINUATION = b"\xff\xff\xff\xff"
EOS = CONTINUATION + b"\x00\x00\x00\x00"

# Message.header_type union values (Schema.fbs / Message.fbs)
HEADER_SCHEMA = 1
HEADER_DICTIONARY_BATCH = 2
HEADER_RECORD_BATCH = 3
TYPE_INT = 2


@dataclass
class Frame:
    """One IPC message inside a byte string (positions are absolute)."""

    start: int  # the continuation marker
    meta_start: int  # the flatbuffer
    meta_len: int
    body_start: int
    body_len: int
    header_type: int = 0
    body_length_pos: int | None = None  # int64 Message.bodyLength
    batch_length_pos: int | None = None  # int64 RecordBatch.length
    node_pos: list[int] = field(default_factory=list)  # FieldNode {length, null_count}
    buffer_pos: list[int] = field(default_factory=list)  # Buffer {offset, length}
    int_width_pos: list[int] = field(default_factory=list)  # int32 Int.bitWidth

    @property
    def end(self) -> int:
        """First byte after this message's body."""
        return self.body_start + self.body_len

    def buffers(self, data: bytes) -> list[tuple[int, int]]:
        """The (offset, length) pairs of this record batch's buffers, relative to the body."""
        return [struct.unpack_from("<qq", data, pos) for pos in self.buffer_pos]


class _Fb:
    """Read-only flatbuffer table access at absolute positions in ``data``."""

    def __init__(self, data: bytes, base: int, limit: int) -> None:
        self.data = data
        self.base = base
        self.limit = limit

    def _check(self, pos: int, size: int) -> None:
        if pos < self.base or pos + size > self.limit:
            raise ValueError("flatbuffer position out of range")

    def u32(self, pos: int) -> int:
        self._check(pos, 4)
        return int(struct.unpack_from("<I", self.data, pos)[0])

    def root(self) -> int:
        return self.base + self.u32(self.base)

    def field_pos(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of the table at ``table``, or None if absent."""
        self._check(table, 4)
        vtable = table - struct.unpack_from("<i", self.data, table)[0]
        self._check(vtable, 4)
        vsize = struct.unpack_from("<H", self.data, vtable)[0]
        slot = 4 + 2 * index
        if slot + 2 > vsize:
            return None
        self._check(vtable + slot, 2)
        off = struct.unpack_from("<H", self.data, vtable + slot)[0]
        return table + off if off else None

    def indirect(self, pos: int) -> int:
        return pos + self.u32(pos)

    def vector(self, table: int, index: int, element: int) -> tuple[int, int]:
        """(first element position, element count) of a vector field, (0, 0) if absent."""
        pos = self.field_pos(table, index)
        if pos is None:
            return 0, 0
        vec = self.indirect(pos)
        count = self.u32(vec)
        self._check(vec + 4, count * element)  # a mutated count must not make us allocate
        return vec + 4, count

    def u8(self, pos: int) -> int:
        self._check(pos, 1)
        return self.data[pos]


def _walk_fields(fb: _Fb, start: int, count: int, out: list[int], depth: int = 0) -> None:
    if depth > 64:
        return
    for i in range(min(count, 100_000)):
        fld = fb.indirect(start + 4 * i)
        type_type_pos = fb.field_pos(fld, 2)
        type_pos = fb.field_pos(fld, 3)
        if type_type_pos is not None and type_pos is not None and fb.u8(type_type_pos) == TYPE_INT:
            width = fb.field_pos(fb.indirect(type_pos), 0)
            if width is not None:
                out.append(width)
        cstart, ccount = fb.vector(fld, 5, 4)
        if ccount:
            _walk_fields(fb, cstart, ccount, out, depth + 1)


def parse_frames(data: bytes) -> list[Frame]:
    """Every message in ``data`` (several IPC streams may follow each other); EOS markers skipped.

    Stops quietly at the first thing that does not parse (mutated input).
    """
    frames: list[Frame] = []
    pos = 0
    n = len(data)
    while pos + 8 <= n:
        if data[pos : pos + 4] != CONTINUATION:
            break
        meta_len = struct.unpack_from("<i", data, pos + 4)[0]
        if meta_len == 0:  # EOS
            pos += 8
            continue
        meta_start = pos + 8
        if meta_len < 0 or meta_start + meta_len > n:
            break
        fb = _Fb(data, meta_start, meta_start + meta_len)
        try:
            msg = fb.root()
            frame = Frame(pos, meta_start, meta_len, meta_start + meta_len, 0)
            ht = fb.field_pos(msg, 1)
            frame.header_type = fb.u8(ht) if ht is not None else 0
            bl = fb.field_pos(msg, 3)
            if bl is not None:
                frame.body_length_pos = bl
                frame.body_len = struct.unpack_from("<q", data, bl)[0]
            hdr = fb.field_pos(msg, 2)
            if hdr is not None:
                table = fb.indirect(hdr)
                if frame.header_type == HEADER_DICTIONARY_BATCH:
                    inner = fb.field_pos(table, 1)
                    table = fb.indirect(inner) if inner is not None else -1
                if (
                    frame.header_type in (HEADER_RECORD_BATCH, HEADER_DICTIONARY_BATCH)
                    and table > 0
                ):
                    frame.batch_length_pos = fb.field_pos(table, 0)
                    start, count = fb.vector(table, 1, 16)
                    frame.node_pos = [start + 16 * i for i in range(count)]
                    start, count = fb.vector(table, 2, 16)
                    frame.buffer_pos = [start + 16 * i for i in range(count)]
                elif frame.header_type == HEADER_SCHEMA:
                    start, count = fb.vector(table, 1, 4)
                    _walk_fields(fb, start, count, frame.int_width_pos)
        except (ValueError, struct.error, IndexError):
            break
        if frame.body_len < 0 or frame.end > n:
            break
        frames.append(frame)
        pos = frame.end
    return frames


Stream = tuple[pa.Schema, list[tuple[pa.RecordBatch, dict[bytes, bytes]]]]


def decode_streams(data: bytes) -> list[Stream]:
    """The IPC streams in ``data`` (valid input only), with each batch's custom metadata."""
    source = pa.BufferReader(data)
    out: list[Stream] = []
    while source.tell() < len(data):
        reader = pa.ipc.open_stream(source)
        batches: list[tuple[pa.RecordBatch, dict[bytes, bytes]]] = []
        while True:
            try:
                batch, metadata = reader.read_next_batch_with_custom_metadata()
            except StopIteration:
                break
            batches.append((batch, dict(metadata or {})))
        out.append((reader.schema, batches))
    return out


def encode_streams(streams: list[Stream]) -> bytes:
    """Inverse of ``decode_streams``."""
    sink = io.BytesIO()
    for schema, batches in streams:
        with pa.ipc.new_stream(sink, schema) as writer:
            for batch, metadata in batches:
                writer.write_batch(batch, custom_metadata=metadata or None)
    return sink.getvalue()


__all__ = ["EOS", "Frame", "Stream", "decode_streams", "encode_streams", "parse_frames"]
