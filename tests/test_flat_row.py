"""The flat one-row codec: pyarrow's exact bytes out, pyarrow's verdict and values in.

Random schemas and values are written by both the codec and pyarrow and
compared byte for byte; real messages, mutated at random, are read by the
codec and by pyarrow and must agree on accept/reject and on the values.
"""

from __future__ import annotations

import dataclasses
import math
import random
import struct
from typing import Annotated, Any, Protocol

import pyarrow as pa
import pytest

from vgi_rpc import ArrowSerializableDataclass, ArrowType, IPCError, serve_pipe
from vgi_rpc._flat_row import EOS, FlatLayout, FlatRow, flat_layout
from vgi_rpc._flatbuf import FlatbufferError, decode_header
from vgi_rpc._ipc_reader import IpcValidation, memory_source, open_stream_reader
from vgi_rpc.rpc._request import decode_arguments

_TYPES: list[pa.DataType] = [
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint16(),
    pa.uint32(),
    pa.uint64(),
    pa.float32(),
    pa.float64(),
    pa.bool_(),
    pa.utf8(),
    pa.binary(),
]


def _value(rng: random.Random, t: pa.DataType) -> object:
    if rng.random() < 0.2:
        return None
    if pa.types.is_integer(t):
        bits = t.bit_width
        if pa.types.is_signed_integer(t):
            return rng.randint(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        return rng.randint(0, (1 << bits) - 1)
    if t == pa.float32():
        return struct.unpack("<f", struct.pack("<f", rng.uniform(-1e6, 1e6)))[0]
    if t == pa.float64():
        return rng.choice([rng.uniform(-1e300, 1e300), 0.0, -0.0, math.inf, 1.5])
    if t == pa.bool_():
        return rng.random() < 0.5
    if t == pa.utf8():
        return "".join(rng.choice("aé€😀 z\n") for _ in range(rng.randint(0, 20)))
    return rng.randbytes(rng.randint(0, 40))


def _schema(rng: random.Random) -> pa.Schema:
    count = rng.randint(1, 6)
    return pa.schema(
        [pa.field(f"c{i}", rng.choice(_TYPES), nullable=rng.random() < 0.7) for i in range(count)]
    )


def _pyarrow_stream(
    schema: pa.Schema, values: list[object], metadata: dict[bytes, bytes] | None
) -> bytes:
    arrays = [pa.array([v], type=f.type) for v, f in zip(values, schema, strict=True)]
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        if metadata:
            writer.write_batch(batch, custom_metadata=metadata)
        else:
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _batch_message(stream: bytes) -> tuple[bytes, bytes]:
    """(header, whole message) of the first batch of a stream holding one schema and one batch."""
    schema_length = struct.unpack_from("<i", stream, 4)[0]
    message = stream[8 + schema_length : -len(EOS)]
    meta_length = struct.unpack_from("<i", message, 4)[0]
    return message[8 : 8 + meta_length], message


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def test_random_rows_are_written_as_pyarrow_writes_them_and_read_back() -> None:
    rng = random.Random(1234)
    for round_ in range(300):
        schema = _schema(rng)
        layout = flat_layout(schema)
        assert layout is not None
        metadata = {b"vgi_rpc.method": b"m%d" % round_, b"k": b"v"} if round_ % 2 else None
        writer = layout.writer(metadata)
        assert writer is not None
        for _ in range(5):
            values = [_value(rng, f.type) for f in schema]
            expected = _pyarrow_stream(schema, values, metadata)
            assert writer.stream(values) == expected, (schema, values)
            meta, message = _batch_message(expected)
            decoded = layout.decode(meta, message, metadata)
            assert decoded is not None
            assert all(_same(a, b) for a, b in zip(decoded, values, strict=True)), values


def test_layouts_cover_flat_columns_only() -> None:
    assert flat_layout(_with_text(pa.int64())) is not None
    others: list[pa.DataType] = [
        pa.list_(pa.int64()),
        pa.timestamp("us"),
        pa.large_utf8(),
        pa.dictionary(pa.int8(), pa.utf8()),
    ]
    for t in others:
        assert flat_layout(_with_text(t)) is None
    assert flat_layout(pa.schema([])) is None


def test_values_that_do_not_fit_are_left_to_pyarrow() -> None:
    layout = flat_layout(_with_text(pa.int8()))
    assert layout is not None
    writer = layout.writer()
    assert writer is not None
    assert writer.stream([300, "x"]) is None  # out of range: pyarrow's path reports it
    assert writer.stream([1, b"not text"]) is None
    assert writer.stream([1, "\udc80"]) is None  # a lone surrogate has no UTF-8 form
    assert writer.stream([1, "x" * (64 << 10)]) is None  # large: pyarrow's zero-copy writer


def _pyarrow_read(stream: bytes) -> tuple[str, Any]:
    """What the general reader makes of a stream: its first batch's row, or the error type."""
    try:
        reader = open_stream_reader(memory_source(stream))
        assert reader is not None
        item = reader.read(IpcValidation.FULL)
    except Exception as exc:  # the verdict itself is compared
        return "error", type(exc)
    if item is None:
        return "empty", None
    return "row", tuple(column[0] for column in item[0].to_pydict().values())


def _row_read(stream: bytes) -> tuple[str, Any]:
    """The same through ``read_row``: a FlatRow's values, or whatever the general path gave."""
    try:
        reader = open_stream_reader(memory_source(stream))
        assert reader is not None
        item = reader.read(IpcValidation.FULL, True)
    except Exception as exc:
        return "error", type(exc)
    if item is None:
        return "empty", None
    found = item[0]
    if isinstance(found, FlatRow):
        return "row", found.values
    return "row", tuple(column[0] for column in found.to_pydict().values())


def test_mutated_messages_get_pyarrows_verdict_and_values() -> None:
    rng = random.Random(99)
    fast_accepts = 0
    for _ in range(150):
        schema = _schema(rng)
        values = [_value(rng, f.type) for f in schema]
        metadata = {b"vgi_rpc.method": b"x"} if rng.random() < 0.5 else None
        stream = _pyarrow_stream(schema, values, metadata)
        layout = flat_layout(schema)
        assert layout is not None
        layout.writer(metadata)  # a method already known, as after its first call
        schema_length = struct.unpack_from("<i", stream, 4)[0]
        start = 8 + schema_length + 8  # past the batch message's own prefix
        for _ in range(20):
            mutated = bytearray(stream)
            for _ in range(rng.randint(1, 3)):
                mutated[rng.randrange(start, len(stream) - len(EOS))] = rng.choice(
                    [0, 1, 0xFF, 0x7F, 0x80, rng.randrange(256)]
                )
            data = bytes(mutated)
            general, fast = _pyarrow_read(data), _row_read(data)
            assert general[0] == fast[0], (general, fast)
            if general[0] == "row":
                assert all(_same(a, b) for a, b in zip(general[1], fast[1], strict=True))
            meta, message = _batch_message(data)
            try:
                carried = decode_header(meta).custom_metadata
            except FlatbufferError:
                continue  # framing refuses it before any batch decoder runs
            decoded = layout.decode(meta, message, carried)
            if decoded is not None:  # accepted without pyarrow: pyarrow must agree, value for value
                fast_accepts += 1
                assert general[0] == "row"
                assert all(_same(a, b) for a, b in zip(general[1], decoded, strict=True))
    assert fast_accepts > 100  # mutations of values (not structure) still take the fast path


def _with_text(first: pa.DataType) -> pa.Schema:
    text: pa.DataType = pa.utf8()
    return pa.schema([pa.field("a", first), pa.field("s", text)])


def _pyarrow_row(schema: pa.Schema, message: bytes) -> tuple[object, ...]:
    batch = pa.ipc.read_record_batch(pa.ipc.read_message(pa.py_buffer(message)), schema)
    batch.validate(full=True)
    return tuple(column[0] for column in batch.to_pydict().values())


def test_headers_that_are_not_canonical_are_refused_by_the_fast_reader() -> None:
    schema = _with_text(pa.int64())
    layout = flat_layout(schema)
    assert isinstance(layout, FlatLayout)
    meta, message = _batch_message(_pyarrow_stream(schema, [7, "hey"], None))
    assert layout.decode(meta, message) == (7, "hey")
    assert layout.decode(meta, message[:-1]) is None  # shorter than the header says
    assert layout.decode(meta[:-20], message) is None  # a cut header
    bad_utf8 = message.replace(b"hey", b"h\xffy")
    assert layout.decode(meta, bad_utf8) is None
    # A string whose offsets run past its data.
    offsets_at = message.index(struct.pack("<ii", 0, 3), 8 + len(meta))
    past = message[:offsets_at] + struct.pack("<ii", 0, 99) + message[offsets_at + 8 :]
    assert layout.decode(meta, past) is None
    other = flat_layout(_with_text(pa.int32()))
    assert other is not None
    # int64 bytes read as int32: pyarrow takes the first four bytes of the buffer, and so do we.
    assert other.decode(meta, message) == _pyarrow_row(other.schema, message) == (7, "hey")


class Flat(Protocol):
    def mix(
        self,
        i: int,
        f: float,
        s: str,
        b: bytes,
        flag: bool,
        small: Annotated[int, ArrowType(pa.int16())],
        maybe: str | None = None,
    ) -> str: ...

    def half(self, x: float) -> float | None: ...

    def flag(self, on: bool) -> bool: ...


class FlatImpl:
    def mix(
        self, i: int, f: float, s: str, b: bytes, flag: bool, small: int, maybe: str | None = None
    ) -> str:
        return f"{i}|{f}|{s}|{b!r}|{flag}|{small}|{maybe}"

    def half(self, x: float) -> float | None:
        return None if x < 0 else x / 2

    def flag(self, on: bool) -> bool:
        return not on


def test_calls_with_flat_parameters_and_results_over_a_pipe() -> None:
    with serve_pipe(Flat, FlatImpl()) as svc:
        assert svc.mix(1, 2.5, "é", b"\0x", True, -3) == "1|2.5|é|b'\\x00x'|True|-3|None"
        blob: Any = bytearray(b"z")  # the bytes codec takes these too
        answer = svc.mix(i=-(1 << 63), f=1, s="", b=blob, flag=False, small=7, maybe="m")
        assert answer == f"{-(1 << 63)}|1.0||b'z'|False|7|m"
        assert svc.half(4.0) == 2.0
        assert svc.half(-1.0) is None
        assert svc.flag(True) is False
        with pytest.raises(TypeError, match=r"mix\(\): argument 'i': expected int, got bool"):
            svc.mix(True, 1.0, "", b"", True, 1)
        with pytest.raises(TypeError, match=r"argument 's' is not Optional but got None"):
            svc.mix(1, 1.0, None, b"", True, 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="does not fit Arrow type int16"):
            svc.mix(1, 1.0, "", b"", True, 1 << 20)
        assert svc.flag(False) is True  # the connection is still in step


def test_a_row_of_other_types_is_conformed_through_pyarrow() -> None:
    """A peer that sends int32 for an int64 parameter still gets its call (cast as before)."""
    from vgi_rpc._methods import rpc_methods

    info = rpc_methods(Flat)["flag"]
    layout = flat_layout(pa.schema([("on", pa.bool_())]))
    assert layout is not None
    meta, message = _batch_message(_pyarrow_stream(layout.schema, [True], None))
    values = layout.decode(meta, message)
    assert values == (True,)
    assert decode_arguments(info, FlatRow(values, layout, message)) == {"on": True}
    half = rpc_methods(Flat)["half"]
    narrow = flat_layout(pa.schema([("x", pa.float32())]))
    assert narrow is not None
    meta, message = _batch_message(_pyarrow_stream(narrow.schema, [1.5], None))
    row_values = narrow.decode(meta, message)
    assert row_values is not None
    assert decode_arguments(half, FlatRow(row_values, narrow, message)) == {"x": 1.5}
    meta, message = _batch_message(_pyarrow_stream(layout.schema, [None], None))
    nulls = layout.decode(meta, message)
    assert nulls == (None,)
    with pytest.raises(TypeError, match="not Optional but received null"):
        decode_arguments(info, FlatRow(nulls, layout, message))


def test_a_row_whose_lazy_batch_pyarrow_refuses_is_an_ipc_error() -> None:
    layout = flat_layout(pa.schema([("a", pa.int64())]))
    assert layout is not None
    with pytest.raises(IPCError):
        FlatRow((1,), layout, b"\xff\xff\xff\xff\x08\0\0\0garbage!").batch()


@dataclasses.dataclass
class _Info(ArrowSerializableDataclass):
    count: int
    ratio: float
    name: str
    blob: bytes
    on: bool
    note: str | None = None
    small: Annotated[int, ArrowType(pa.uint8())] = 0


def test_flat_dataclasses_serialize_as_pyarrow_does_and_read_back() -> None:
    rng = random.Random(7)
    for _ in range(50):
        value = _Info(
            rng.randint(-(1 << 63), (1 << 63) - 1),
            rng.uniform(-1e9, 1e9),
            "".join(rng.choice("ab€ ") for _ in range(rng.randint(0, 9))),
            rng.randbytes(rng.randint(0, 12)),
            rng.random() < 0.5,
            rng.choice([None, "n"]),
            rng.randint(0, 255),
        )
        data = value.serialize_to_bytes()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, _Info.ARROW_SCHEMA) as writer:
            writer.write_batch(value.to_record_batch())
        assert data == sink.getvalue().to_pybytes()
        assert _Info.deserialize_from_bytes(data) == value
    with pytest.raises(TypeError, match=r"_Info.name is not Optional but is None"):
        _Info(1, 1.0, None, b"", True).serialize_to_bytes()  # type: ignore[arg-type]
    with pytest.raises(pa.ArrowInvalid):  # out of uint8: pyarrow's path reports it, as before
        _Info(1, 1.0, "", b"", True, small=300).serialize_to_bytes()


