"""Producer and exchange stream scenarios, with and without headers, and their error recovery."""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from conformance.scenarios._core import (
    COUNTER,
    VALUES,
    CheckError,
    Ctx,
    as_session,
    check,
    check_alive,
    check_columns,
    check_counter_batches,
    check_equal,
    check_logs,
    check_schema,
    collect,
    expect_rpc_error,
    header_as,
    scenario,
    values_batch,
)
from conformance.types import ConformanceHeader
from vgi_rpc import AnnotatedBatch, Level, RpcError, StreamSession

_ACCUMULATED_FIELDS: list[pa.Field[Any]] = [
    pa.field("running_sum", pa.float64()),
    pa.field("exchange_count", pa.int64()),
]
ACCUMULATED = pa.schema(_ACCUMULATED_FIELDS)


def exchange_values(
    session: StreamSession, values: Sequence[float | None], what: str
) -> list[float | None]:
    """Send one ``value`` batch and return the answer's ``value`` column (checking the schema)."""
    out = session.exchange(values_batch(values)).batch
    check_schema(out, VALUES, f"{what}: output schema")
    column: list[float | None] = out.column("value").to_pylist()
    return column


# ---------------------------------------------------------------- producer_stream


@scenario("producer_stream", "produce_n")
def _produce_n(ctx: Ctx) -> None:
    check_counter_batches(collect(as_session(ctx.proxy.produce_n(count=5))), 5)


@scenario("producer_stream", "produce_empty")
def _produce_empty(ctx: Ctx) -> None:
    check_counter_batches(collect(as_session(ctx.proxy.produce_empty())), 0)
    check_alive(ctx)


@scenario("producer_stream", "produce_single")
def _produce_single(ctx: Ctx) -> None:
    check_counter_batches(collect(as_session(ctx.proxy.produce_single())), 1)


@scenario("producer_stream", "produce_with_logs")
def _produce_with_logs(ctx: Ctx) -> None:
    batches = []
    for i, item in enumerate(as_session(ctx.proxy.produce_with_logs(count=3))):
        # each batch's log message arrives ahead of it
        check_equal(len(ctx.logs), i + 1, f"log messages received by batch {i}")
        batches.append(item.batch)
    check_counter_batches(batches, 3)
    check_logs(ctx.logs, [(Level.INFO, f"producing batch {i}") for i in range(3)])


@scenario("producer_stream", "error_mid_stream")
def _error_mid_stream(ctx: Ctx) -> None:
    received: list[pa.RecordBatch] = []
    session = as_session(ctx.proxy.produce_error_mid_stream(emit_before_error=3))
    try:
        received.extend(item.batch for item in session)
    except RpcError as exc:
        check_equal(exc.error_type, "RuntimeError", "error_type")
    else:
        raise CheckError(f"stream ended normally after {len(received)} batches; expected an error")
    check_counter_batches(received, 3)
    check_alive(ctx)


@scenario("producer_stream", "large_batches")
def _large_batches(ctx: Ctx) -> None:
    rows, count = 50_000, 4
    batches = collect(
        as_session(ctx.proxy.produce_large_batches(rows_per_batch=rows, batch_count=count))
    )
    check_equal(len(batches), count, "number of batches")
    for i, batch in enumerate(batches):
        check_schema(batch, COUNTER, f"batch {i} schema")
        check_equal(batch.num_rows, rows, f"batch {i} rows")
        first, last = i * rows, (i + 1) * rows - 1
        index = batch.column("index")
        value = batch.column("value")
        check_equal(index[0].as_py(), first, f"batch {i} first index")
        check_equal(index[rows - 1].as_py(), last, f"batch {i} last index")
        check_equal(value[rows - 1].as_py(), last * 10, f"batch {i} last value")


# ---------------------------------------------------------------- producer_header


@scenario("producer_header", "header_values")
def _header_values(ctx: Ctx) -> None:
    session = as_session(ctx.proxy.produce_with_header(count=4))
    header = header_as(session, ConformanceHeader)
    check_equal(
        header, ConformanceHeader(total_expected=4, description="producing 4 batches"), "header"
    )
    check_counter_batches(collect(session), 4)


@scenario("producer_header", "header_with_logs")
def _header_with_logs(ctx: Ctx) -> None:
    session = as_session(ctx.proxy.produce_with_header_and_logs(count=2))
    # the init log travels with the header, so it is here before any batch
    check_logs(ctx.logs, [(Level.INFO, "stream init log")])
    expected = ConformanceHeader(total_expected=2, description="producing 2 with logs")
    check_equal(header_as(session, ConformanceHeader), expected, "header")
    check_counter_batches(collect(session), 2)


