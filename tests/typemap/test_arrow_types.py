"""Annotation -> Arrow type mapping (wire spec section 4) and value round trips."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, NewType, Optional

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vgi_rpc import ArrowSerializableDataclass, ArrowType, IPCError, SchemaError
from vgi_rpc._arrow_types import arrow_field, codec_for


class Suit(enum.Enum):
    HEARTS = 1
    SPADES = 2


UserId = NewType("UserId", bytes)


@pytest.mark.parametrize(
    ("annotation", "arrow_type", "nullable"),
    [
        (str, pa.utf8(), False),
        (bytes, pa.binary(), False),
        (int, pa.int64(), False),
        (float, pa.float64(), False),
        (bool, pa.bool_(), False),
        (list[int], pa.list_(pa.int64()), False),
        (dict[str, float], pa.map_(pa.utf8(), pa.float64()), False),
        (frozenset[str], pa.list_(pa.utf8()), False),
        (Suit, pa.dictionary(pa.int16(), pa.utf8()), False),
        (Optional[int], pa.int64(), True),  # noqa: UP045 - the spelling under test
        (str | None, pa.utf8(), True),
        (UserId, pa.binary(), False),
        (Annotated[int, ArrowType(pa.int32())], pa.int32(), False),
        (Annotated[int | None, ArrowType(pa.uint64())], pa.uint64(), True),
        (Annotated[Decimal, ArrowType(pa.decimal128(20, 4))], pa.decimal128(20, 4), False),
        (
            Annotated[dt.datetime, ArrowType(pa.timestamp("us", "UTC"))],
            pa.timestamp("us", "UTC"),
            False,
        ),
        (Annotated[str, ArrowType(pa.large_utf8())], pa.large_utf8(), False),
        (Annotated[bytes, ArrowType(pa.binary(8))], pa.binary(8), False),
        (dt.datetime, pa.timestamp("us"), False),
        (dt.date, pa.date32(), False),
        (dt.time, pa.time64("us"), False),
        (dt.timedelta, pa.duration("us"), False),
        (pa.RecordBatch, pa.binary(), False),
        (pa.Schema, pa.binary(), False),
    ],
)
def test_annotation_maps_to_arrow_type(
    annotation: object, arrow_type: pa.DataType, nullable: bool
) -> None:
    f, _ = arrow_field("x", annotation)
    assert f.type == arrow_type
    assert f.nullable is nullable


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (tuple[int, int], "Arrow has no tuple type"),
        (int | str, "unions other than Optional"),
        (Decimal, "no default Arrow type for Decimal"),
        (object, "no Arrow mapping for"),
    ],
)
def test_unmappable_annotations_raise_schema_error(annotation: object, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        arrow_field("x", annotation)


@dataclass(frozen=True)
class Inner(ArrowSerializableDataclass):
    x: float
    label: str | None = None


@dataclass(frozen=True)
class Outer(ArrowSerializableDataclass):
    name: str
    inner: Inner
    inners: list[Inner]
    suit: Suit
    counts: dict[str, int]
    tags: frozenset[str] = field(default_factory=frozenset)
    small: Annotated[int, ArrowType(pa.int8())] = 0
    maybe: Inner | None = None


def test_dataclass_schema_nests_structs_inside_and_is_cached() -> None:
    schema = Outer.ARROW_SCHEMA
    assert schema.field("inner").type == pa.struct(
        [pa.field("x", pa.float64(), False), pa.field("label", pa.utf8())]
    )
    assert schema.field("inners").type == pa.list_(schema.field("inner").type)
    assert schema.field("maybe").nullable
    assert schema.field("small").type == pa.int8()
    assert Outer.ARROW_SCHEMA is schema


def test_dataclass_is_binary_ipc_at_the_parameter_level() -> None:
    f, codec = arrow_field("o", Outer)
    assert f.type == pa.binary()
    value = Outer("n", Inner(1.0), [Inner(2.0, "b")], Suit.SPADES, {"a": 1}, frozenset({"t"}), 5)
    raw = codec.to_arrow(value, "o")
    assert isinstance(raw, bytes)
    assert raw[:4] == b"\xff\xff\xff\xff"  # a whole IPC stream
    assert codec.from_arrow(raw) == value


def test_dataclass_bytes_round_trip() -> None:
    value = Outer("n", Inner(1.5), [], Suit.HEARTS, {}, maybe=Inner(0.0, "z"))
    data = value.serialize_to_bytes()
    assert Outer.deserialize_from_bytes(data) == value
    batch = pa.ipc.open_stream(data).read_next_batch()
    assert batch.num_rows == 1
    assert batch.column("suit").to_pylist() == ["HEARTS"]  # enums travel by name


def test_dataclass_reader_accepts_other_encodings_and_missing_defaults() -> None:
    # another implementation may use int32 dictionary indices, large strings, other column orders
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(["SPADES"]).dictionary_encode().cast(pa.dictionary(pa.int32(), pa.utf8())),
            pa.array(["n"], pa.large_utf8()),
            pa.array([{"x": 1.0, "label": None}]),
            pa.array([[]], pa.list_(pa.struct([("x", pa.float64()), ("label", pa.utf8())]))),
            pa.array([[("k", 3)]], pa.map_(pa.utf8(), pa.int64())),
        ],
        names=["suit", "name", "inner", "inners", "counts"],
    )
    value = Outer.from_record_batch(batch)
    assert value == Outer("n", Inner(1.0), [], Suit.SPADES, {"k": 3})


def test_enum_reader_falls_back_to_values() -> None:
    codec = codec_for(Suit)
    assert codec.from_arrow("HEARTS") is Suit.HEARTS
    assert codec.from_arrow(2) is Suit.SPADES
    with pytest.raises(TypeError, match="not a member of Suit"):
        codec.from_arrow("CLUBS")


def test_garbage_dataclass_bytes_raise_ipc_error() -> None:
    with pytest.raises(IPCError, match="not a valid Arrow IPC stream"):
        Inner.deserialize_from_bytes(b"garbage")


def test_missing_required_dataclass_field_is_named() -> None:
    batch = pa.RecordBatch.from_pydict({"label": ["only"]})
    with pytest.raises(TypeError, match=r"fields absent from the data: \['x'\]"):
        Inner.from_record_batch(batch)


def test_record_batch_and_schema_values_travel_as_ipc() -> None:
    batch = pa.RecordBatch.from_pydict({"a": [1, 2]})
    rb = codec_for(pa.RecordBatch)
    assert rb.from_arrow(rb.to_arrow(batch, "b")).equals(batch)  # type: ignore[attr-defined]
    sc = codec_for(pa.Schema)
    assert sc.from_arrow(sc.to_arrow(batch.schema, "s")).equals(batch.schema)  # type: ignore[attr-defined]


def _round_trip(annotation: object, value: object) -> object:
    f, codec = arrow_field("v", annotation)
    array = pa.array([codec.to_arrow(value, "v")], type=f.type)
    return codec.from_arrow(array[0].as_py())


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_int64_round_trip(value: int) -> None:
    assert _round_trip(int, value) == value


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_uint64_round_trip(value: int) -> None:
    assert _round_trip(Annotated[int, ArrowType(pa.uint64())], value) == value


@given(st.text())
def test_string_round_trip(value: str) -> None:
    assert _round_trip(str, value) == value


@given(
    st.dictionaries(
        st.text(max_size=5), st.lists(st.floats(allow_nan=False), max_size=3), max_size=5
    )
)
def test_nested_container_round_trip(value: dict[str, list[float]]) -> None:
    assert _round_trip(dict[str, list[float]], value) == value


@given(st.datetimes(timezones=st.just(dt.UTC)))
def test_utc_timestamp_round_trip(value: dt.datetime) -> None:
    assert _round_trip(Annotated[dt.datetime, ArrowType(pa.timestamp("us", "UTC"))], value) == value