def test_what_peers_make_the_reader_remember_stays_bounded() -> None:
    """Distinct metadata and string lengths, each sent twice: caches stay small, values right."""
    schema = _with_text(pa.int64())
    layout = flat_layout(schema)
    assert layout is not None
    accepted = 0
    for i in range(300):
        metadata = {b"vgi_rpc.request_id": b"%d" % i}
        meta, message = _batch_message(_pyarrow_stream(schema, [i, "x" * i], metadata))
        for _ in range(2):  # the first sight of new metadata is left to pyarrow
            decoded = layout.decode(meta, message, metadata)
            assert decoded is None or decoded == (i, "x" * i)
            accepted += decoded is not None
        assert len(layout._plans) <= 32
        assert len(layout._writers) <= 8
        assert len(layout._seen) <= 8
    assert accepted >= 250
    big = {b"k": b"v" * 2000}  # a header over 1 KiB is not a small call's: pyarrow reads it
    layout.writer(big)
    meta, message = _batch_message(_pyarrow_stream(schema, [1, "a"], big))
    assert layout.decode(meta, message, big) is None
    assert flat_layout(pa.schema([pa.field(f"c{i}", pa.int8()) for i in range(65)])) is None


def test_rows_of_fixed_width_columns_are_one_struct_written_and_read_as_pyarrow_does() -> None:
    rng = random.Random(99)
    fixed = [t for t in _TYPES if t not in (pa.bool_(), pa.utf8(), pa.binary())]
    packed_reads = 0
    for round_ in range(200):
        schema = pa.schema(
            [
                pa.field(f"c{i}", rng.choice(fixed), nullable=rng.random() < 0.5)
                for i in range(rng.randint(1, 8))
            ]
        )
        layout = flat_layout(schema)
        assert layout is not None
        assert layout.packed is not None
        metadata = {b"vgi_rpc.method": b"p%d" % round_} if round_ % 2 else None
        writer = layout.writer(metadata)
        assert writer is not None
        for _ in range(4):
            values = [_value(rng, f.type) for f in schema]
            if any(v is None for v, f in zip(values, schema, strict=True) if not f.nullable):
                continue  # pyarrow's own error for a null in a non-nullable column
            expected = _pyarrow_stream(schema, values, metadata)
            assert writer.stream(values) == expected, (schema, values)
            meta, message = _batch_message(expected)
            layout.decode(meta, message, metadata)  # the first sight of metadata: pyarrow reads it
            decoded = layout.decode(meta, message, metadata)
            assert decoded is not None
            assert all(_same(a, b) for a, b in zip(decoded, values, strict=True)), values
            plan = layout.plan(meta, metadata)
            assert plan is not None
            packed_reads += plan[0][3] == layout.packed.unpack_from
    assert packed_reads > 100  # rows without nulls took the one-struct path


def test_a_body_that_ends_before_the_last_slots_padding_is_read_value_by_value() -> None:
    # Found by scripts/fuzz.py (seed 9091): a one-row uint8 request whose header
    # declares a 1-byte body. The value is inside it; its 8-byte slot is not.
    schema = pa.schema([pa.field("x", pa.uint8())])
    layout = flat_layout(schema)
    assert layout is not None
    assert layout.packed is not None
    layout.writer(None)
    stream = _pyarrow_stream(schema, [200], None)
    meta, message = _batch_message(stream)
    body_at = 8 + len(meta)
    assert len(message) - body_at == 8
    length_at = meta.index(struct.pack("<q", 8))  # the message's body length
    short_meta = meta[:length_at] + struct.pack("<q", 1) + meta[length_at + 8 :]
    short = message[:8] + short_meta + message[body_at : body_at + 1]
    layout.decode(short_meta, short)  # the first sight of a header: pyarrow's turn
    assert layout.decode(short_meta, short) in (None, (200,))
    schema_end = len(stream) - len(message) - len(EOS)
    short_stream = stream[:schema_end] + short + EOS
    assert _row_read(short_stream) == _pyarrow_read(short_stream)
    assert layout.decode(meta, message) == (200,)  # a padded body still takes the one struct
