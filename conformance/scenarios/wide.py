"""Wide Arrow types: sized integers, temporal types, decimals, large/fixed binary, nesting."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import pyarrow as pa

from conformance.scenarios._core import (
    CheckError,
    Ctx,
    check,
    check_equal,
    register,
    scenario,
    to_float32,
)
from conformance.types import ContainerWideTypes, DeepNested, EmbeddedArrow, WideTypes

CAT = "wide_types"
T = TypeVar("T")

_UTC = dt.UTC
_NAIVE = dt.datetime(2024, 2, 29, 23, 59, 58, 123456)
_AWARE = dt.datetime(2024, 2, 29, 23, 59, 58, 654321, tzinfo=_UTC)


def echo_each(name: str, call: Callable[[Ctx, object], object], values: Sequence[object]) -> None:
    """Register ``name``: every value must come back with its type and value intact."""

    def run(ctx: Ctx) -> None:
        for value in values:
            check_equal(call(ctx, value), value, f"{name}({value!r})")

    register(CAT, name, run)


def _as(value: object, kind: type[T]) -> T:
    if not isinstance(value, kind):
        raise TypeError(f"scenario data {value!r} is not a {kind.__name__}")
    return value


echo_each("echo_int8", lambda c, v: c.proxy.echo_int8(value=_as(v, int)), [0, 127, -128])
echo_each(
    "echo_int16", lambda c, v: c.proxy.echo_int16(value=_as(v, int)), [0, 2**15 - 1, -(2**15)]
)
echo_each("echo_uint8", lambda c, v: c.proxy.echo_uint8(value=_as(v, int)), [0, 1, 255])
echo_each("echo_uint16", lambda c, v: c.proxy.echo_uint16(value=_as(v, int)), [0, 2**16 - 1])
echo_each("echo_uint32", lambda c, v: c.proxy.echo_uint32(value=_as(v, int)), [0, 2**31, 2**32 - 1])
echo_each("echo_uint64", lambda c, v: c.proxy.echo_uint64(value=_as(v, int)), [0, 2**63, 2**64 - 1])


@scenario(CAT, "echo_date")
def _date(ctx: Ctx) -> None:
    for value in (
        dt.date(1970, 1, 1),
        dt.date(2024, 2, 29),
        dt.date(1, 1, 1),
        dt.date(9999, 12, 31),
    ):
        check_equal(ctx.proxy.echo_date(value=value), value, f"echo_date({value})")


@scenario(CAT, "echo_timestamp")
def _timestamp(ctx: Ctx) -> None:
    got = ctx.proxy.echo_timestamp(value=_NAIVE)
    check_equal(got, _NAIVE, "echo_timestamp")
    check(got.tzinfo is None, f"naive timestamp came back with tzinfo {got.tzinfo!r}")


@scenario(CAT, "echo_timestamp_utc")
def _timestamp_utc(ctx: Ctx) -> None:
    got = ctx.proxy.echo_timestamp_utc(value=_AWARE)
    check(isinstance(got, dt.datetime), f"expected datetime, got {type(got).__name__}")
    check(got.tzinfo is not None, "UTC timestamp came back naive")
    check_equal(got.utcoffset(), dt.timedelta(0), "utcoffset")
    check(got == _AWARE, f"expected {_AWARE!r}, got {got!r}")


@scenario(CAT, "echo_time")
def _time(ctx: Ctx) -> None:
    for value in (dt.time(0, 0), dt.time(13, 45, 30, 999999), dt.time(23, 59, 59)):
        check_equal(ctx.proxy.echo_time(value=value), value, f"echo_time({value})")


@scenario(CAT, "echo_duration")
def _duration(ctx: Ctx) -> None:
    for value in (dt.timedelta(0), dt.timedelta(days=3, microseconds=7), -dt.timedelta(hours=5)):
        check_equal(ctx.proxy.echo_duration(value=value), value, f"echo_duration({value!r})")


@scenario(CAT, "echo_decimal")
def _decimal(ctx: Ctx) -> None:
    for text in ("0.0000", "12345.6789", "-0.0001", "9999999999999999.9999"):
        value = Decimal(text)
        got = ctx.proxy.echo_decimal(value=value)
        check_equal(got, value, f"echo_decimal({text})")
        check_equal(str(got), text, f"echo_decimal({text}) text")


echo_each(
    "echo_large_string",
    lambda c, v: c.proxy.echo_large_string(value=_as(v, str)),
    ["", "large \u00e9\u4e2d", "x" * 100_000],
)
echo_each(
    "echo_large_binary",
    lambda c, v: c.proxy.echo_large_binary(value=_as(v, bytes)),
    [b"", b"\x00\xff" * 50_000],
)
echo_each(
    "echo_fixed_binary",
    lambda c, v: c.proxy.echo_fixed_binary(value=_as(v, bytes)),
    [b"12345678", b"\x00" * 8, bytes(range(248, 256))],
)
echo_each(
    "echo_dict_encoded_string",
    lambda c, v: c.proxy.echo_dict_encoded_string(value=_as(v, str)),
    ["", "category-a", "\u00fcnic\u00f6de"],
)

_WIDE = WideTypes(
    int8_field=-128,
    int16_field=32767,
    int32_field=-(2**31),
    uint8_field=255,
    uint16_field=65535,
    uint32_field=2**32 - 1,
    uint64_field=2**64 - 1,
    float32_field=to_float32(0.1),
    date_field=dt.date(2000, 1, 1),
    timestamp_field=_NAIVE,
    timestamp_utc_field=_AWARE,
    time_field=dt.time(12, 0, 0, 1),
    duration_field=dt.timedelta(seconds=90, microseconds=5),
    decimal_field=Decimal("-1234.5678"),
    large_string_field="large",
    large_binary_field=b"\x00large\xff",
    fixed_binary_field=b"ABCDEFGH",
)


@scenario(CAT, "echo_wide_types")
def _wide(ctx: Ctx) -> None:
    got = ctx.proxy.echo_wide_types(data=_WIDE)
    check_equal(got, _WIDE, "echo_wide_types")
    check(got.timestamp_field.tzinfo is None, "timestamp_field gained a tzinfo")
    check_equal(got.timestamp_utc_field.utcoffset(), dt.timedelta(0), "timestamp_utc_field offset")


_CONTAINERS = ContainerWideTypes(
    list_decimal=[Decimal("1.0000"), Decimal("-2.5000")],
    list_date=[dt.date(2020, 1, 1), dt.date(2021, 12, 31)],
    list_timestamp=[_NAIVE, dt.datetime(1999, 12, 31, 23, 59, 59)],
    optional_date=None,
    optional_decimal=Decimal("3.1416"),
    optional_timestamp=None,
    dict_str_decimal={"a": Decimal("0.0001"), "b": Decimal("100.0000")},
    frozenset_int=frozenset({1, 2, 3}),
    list_optional_int=[1, None, 3],
)


@scenario(CAT, "echo_container_wide_types")
def _containers(ctx: Ctx) -> None:
    check_equal(ctx.proxy.echo_container_wide_types(data=_CONTAINERS), _CONTAINERS)
    filled = ContainerWideTypes(
        list_decimal=[],
        list_date=[],
        list_timestamp=[],
        optional_date=dt.date(2022, 2, 2),
        optional_decimal=None,
        optional_timestamp=_NAIVE,
        dict_str_decimal={},
        frozenset_int=frozenset(),
        list_optional_int=[None],
    )
    check_equal(ctx.proxy.echo_container_wide_types(data=filled), filled, "second value")


@scenario(CAT, "echo_embedded_arrow")
def _embedded(ctx: Ctx) -> None:
    fields: list[pa.Field[Any]] = [pa.field("id", pa.int32()), pa.field("name", pa.string())]
    schema = pa.schema(fields)
    batch = pa.RecordBatch.from_pydict(
        {"id": [1, 2, None], "name": ["a", None, "c"]}, schema=schema
    )
    other_fields: list[pa.Field[Any]] = [
        pa.field("when", pa.timestamp("ms")),
        pa.field("tags", pa.list_(pa.string())),
    ]
    other = pa.schema(other_fields)
    got = ctx.proxy.echo_embedded_arrow(data=EmbeddedArrow(batch=batch, schema=other))
    check(isinstance(got, EmbeddedArrow), f"expected EmbeddedArrow, got {type(got).__name__}")
    got_batch: object = got.batch
    got_schema: object = got.schema
    if not isinstance(got_batch, pa.RecordBatch) or not got_batch.equals(batch):
        raise CheckError(f"embedded batch: expected {batch.to_pydict()!r}, got {got_batch!r}")
    if not isinstance(got_schema, pa.Schema) or not got_schema.equals(other):
        raise CheckError(f"embedded schema: expected {other}, got {got_schema!r}")


_DEEP = DeepNested(
    list_of_lists_decimal=[[Decimal("1.5000"), Decimal("-0.2500")], [], [Decimal("7.0000")]],
    optional_list_date=[dt.date(2001, 9, 9)],
    dict_encoded_string="encoded",
    list_of_dict_encoded=["red", "green", "red", ""],
)


@scenario(CAT, "echo_deep_nested")
def _deep(ctx: Ctx) -> None:
    check_equal(ctx.proxy.echo_deep_nested(data=_DEEP), _DEEP)
    empty = DeepNested(
        list_of_lists_decimal=[],
        optional_list_date=None,
        dict_encoded_string="",
        list_of_dict_encoded=[],
    )
    check_equal(ctx.proxy.echo_deep_nested(data=empty), empty, "with nulls and empties")