# ---------------------------------------------------------------- exchange_stream


@scenario("exchange_stream", "scale")
def _scale(ctx: Ctx) -> None:
    with as_session(ctx.proxy.exchange_scale(factor=2.5)) as s:
        check_equal(exchange_values(s, [1.0, 2.0, -3.0], "turn 1"), [2.5, 5.0, -7.5], "turn 1")
        check_equal(exchange_values(s, [0.5], "turn 2"), [1.25], "turn 2")
        check_equal(exchange_values(s, [None, 4.0], "turn 3"), [None, 10.0], "turn 3")


@scenario("exchange_stream", "echo")
def _echo(ctx: Ctx) -> None:
    inputs: list[list[float | None]] = [[1.0, 2.0], [], [-0.0, None, 1e300], [42.0] * 1000]
    with as_session(ctx.proxy.exchange_scale(factor=1.0)) as s:
        for i, values in enumerate(inputs):
            sent = values_batch(values)
            got = s.exchange(sent).batch
            check_schema(got, VALUES, f"turn {i} schema")
            check(got.equals(sent.batch), f"turn {i}: sent {values!r}, got {got.to_pydict()!r}")


@scenario("exchange_stream", "accumulate")
def _accumulate(ctx: Ctx) -> None:
    turns: list[tuple[list[float | None], float]] = [
        ([1.0, 2.0, 3.0], 6.0),
        ([10.0], 16.0),
        ([0.5, 0.5], 17.0),
    ]
    with as_session(ctx.proxy.exchange_accumulate()) as s:
        for i, (values, total) in enumerate(turns, start=1):
            out = s.exchange(values_batch(values)).batch
            check_schema(out, ACCUMULATED, f"turn {i} schema")
            check_columns(out, {"running_sum": [total], "exchange_count": [i]}, f"turn {i}")


@scenario("exchange_stream", "with_logs")
def _with_logs(ctx: Ctx) -> None:
    per_turn = [(Level.INFO, "exchange processing"), (Level.DEBUG, "exchange debug")]
    with as_session(ctx.proxy.exchange_with_logs()) as s:
        for turn in range(1, 3):
            check_equal(
                exchange_values(s, [float(turn)], f"turn {turn}"), [float(turn)], f"turn {turn}"
            )
            check_logs(ctx.logs, per_turn * turn)


@scenario("exchange_stream", "error_first")
def _error_first(ctx: Ctx) -> None:
    with as_session(ctx.proxy.exchange_error_on_nth(fail_on=1)) as s:
        expect_rpc_error(lambda: s.exchange(values_batch([1.0])), "RuntimeError")
    check_alive(ctx)


@scenario("exchange_stream", "error_nth")
def _error_nth(ctx: Ctx) -> None:
    with as_session(ctx.proxy.exchange_error_on_nth(fail_on=3)) as s:
        for turn in (1, 2):
            check_equal(
                exchange_values(s, [float(turn)], f"turn {turn}"), [float(turn)], f"turn {turn}"
            )
        expect_rpc_error(lambda: s.exchange(values_batch([3.0])), "RuntimeError")
    check_alive(ctx)


@scenario("exchange_stream", "empty_session")
def _empty_session(ctx: Ctx) -> None:
    with as_session(ctx.proxy.exchange_scale(factor=2.0)):
        pass
    check_alive(ctx)
    with as_session(ctx.proxy.exchange_scale(factor=2.0)) as s:
        check_equal(exchange_values(s, [1.0], "after empty session"), [2.0], "after empty session")


def _cast_case(source: pa.DataType, values: list[object], expected: list[float]) -> None:
    def run(ctx: Ctx) -> None:
        schema = pa.schema([pa.field("value", source)])
        with as_session(ctx.proxy.exchange_cast_compatible()) as s:
            for turn in (1, 2):
                got = s.exchange(AnnotatedBatch.from_pydict({"value": values}, schema=schema)).batch
                check_schema(got, VALUES, f"turn {turn}: output schema")
                check_columns(got, {"value": list(expected)}, f"turn {turn}")

    name = "cast_exact_schema" if source == pa.float64() else f"cast_{source}_to_float64"
    scenario("exchange_stream", name)(run)


_cast_case(pa.int32(), [1, -2, 2**31 - 1], [1.0, -2.0, 2147483647.0])
_cast_case(pa.int64(), [0, -5, 2**40], [0.0, -5.0, float(2**40)])
_cast_case(pa.float32(), [1.5, -0.25], [1.5, -0.25])
_cast_case(pa.float64(), [0.1, -7.75], [0.1, -7.75])


