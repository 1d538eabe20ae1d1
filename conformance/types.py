"""Data types of the public vgi-rpc ConformanceService (names and fields are wire facts)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Annotated

import pyarrow as pa

from vgi_rpc import ArrowSerializableDataclass, ArrowType

I8 = Annotated[int, ArrowType(pa.int8())]
I16 = Annotated[int, ArrowType(pa.int16())]
I32 = Annotated[int, ArrowType(pa.int32())]
U8 = Annotated[int, ArrowType(pa.uint8())]
U16 = Annotated[int, ArrowType(pa.uint16())]
U32 = Annotated[int, ArrowType(pa.uint32())]
U64 = Annotated[int, ArrowType(pa.uint64())]
F32 = Annotated[float, ArrowType(pa.float32())]
Date = Annotated[dt.date, ArrowType(pa.date32())]
Timestamp = Annotated[dt.datetime, ArrowType(pa.timestamp("us"))]
TimestampUtc = Annotated[dt.datetime, ArrowType(pa.timestamp("us", tz="UTC"))]
Time = Annotated[dt.time, ArrowType(pa.time64("us"))]
Duration = Annotated[dt.timedelta, ArrowType(pa.duration("us"))]
Dec = Annotated[Decimal, ArrowType(pa.decimal128(20, 4))]
LargeStr = Annotated[str, ArrowType(pa.large_string())]
LargeBytes = Annotated[bytes, ArrowType(pa.large_binary())]
FixedBytes = Annotated[bytes, ArrowType(pa.binary(8))]
DictStr = Annotated[str, ArrowType(pa.dictionary(pa.int16(), pa.string()))]


class Status(Enum):
    PENDING = "pending"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass(frozen=True)
class Point(ArrowSerializableDataclass):
    x: float
    y: float


@dataclass(frozen=True)
class BoundingBox(ArrowSerializableDataclass):
    top_left: Point
    bottom_right: Point
    label: str


@dataclass(frozen=True)
class AllTypes(ArrowSerializableDataclass):
    str_field: str
    bytes_field: bytes
    int_field: int
    float_field: float
    bool_field: bool
    list_of_int: list[int]
    list_of_str: list[str]
    dict_field: dict[str, int]
    enum_field: Status
    nested_point: Point
    optional_str: str | None
    optional_int: int | None
    optional_nested: Point | None
    list_of_nested: list[Point]
    annotated_int32: I32
    annotated_float32: F32
    nested_list: list[list[int]]
    dict_str_str: dict[str, str]


@dataclass(frozen=True)
class WideTypes(ArrowSerializableDataclass):
    int8_field: I8
    int16_field: I16
    int32_field: I32
    uint8_field: U8
    uint16_field: U16
    uint32_field: U32
    uint64_field: U64
    float32_field: F32
    date_field: Date
    timestamp_field: Timestamp
    timestamp_utc_field: TimestampUtc
    time_field: Time
    duration_field: Duration
    decimal_field: Dec
    large_string_field: LargeStr
    large_binary_field: LargeBytes
    fixed_binary_field: FixedBytes


@dataclass(frozen=True)
class ContainerWideTypes(ArrowSerializableDataclass):
    list_decimal: Annotated[list[Decimal], ArrowType(pa.list_(pa.decimal128(20, 4)))]
    list_date: Annotated[list[dt.date], ArrowType(pa.list_(pa.date32()))]
    list_timestamp: Annotated[list[dt.datetime], ArrowType(pa.list_(pa.timestamp("us")))]
    optional_date: Annotated[dt.date | None, ArrowType(pa.date32())]
    optional_decimal: Annotated[Decimal | None, ArrowType(pa.decimal128(20, 4))]
    optional_timestamp: Annotated[dt.datetime | None, ArrowType(pa.timestamp("us"))]
    dict_str_decimal: Annotated[
        dict[str, Decimal], ArrowType(pa.map_(pa.string(), pa.decimal128(20, 4)))
    ]
    frozenset_int: frozenset[int]
    list_optional_int: list[int | None]


@dataclass(frozen=True)
class DeepNested(ArrowSerializableDataclass):
    list_of_lists_decimal: Annotated[
        list[list[Decimal]], ArrowType(pa.list_(pa.list_(pa.decimal128(20, 4))))
    ]
    optional_list_date: Annotated[list[dt.date] | None, ArrowType(pa.list_(pa.date32()))]
    dict_encoded_string: DictStr
    list_of_dict_encoded: Annotated[
        list[str], ArrowType(pa.list_(pa.dictionary(pa.int16(), pa.string())))
    ]


@dataclass(frozen=True)
class EmbeddedArrow(ArrowSerializableDataclass):
    batch: pa.RecordBatch
    schema: pa.Schema


@dataclass(frozen=True)
class ConformanceHeader(ArrowSerializableDataclass):
    total_expected: int
    description: str


@dataclass(frozen=True)
class RichHeader(ArrowSerializableDataclass):
    str_field: str
    bytes_field: bytes
    int_field: int
    float_field: float
    bool_field: bool
    list_of_int: list[int]
    list_of_str: list[str]
    dict_field: dict[str, int]
    enum_field: Status
    nested_point: Point
    optional_str: str | None
    optional_int: int | None
    optional_nested: Point | None
    list_of_nested: list[Point]
    nested_list: list[list[int]]
    annotated_int32: I32
    annotated_float32: F32
    dict_str_str: dict[str, str]


def rich_header(seed: int) -> RichHeader:
    """The header every implementation derives from ``seed`` (values fixed by the suite)."""
    cycle = (Status.PENDING, Status.ACTIVE, Status.CLOSED)
    even = seed % 2 == 0
    return RichHeader(
        str_field=f"seed-{seed}",
        bytes_field=bytes((seed + i) % 256 for i in range(3)),
        int_field=seed * 7,
        float_field=seed * 1.5,
        bool_field=even,
        list_of_int=[seed, seed + 1, seed + 2],
        list_of_str=[f"item-{seed}", f"item-{seed + 1}"],
        dict_field={"a": seed, "b": seed + 1},
        enum_field=cycle[seed % 3],
        nested_point=Point(x=float(seed), y=float(seed * 2)),
        optional_str=f"opt-{seed}" if even else None,
        optional_int=None if even else seed * 3,
        optional_nested=Point(x=float(seed), y=0.0) if seed % 3 == 0 else None,
        list_of_nested=[Point(x=float(seed), y=float(seed + 1))],
        nested_list=[[seed, seed + 1], [seed + 2]],
        annotated_int32=seed % 1000,
        annotated_float32=float(seed) / 3.0,
        dict_str_str={"key": f"val-{seed}"},
    )


@dataclass(frozen=True)
class NestedContainers(ArrowSerializableDataclass):
    """Enums and dataclasses inside containers and ``Annotated`` wrappers (2.0.0)."""

    statuses: list[Status]
    points: list[Point]
    status_by_name: dict[str, Status]
    frozen_statuses: frozenset[Status]
    tagged_status: Annotated[Status, "conformance-tag"] | None
    tagged_point: Annotated[Point, "conformance-tag"] | None
    tagged_batch: Annotated[pa.RecordBatch, ArrowType(pa.binary())] | None
