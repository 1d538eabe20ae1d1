"""Mutators for request byte streams: blind byte-level ones and IPC structure-aware ones.

Every mutator takes a seeded ``random.Random`` so an input is a pure function
of (corpus, seed, index). ``mutate`` stacks one to three of them.
"""

from __future__ import annotations

import base64
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
from fuzz_ipc import Frame, Stream, encode_streams, parse_frames

METHOD_KEY = b"vgi_rpc.method"
REQUEST_VERSION_KEY = b"vgi_rpc.request_version"
PROTOCOL_VERSION_KEY = b"vgi_rpc.protocol_version"
SHM_NAME_KEY = b"vgi_rpc.shm_segment_name"
SHM_SIZE_KEY = b"vgi_rpc.shm_segment_size"
SHM_OFFSET_KEY = b"vgi_rpc.shm_offset"
SHM_LENGTH_KEY = b"vgi_rpc.shm_length"
STREAM_STATE_KEY = b"vgi_rpc.stream_state#b64"
CALL_STATE_KEY = b"vgi_rpc.call_state#b64"
CANCEL_KEY = b"vgi_rpc.cancel"
LOG_LEVEL_KEY = b"vgi_rpc.log_level"

# Methods whose legitimate output grows with an integer parameter: never a mutation target
# (a mutated size there is a legitimately large answer, not a finding).
SIZE_PARAM_METHODS = frozenset(
    {"oversized_unary", "produce_large_batches", "produce_oversized_batch", "exchange_oversized"}
)

INTERESTING_8 = [0, 1, 0x7F, 0x80, 0xFF, 0x3F, 0x40]
INTERESTING_32 = [
    0,
    1,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    0x7FFFFFF8,
    0x10000000,
    0xFFFF,
    0x10000,
    0xFFFFFFF8,
    64,
    4096,
]
INTERESTING_64 = [
    0,
    1,
    (1 << 63) - 1,
    (1 << 63) - 8,
    1 << 62,
    1 << 32,
    (1 << 31) - 1,
    1 << 31,
    (1 << 64) - 1,
    (1 << 64) - 8,
    1 << 40,
    1 << 20,
]


@dataclass
class Item:
    """One corpus entry: a request byte stream (one or more IPC streams) and what it is."""

    kind: str  # "session", "unary", "shm-static", "shm-named", "http"
    name: str
    data: bytes
    streams: list[Stream] | None = None  # decoded form, for metadata rewrites
    shm: bytes = b""  # segment contents to install before serving (shm items)
    path: str = ""  # HTTP: the route
    base_reply: int = 0  # reply size of the unmutated input
    frames: list[Frame] = field(default_factory=list)
    nested: bool = False  # some binary value holds an Arrow IPC stream (a dataclass argument)


@dataclass
class Context:
    """What mutators may draw from: the corpus, method names and shared-memory names."""

    corpus: Sequence[Item]
    methods: list[str]
    shm_names: list[str]  # names the target may see: its own, decoys, missing ones
    tokens: list[bytes] = field(default_factory=list)  # every token value seen in the corpus


Mutator = Callable[[random.Random, bytes, Item, Context], bytes]


def _pick_pos(rng: random.Random, data: bytes, width: int = 1) -> int:
    return rng.randrange(0, max(1, len(data) - width + 1))


# ---------------------------------------------------------------- blind byte mutations