def _typed_input_case(name: str, column: pa.Array[Any], expected: list[float | None]) -> None:
    """Inputs built from an explicit Arrow type (never inferred) reach the declared float64."""

    def run(ctx: Ctx) -> None:
        batch = pa.RecordBatch.from_arrays([column], names=["value"])
        with as_session(ctx.proxy.exchange_cast_compatible()) as s:
            got = s.exchange(AnnotatedBatch(batch)).batch
            check_schema(got, VALUES, "output schema")
            check_columns(got, {"value": expected}, name)

    scenario("exchange_stream", name)(run)


_typed_input_case("input_all_null", pa.array([None, None, None], pa.float64()), [None, None, None])
_typed_input_case("input_zero_rows", pa.array([], pa.float64()), [])
_typed_input_case(
    "input_dictionary_encoded", pa.array([1.5, 1.5, 2.0]).dictionary_encode(), [1.5, 1.5, 2.0]
)
_typed_input_case(
    "input_decimal", pa.array([decimal.Decimal("1.25"), None], pa.decimal128(10, 2)), [1.25, None]
)
_typed_input_case("input_int32_with_nulls", pa.array([7, None], pa.int32()), [7.0, None])


@scenario("exchange_stream", "cast_incompatible_column_name")
def _cast_incompatible(ctx: Ctx) -> None:
    schema = pa.schema([pa.field("not_value", pa.float64())])
    with as_session(ctx.proxy.exchange_cast_compatible()) as s:
        bad = AnnotatedBatch.from_pydict({"not_value": [1.0]}, schema=schema)
        expect_rpc_error(lambda: s.exchange(bad))
    check_alive(ctx)


@scenario("exchange_stream", "zero_columns")
def _zero_columns(ctx: Ctx) -> None:
    empty = pa.schema([])
    with as_session(ctx.proxy.exchange_zero_columns()) as s:
        for turn in (1, 2, 3):
            got = s.exchange(pa.RecordBatch.from_pylist([], schema=empty)).batch
            check_equal(got.num_columns, 0, f"turn {turn}: output columns")
    check_alive(ctx)


# ---------------------------------------------------------------- exchange_header


@scenario("exchange_header", "header_then_exchange")
def _exchange_header(ctx: Ctx) -> None:
    with as_session(ctx.proxy.exchange_with_header(factor=3.0)) as s:
        expected = ConformanceHeader(total_expected=0, description="scale by 3.0")
        check_equal(header_as(s, ConformanceHeader), expected, "header")
        check_equal(exchange_values(s, [1.0, -2.0], "turn 1"), [3.0, -6.0], "turn 1")
        check_equal(exchange_values(s, [0.5], "turn 2"), [1.5], "turn 2")


# ---------------------------------------------------------------- error_recovery (streams)


@scenario("error_recovery", "stream_error_then_unary")
def _stream_error_then_unary(ctx: Ctx) -> None:
    expect_rpc_error(
        lambda: collect(as_session(ctx.proxy.produce_error_mid_stream(emit_before_error=1)))
    )
    check_alive(ctx)
    # a second, different failure: nothing emitted before the error
    expect_rpc_error(
        lambda: collect(as_session(ctx.proxy.produce_error_mid_stream(emit_before_error=0))),
        "RuntimeError",
    )
    check_alive(ctx)


@scenario("error_recovery", "exchange_error_then_exchange")
def _exchange_error_then_exchange(ctx: Ctx) -> None:
    with as_session(ctx.proxy.exchange_error_on_nth(fail_on=2)) as s:
        check_equal(exchange_values(s, [1.0], "first turn"), [1.0], "first turn")
        expect_rpc_error(lambda: s.exchange(values_batch([2.0])), "RuntimeError")
    with as_session(ctx.proxy.exchange_scale(factor=-1.0)) as s:
        check_equal(exchange_values(s, [4.0], "new session"), [-4.0], "new session")


@scenario("error_recovery", "multiple_sequential_sessions")
def _multiple_sessions(ctx: Ctx) -> None:
    for i in range(5):
        check_counter_batches(collect(as_session(ctx.proxy.produce_n(count=i))), i)
        with as_session(ctx.proxy.exchange_scale(factor=float(i))) as s:
            check_equal(
                exchange_values(s, [1.0, 2.0], f"session {i}"), [float(i), 2.0 * i], f"session {i}"
            )
        check_equal(ctx.proxy.echo_int(value=i), i, f"echo_int between sessions ({i})")
