"""Unary scenarios: scalars, voids, containers, optionals, dataclasses, defaults, errors, logs."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

from conformance.protocol import ConformanceService
from conformance.scenarios._core import (
    Ctx,
    check,
    check_equal,
    check_float,
    check_logs,
    expect_rpc_error,
    register,
    scenario,
    to_float32,
)
from conformance.types import AllTypes, BoundingBox, Point, Status
from vgi_rpc import Level

Call = Callable[[ConformanceService], object]
T = TypeVar("T")


def echo(category: str, name: str, call: Call, expected: object) -> None:
    """Register a scenario: ``call`` must return ``expected`` (same type and value)."""

    def run(ctx: Ctx) -> None:
        check_equal(call(ctx.proxy), expected, name)

    register(category, name, run)


def echo_value(
    category: str, name: str, method: Callable[[ConformanceService, T], object], value: T
) -> None:
    """Register a scenario: ``method(proxy, value)`` must return ``value`` unchanged."""

    def run(ctx: Ctx) -> None:
        if isinstance(value, float):
            check_float(method(ctx.proxy, value), value, name)
        else:
            check_equal(method(ctx.proxy, value), value, name)

    register(category, name, run)


def _echo_str(p: ConformanceService, v: str) -> object:
    return p.echo_string(value=v)


def _echo_bytes(p: ConformanceService, v: bytes) -> object:
    return p.echo_bytes(data=v)


def _echo_int(p: ConformanceService, v: int) -> object:
    return p.echo_int(value=v)


def _echo_float(p: ConformanceService, v: float) -> object:
    return p.echo_float(value=v)


def _echo_enum(p: ConformanceService, v: Status) -> object:
    return p.echo_enum(status=v)


def echo_float(category: str, name: str, call: Call, expected: float) -> None:
    """Register a scenario: ``call`` must return exactly ``expected`` (sign and NaN aware)."""

    def run(ctx: Ctx) -> None:
        check_float(call(ctx.proxy), expected, name)

    register(category, name, run)


# ---------------------------------------------------------------- scalar_echo

echo("scalar_echo", "echo_string", lambda p: p.echo_string(value="hello, world"), "hello, world")
echo(
    "scalar_echo",
    "echo_bytes",
    lambda p: p.echo_bytes(data=b"\x01\x02binary\xfe"),
    b"\x01\x02binary\xfe",
)
echo("scalar_echo", "echo_int", lambda p: p.echo_int(value=1_234_567_890_123), 1_234_567_890_123)
echo_float(
    "scalar_echo", "echo_float", lambda p: p.echo_float(value=3.141592653589793), 3.141592653589793
)


@scenario("scalar_echo", "echo_bool")
def _echo_bool(ctx: Ctx) -> None:
    check_equal(ctx.proxy.echo_bool(value=True), True, "echo_bool(True)")
    check_equal(ctx.proxy.echo_bool(value=False), False, "echo_bool(False)")


# ---------------------------------------------------------------- void

echo("void", "void_noop", lambda p: p.void_noop(), None)
echo("void", "void_with_param", lambda p: p.void_with_param(value=42), None)

# ---------------------------------------------------------------- complex_types

for _status in Status:
    echo_value("complex_types", f"echo_enum_{_status.name.lower()}", _echo_enum, _status)
echo("complex_types", "echo_list", lambda p: p.echo_list(values=["a", "b", "c"]), ["a", "b", "c"])
echo(
    "complex_types",
    "echo_dict",
    lambda p: p.echo_dict(mapping={"x": 1, "y": -2}),
    {"x": 1, "y": -2},
)
echo(
    "complex_types",
    "echo_nested_list",
    lambda p: p.echo_nested_list(matrix=[[1, 2], [], [3, 4, 5]]),
    [[1, 2], [], [3, 4, 5]],
)

# ---------------------------------------------------------------- optional

echo("optional", "optional_string_none", lambda p: p.echo_optional_string(value=None), None)
echo(
    "optional",
    "optional_string_non_none",
    lambda p: p.echo_optional_string(value="present"),
    "present",
)
echo("optional", "optional_int_none", lambda p: p.echo_optional_int(value=None), None)
echo("optional", "optional_int_non_none", lambda p: p.echo_optional_int(value=0), 0)


@scenario("optional", "empty_string_vs_null")
def _empty_string_vs_null(ctx: Ctx) -> None:
    check_equal(ctx.proxy.echo_optional_string(value=""), "", "echo_optional_string('')")
    check_equal(ctx.proxy.echo_optional_string(value=None), None, "echo_optional_string(None)")


# ---------------------------------------------------------------- dataclass

_POINT = Point(x=1.5, y=-2.25)
_BOX = BoundingBox(top_left=Point(x=0.0, y=10.0), bottom_right=Point(x=5.5, y=0.0), label="box")


def _all_types(with_values: bool) -> AllTypes:
    return AllTypes(
        str_field="text",
        bytes_field=b"\x00bytes\xff",
        int_field=-7,
        float_field=2.5,
        bool_field=True,
        list_of_int=[1, 2, 3],
        list_of_str=["x", "y"],
        dict_field={"one": 1, "two": 2},
        enum_field=Status.ACTIVE,
        nested_point=Point(x=3.0, y=4.0),
        optional_str="maybe" if with_values else None,
        optional_int=99 if with_values else None,
        optional_nested=Point(x=-1.0, y=-1.0) if with_values else None,
        list_of_nested=[Point(x=1.0, y=2.0), Point(x=3.0, y=4.0)],
        annotated_int32=2_000_000_000,
        annotated_float32=0.5,
        nested_list=[[1], [2, 3], []],
        dict_str_str={"k": "v"},
    )


echo("dataclass", "echo_point", lambda p: p.echo_point(point=_POINT), _POINT)
echo("dataclass", "echo_bounding_box", lambda p: p.echo_bounding_box(box=_BOX), _BOX)
echo(
    "dataclass",
    "echo_all_types",
    lambda p: p.echo_all_types(data=_all_types(True)),
    _all_types(True),
)
echo(
    "dataclass",
    "echo_all_types_with_nulls",
    lambda p: p.echo_all_types(data=_all_types(False)),
    _all_types(False),
)
echo("dataclass", "inspect_point", lambda p: p.inspect_point(point=_POINT), "Point(1.5, -2.25)")

# ---------------------------------------------------------------- annotated


@scenario("annotated", "echo_int32")
def _echo_int32(ctx: Ctx) -> None:
    for value in (0, 2**31 - 1, -(2**31)):
        check_equal(ctx.proxy.echo_int32(value=value), value, f"echo_int32({value})")


@scenario("annotated", "echo_float32")
def _echo_float32(ctx: Ctx) -> None:
    check_float(ctx.proxy.echo_float32(value=1.5), 1.5, "echo_float32(1.5)")
    # 3.14 is not a float32: the answer is its float32 rounding
    check_float(ctx.proxy.echo_float32(value=3.14), to_float32(3.14), "echo_float32(3.14)")


# ---------------------------------------------------------------- multi_param

echo_float("multi_param", "add_floats", lambda p: p.add_floats(a=1.5, b=2.25), 3.75)
echo("multi_param", "concatenate_default", lambda p: p.concatenate(prefix="a", suffix="b"), "a-b")
echo(
    "multi_param",
    "concatenate_custom",
    lambda p: p.concatenate(prefix="a", suffix="b", separator="::"),
    "a::b",
)
echo(
    "multi_param",
    "with_defaults_all",
    lambda p: p.with_defaults(required=1),
    "required=1, optional_str=default, optional_int=42",
)
echo(
    "multi_param",
    "with_defaults_override",
    lambda p: p.with_defaults(required=2, optional_str="custom", optional_int=7),
    "required=2, optional_str=custom, optional_int=7",
)

# ---------------------------------------------------------------- errors


@scenario("errors", "value_error")
def _value_error(ctx: Ctx) -> None:
    msg = "bad value supplied"
    exc = expect_rpc_error(
        lambda: ctx.proxy.raise_value_error(message=msg), "ValueError", msg, exact_message=True
    )
    check(bool(exc.request_id), "the error carries no request_id")


@scenario("errors", "runtime_error")
def _runtime_error(ctx: Ctx) -> None:
    msg = "runtime trouble"
    expect_rpc_error(
        lambda: ctx.proxy.raise_runtime_error(message=msg), "RuntimeError", msg, exact_message=True
    )


@scenario("errors", "type_error")
def _type_error(ctx: Ctx) -> None:
    msg = "wrong type here"
    expect_rpc_error(
        lambda: ctx.proxy.raise_type_error(message=msg), "TypeError", msg, exact_message=True
    )


# ---------------------------------------------------------------- error_recovery (unary)


@scenario("error_recovery", "unary_error_then_success")
def _unary_error_then_success(ctx: Ctx) -> None:
    for i in range(3):
        message = f"fail {i}"
        expect_rpc_error(partial(ctx.proxy.raise_value_error, message), "ValueError", message)
        check_equal(ctx.proxy.echo_int(value=i), i, f"echo_int after error {i}")


# ---------------------------------------------------------------- logging


@scenario("logging", "info_log")
def _info_log(ctx: Ctx) -> None:
    check_equal(ctx.proxy.echo_with_info_log(value="hi"), "hi")
    check_logs(ctx.logs, [(Level.INFO, "info: hi")])


@scenario("logging", "multi_level")
def _multi_level(ctx: Ctx) -> None:
    check_equal(ctx.proxy.echo_with_multi_logs(value="v"), "v")
    check_logs(
        ctx.logs, [(Level.DEBUG, "debug: v"), (Level.INFO, "info: v"), (Level.WARN, "warn: v")]
    )


@scenario("logging", "log_extras")
def _log_extras(ctx: Ctx) -> None:
    check_equal(ctx.proxy.echo_with_log_extras(value="xyz"), "xyz")
    check_logs(ctx.logs, [(Level.INFO, "info: xyz")])
    extra = ctx.logs[0].extra or {}
    check_equal(extra.get("source"), "conformance", "extra['source']")
    check_equal(extra.get("detail"), "xyz", "extra['detail']")


@scenario("logging", "all_levels")
def _all_levels(ctx: Ctx) -> None:
    check_equal(ctx.proxy.echo_with_all_log_levels(value="w"), "w")
    levels = (Level.TRACE, Level.DEBUG, Level.INFO, Level.WARN, Level.ERROR)
    check_logs(ctx.logs, [(level, f"{level.value.lower()}: w") for level in levels])


# ---------------------------------------------------------------- boundary_values

_STRINGS = {
    "empty_string": "",
    "unicode_emoji": "smile \U0001f600 family \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "unicode_cjk": "\u4e2d\u6587 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4",
    "unicode_rtl": "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
    "string_null_byte": "before\x00after",
    "string_escapes": 'tab\t newline\n cr\r backslash\\ quote" nul-ish \\0',
}
for _name, _text in _STRINGS.items():
    echo_value("boundary_values", _name, _echo_str, _text)

_BYTES = {"empty_bytes": b"", "null_bytes": b"\x00" * 16, "high_bytes": bytes(range(128, 256))}
for _name, _data in _BYTES.items():
    echo_value("boundary_values", _name, _echo_bytes, _data)

_INTS = {"int_zero": 0, "int_negative": -42, "int_max_int64": 2**63 - 1, "int_min_int64": -(2**63)}
for _name, _int in _INTS.items():
    echo_value("boundary_values", _name, _echo_int, _int)

_FLOATS = {
    "float_zero": 0.0,
    "float_negative_zero": -0.0,
    "float_inf": float("inf"),
    "float_neg_inf": float("-inf"),
    "float_nan": float("nan"),
    "float_small": 5e-324,
}
for _name, _float in _FLOATS.items():
    echo_value("boundary_values", _name, _echo_float, _float)

echo("boundary_values", "empty_list", lambda p: p.echo_list(values=[]), [])
echo("boundary_values", "empty_dict", lambda p: p.echo_dict(mapping={}), {})


@scenario("boundary_values", "empty_nested_list")
def _empty_nested_list(ctx: Ctx) -> None:
    matrices: list[list[list[int]]] = [[], [[]], [[], []]]
    for matrix in matrices:
        check_equal(
            ctx.proxy.echo_nested_list(matrix=matrix), matrix, f"echo_nested_list({matrix})"
        )