def bit_flip(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        pos = rng.randrange(len(out))
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


def interesting_value(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    if len(data) < 8:
        return data
    out = bytearray(data)
    width = rng.choice((1, 4, 4, 8))
    pos = _pick_pos(rng, data, width)
    if rng.random() < 0.5:  # aligned positions hit real fields more often
        pos -= pos % width
    if width == 1:
        out[pos] = rng.choice(INTERESTING_8)
    elif width == 4:
        struct.pack_into("<I", out, pos, rng.choice(INTERESTING_32))
    else:
        struct.pack_into("<Q", out, pos, rng.choice(INTERESTING_64))
    return bytes(out)


def random_bytes(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    if not data:
        return data
    pos = _pick_pos(rng, data)
    n = rng.randint(1, 16)
    return data[:pos] + rng.randbytes(n) + data[pos + n :]


def truncate(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    return data[: rng.randrange(0, len(data) + 1)]


def extend(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    choice = rng.random()
    if choice < 0.4:
        return data + rng.randbytes(rng.randint(1, 256))
    if choice < 0.7 and data:  # repeat a slice
        a = _pick_pos(rng, data)
        b = min(len(data), a + rng.randint(1, 512))
        return data[:b] + data[a:b] * rng.randint(1, 8) + data[b:]
    pos = _pick_pos(rng, data)
    return data[:pos] + rng.randbytes(rng.randint(1, 64)) + data[pos:]


def splice(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    other = rng.choice(ctx.corpus).data
    return data[: rng.randrange(0, len(data) + 1)] + other[rng.randrange(0, len(other) + 1) :]


def _frames(data: bytes, item: Item) -> list[Frame]:
    return item.frames if item.frames and data == item.data else parse_frames(data)


def message_shuffle(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    """Duplicate, drop, swap, or borrow whole messages (framing stays valid)."""
    frames = _frames(data, item)
    if not frames:
        return splice(rng, data, item, ctx)
    parts = [data[f.start : f.end] for f in frames]
    tail = data[frames[-1].end :]
    i = rng.randrange(len(parts))
    op = rng.random()
    if op < 0.35:
        parts.insert(i, parts[i] * rng.choice((1, 1, 2, 16)))
    elif op < 0.55 and len(parts) > 1:
        del parts[i]
    elif op < 0.75 and len(parts) > 1:
        j = rng.randrange(len(parts))
        parts[i], parts[j] = parts[j], parts[i]
    else:
        other = rng.choice(ctx.corpus)
        if other.frames:
            f = rng.choice(other.frames)
            parts.insert(i, other.data[f.start : f.end])
    out = b"".join(parts)
    if rng.random() < 0.3:  # insert end-of-stream markers in odd places
        pos = rng.randrange(len(out) + 1)
        out = out[:pos] + b"\xff\xff\xff\xff\x00\x00\x00\x00" + out[pos:]
    return out + tail


# ---------------------------------------------------------------- in-place structural patches


def _patch_i64(data: bytes, pos: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<Q", out, pos, value & ((1 << 64) - 1))
    return bytes(out)


def body_length(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    """Declare a huge, negative or slightly-off body length."""
    frames = [f for f in _frames(data, item) if f.body_length_pos is not None]
    if not frames:
        return interesting_value(rng, data, item, ctx)
    f = rng.choice(frames)
    value = rng.choice([*INTERESTING_64, f.body_len + 8, f.body_len - 8, f.body_len * 1000])
    assert f.body_length_pos is not None
    return _patch_i64(data, f.body_length_pos, value)


def batch_geometry(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    """Rewrite a record batch's row count, a field node, or a buffer's offset/length."""
    frames = [f for f in _frames(data, item) if f.buffer_pos or f.node_pos]
    if not frames:
        return interesting_value(rng, data, item, ctx)
    f = rng.choice(frames)
    slots: list[int] = []
    if f.batch_length_pos is not None:
        slots.append(f.batch_length_pos)
    for pos in f.node_pos:
        slots += [pos, pos + 8]
    for pos in f.buffer_pos:
        slots += [pos, pos + 8]
    pos = rng.choice(slots)
    old = struct.unpack_from("<q", data, pos)[0]
    value = rng.choice(
        [*INTERESTING_64, old + 1, old - 1, old + 8, old * 2 + 64, f.body_len, f.body_len + 64, -1]
    )
    return _patch_i64(data, pos, value)


def buffer_contents(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    """Write bad values into a buffer: offsets past the data, non-monotonic, dictionary indices."""
    frames = [f for f in _frames(data, item) if f.buffer_pos]
    candidates: list[tuple[Frame, int, int]] = []
    for f in frames:
        for off, length in f.buffers(data):
            if length >= 4 and off >= 0 and f.body_start + off + length <= len(data):
                candidates.append((f, off, length))
    if not candidates:
        return interesting_value(rng, data, item, ctx)
    f, off, length = rng.choice(candidates)
    out = bytearray(data)
    base = f.body_start + off
    width = 8 if (length % 8 == 0 and rng.random() < 0.3) else 4
    count = length // width
    # half the time the last element: for an offsets buffer, the end of the data
    index = count - 1 if rng.random() < 0.5 else rng.randrange(count)
    if width == 4:
        old = struct.unpack_from("<i", out, base + 4 * index)[0]
        value = rng.choice([*INTERESTING_32, old + 1, old + 4096, old + (1 << 20), old - 1])
        struct.pack_into("<I", out, base + 4 * index, value & 0xFFFFFFFF)
    else:
        old = struct.unpack_from("<q", out, base + 8 * index)[0]
        value = rng.choice([*INTERESTING_64, old + 1, old + (1 << 20), old - 1])
        struct.pack_into("<Q", out, base + 8 * index, value & ((1 << 64) - 1))
    return bytes(out)


def int_bit_width(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    """Give an integer field a bit width Arrow does not have (3, 7, 65, 128, 0, -1...)."""
    slots = [p for f in _frames(data, item) for p in f.int_width_pos]
    if not slots:
        return batch_geometry(rng, data, item, ctx)
    out = bytearray(data)
    value = rng.choice((0, 1, 3, 7, 9, 12, 24, 48, 65, 96, 128, 256, -1, -8, 1 << 30))
    struct.pack_into("<i", out, rng.choice(slots), value)
    return bytes(out)


# ---------------------------------------------------------------- re-encoded rewrites


def _random_value(rng: random.Random) -> bytes:
    return rng.choice(
        (
            b"",
            b"\x00",
            b"\xff\xfe",
            b"1",
            b"-1",
            b"99999999999999999999999",
            b"0x10",
            b"1e9",
            b"nan",
            "é\u202e".encode(),
            b"A" * rng.choice((1, 100, 10_000)),
            rng.randbytes(rng.randint(1, 40)),
        )
    )


def _int_text(rng: random.Random, segment_size: int) -> bytes:
    return str(
        rng.choice(
            (
                0,
                -1,
                -65536,
                64,
                65535,
                65536,
                segment_size - 1,
                segment_size,
                segment_size + 1,
                segment_size - 64,
                1 << 31,
                (1 << 63) - 1,
                1 << 63,
                1 << 64,
                10**30,
            )
        )
    ).encode()


def _tamper_token(rng: random.Random, value: bytes, ctx: Context) -> bytes:
    op = rng.random()
    if op < 0.25 and ctx.tokens:
        return rng.choice(ctx.tokens)  # replay a token from another call
    if op < 0.45:
        return value[: rng.randrange(len(value) + 1)]
    if op < 0.6:
        return value + rng.choice((b"=", b"==", b"A", b"!!", b"\x00"))
    try:
        raw = bytearray(base64.b64decode(value + b"==="))
    except ValueError:
        raw = bytearray(value)
    if raw:
        if op < 0.85:
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        else:
            raw = bytearray(rng.randbytes(len(raw)))
    return base64.b64encode(bytes(raw))


def rewrite_metadata(  # noqa: C901  # a flat menu of rewrites
    rng: random.Random, data: bytes, item: Item, ctx: Context
) -> bytes:
    """Re-encode a valid input with different custom metadata on one batch."""
    if not item.streams:
        return bit_flip(rng, data, item, ctx)
    streams = [(schema, [(b, dict(m)) for b, m in batches]) for schema, batches in item.streams]
    candidates = [(s, i) for s, (_, batches) in enumerate(streams) for i in range(len(batches))]
    if not candidates:
        return bit_flip(rng, data, item, ctx)
    s, i = rng.choice(candidates)
    batch, meta = streams[s][1][i]
    segment_size = len(item.shm) or 1 << 20
    op = rng.randrange(12)
    if op == 0:  # another method, or a bad name
        meta[METHOD_KEY] = rng.choice(
            [m.encode() for m in ctx.methods]
            + [b"", b"__describe__", b"__transport_options__", b"__init__", b"../x", b"\xff"]
        )
    elif op == 1:
        meta[REQUEST_VERSION_KEY] = rng.choice((b"0", b"2", b"", b"1\x00", b"\xff", b"11"))
    elif op == 2:
        meta[PROTOCOL_VERSION_KEY] = rng.choice(
            (b"1.0", b"1.0.0.0", b"99.0.0", b"", b"1.0.-1", b"a.b.c", b"1" * 5000 + b".0.0")
        )
    elif op == 3 and meta:  # drop a key
        meta.pop(rng.choice(sorted(meta)))
    elif op == 4:  # point at some other shared-memory object, or at none
        meta[SHM_NAME_KEY] = rng.choice(ctx.shm_names).encode()
        if rng.random() < 0.5:
            meta[SHM_SIZE_KEY] = _int_text(rng, segment_size)
    elif op == 5:  # a pointer batch out of range
        meta[SHM_OFFSET_KEY] = _int_text(rng, segment_size)
        meta[SHM_LENGTH_KEY] = _int_text(rng, segment_size)
        if batch.num_rows and rng.random() < 0.7:
            batch = batch.slice(0, 0)
    elif op == 6 and (SHM_OFFSET_KEY in meta or SHM_LENGTH_KEY in meta):
        key = rng.choice((SHM_OFFSET_KEY, SHM_LENGTH_KEY))
        meta[key] = rng.choice((_int_text(rng, segment_size), _random_value(rng)))
    elif op == 7:  # random keys and values
        for _ in range(rng.randint(1, 5)):
            meta[_random_value(rng) or b"k"] = _random_value(rng)
    elif op == 8:
        token_keys = [key for key in (STREAM_STATE_KEY, CALL_STATE_KEY) if key in meta]
        if token_keys:
            key = rng.choice(token_keys)
            meta[key] = _tamper_token(rng, meta[key], ctx)
        elif ctx.tokens:
            meta[rng.choice((STREAM_STATE_KEY, CALL_STATE_KEY))] = rng.choice(ctx.tokens)
    elif op == 9:
        meta[CANCEL_KEY] = rng.choice((b"true", b"1", b"", b"false"))
    elif op == 10:
        meta[LOG_LEVEL_KEY] = rng.choice((b"EXCEPTION", b"INFO", b"bogus"))
    else:  # a known key with junk
        key = rng.choice(
            (METHOD_KEY, SHM_OFFSET_KEY, SHM_LENGTH_KEY, SHM_SIZE_KEY, STREAM_STATE_KEY)
        )
        meta[key] = _random_value(rng)
    streams[s][1][i] = (batch, meta)
    try:
        return encode_streams(streams)
    except (pa.ArrowException, ValueError, TypeError):
        return bit_flip(rng, data, item, ctx)


def _request_stream(schema: pa.Schema, method: str, rng: random.Random) -> bytes:
    arrays = [pa.nulls(1, type=f.type) for f in schema]
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    meta = {METHOD_KEY: method.encode(), REQUEST_VERSION_KEY: b"1"}
    if rng.random() < 0.5:
        meta[PROTOCOL_VERSION_KEY] = b"1.0.0"
    return encode_streams([(schema, [(batch, meta)])])


# Types a schema rarely holds: each has its own layout rules for a reader to get wrong.
ODD_TYPES: list[pa.DataType] = [
    pa.dictionary(pa.int8(), pa.string()),
    pa.map_(pa.string(), pa.int64()),
    pa.union([pa.field("a", pa.int8())], "dense"),
    pa.union([pa.field("a", pa.int8())], "sparse"),
    pa.decimal128(38, 10),
    pa.decimal256(76, 0),
    pa.float16(),
    pa.null(),
    pa.large_string(),
    pa.binary_view() if hasattr(pa, "binary_view") else pa.binary(),
    pa.string_view() if hasattr(pa, "string_view") else pa.string(),
    pa.list_(pa.int8(), 3),
    pa.run_end_encoded(pa.int32(), pa.string()),
    pa.month_day_nano_interval(),
    pa.duration("ns"),
]


def _nested_type(rng: random.Random, depth: int) -> pa.DataType:
    t: pa.DataType = rng.choice((pa.int64(), pa.string(), pa.binary(), pa.int8()))
    for _ in range(depth):
        kind = rng.randrange(3)
        if kind == 0:
            t = pa.list_(t)
        elif kind == 1:
            t = pa.struct([pa.field("f", t)])
        else:
            t = pa.large_list(t)
    return t


def odd_schema(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    """A request whose schema is very wide, very deep, or of odd types (built with pyarrow)."""
    method = rng.choice(ctx.methods)
    op = rng.random()
    if op < 0.3:  # wide
        n = rng.choice((100, 1000, 5000))
        schema = pa.schema([pa.field(f"c{i}", pa.int8()) for i in range(n)])
    elif op < 0.6:  # deep
        schema = pa.schema([pa.field("value", _nested_type(rng, rng.choice((8, 32, 64, 200))))])
    else:  # plausible names, odd types
        kinds = ODD_TYPES
        names = ["value", "data", "values", "point", "mapping", "a", "b", "count", "factor"]
        schema = pa.schema(
            [pa.field(rng.choice(names) + str(i), rng.choice(kinds)) for i in range(3)]
        )
    try:
        return _request_stream(schema, method, rng)
    except (pa.ArrowException, ValueError, TypeError, NotImplementedError):
        return data


def nested_payload(rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    """Mutate an Arrow IPC stream carried inside a binary value; the outer request stays valid.

    Dataclass parameters and ``EmbeddedArrow`` travel this way.
    """
    if not item.streams:
        return buffer_contents(rng, data, item, ctx)
    streams = [(schema, list(batches)) for schema, batches in item.streams]
    found: list[tuple[int, int, int]] = []
    for s, (_, batches) in enumerate(streams):
        for b, (batch, _) in enumerate(batches):
            for c, column in enumerate(batch.columns):
                if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
                    values = column.to_pylist()
                    if any(isinstance(v, bytes) and v[:4] == b"\xff\xff\xff\xff" for v in values):
                        found.append((s, b, c))
    if not found:
        return buffer_contents(rng, data, item, ctx)
    s, b, c = rng.choice(found)
    batch, meta = streams[s][1][b]
    values = batch.column(c).to_pylist()
    row = rng.choice([i for i, v in enumerate(values) if isinstance(v, bytes)])
    inner = Item("nested", item.name, bytes(values[row] or b""))
    inner.frames = parse_frames(inner.data)
    mutator = rng.choice(STRUCTURAL[:-2] + BLIND[:-1])  # no metadata rewrite, no splice
    try:
        values[row] = mutator(rng, inner.data, inner, ctx)
    except (struct.error, IndexError, ValueError, OverflowError):
        values[row] = bit_flip(rng, inner.data, inner, ctx)
    column = pa.array(values, type=batch.column(c).type)
    batch = batch.set_column(c, batch.schema.field(c), column)
    streams[s][1][b] = (batch, meta)
    try:
        return encode_streams(streams)
    except (pa.ArrowException, ValueError, TypeError):
        return data


BLIND: list[Mutator] = [bit_flip, interesting_value, random_bytes, truncate, extend, splice]
STRUCTURAL: list[Mutator] = [
    message_shuffle,
    body_length,
    batch_geometry,
    buffer_contents,
    buffer_contents,
    int_bit_width,
    rewrite_metadata,
    rewrite_metadata,
]
# Applied on top of STRUCTURAL (it draws its inner mutators from STRUCTURAL[:-2]).
NESTED: list[Mutator] = [nested_payload]


def _apply(mutator: Mutator, rng: random.Random, data: bytes, item: Item, ctx: Context) -> bytes:
    """Run one mutator; one that trips over an earlier mutation's output flips a bit instead."""
    try:
        return mutator(rng, data, item, ctx)
    except (struct.error, IndexError, ValueError, OverflowError):
        return bit_flip(rng, data, item, ctx)


def mutate(
    rng: random.Random, item: Item, ctx: Context, odd_schemas: bool = True
) -> tuple[bytes, bytes, str]:
    """Mutate ``item``: returns (request bytes, shared-memory bytes, what was done)."""
    data = item.data
    shm = item.shm
    names: list[str] = []
    if odd_schemas and rng.random() < 0.01:
        first = odd_schema
        data = first(rng, data, item, ctx)
        names.append(first.__name__)
    if item.shm and rng.random() < 0.25:  # mutate the stored batch instead of (or too) the pointer
        stored = Item("shm", item.name, shm[65536:])
        stored.frames = parse_frames(stored.data)
        mutator = rng.choice(STRUCTURAL[:-2] + BLIND)
        shm = shm[:65536] + _apply(mutator, rng, stored.data, stored, ctx)
        names.append("shm:" + mutator.__name__)
        if rng.random() < 0.5:
            return data, shm, "+".join(names)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        roll = rng.random()
        mutator = (
            nested_payload
            if roll < (0.4 if item.nested else 0.02)
            else rng.choice(STRUCTURAL)
            if roll < 0.6
            else rng.choice(BLIND)
        )
        data = _apply(mutator, rng, data, item, ctx)
        names.append(mutator.__name__)
    return data, shm, "+".join(names)


__all__ = ["SIZE_PARAM_METHODS", "Context", "Item", "mutate"]
