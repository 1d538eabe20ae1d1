"""Cancellation, rich headers, dynamic schemas and protocol-version dispatch."""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa

from conformance.protocol import ConformanceService
from conformance.scenarios._core import (
    CheckError,
    Ctx,
    as_session,
    check,
    check_alive,
    check_columns,
    check_counter_batches,
    check_equal,
    check_float,
    check_schema,
    collect,
    header_as,
    scenario,
    to_float32,
    values_batch,
)
from conformance.scenarios.streams import exchange_values
from conformance.types import RichHeader, rich_header
from vgi_rpc import StreamSession, VgiRpcError
from vgi_rpc.rpc import connection_of

# ---------------------------------------------------------------- cancel


def probe(ctx: Ctx) -> tuple[int, int, int]:
    """The worker's (produce_calls, exchange_calls, on_cancel_calls) counters."""
    counters = ctx.proxy.cancel_probe_counters()
    check(len(counters) == 3, f"cancel_probe_counters: expected 3 counters, got {counters!r}")
    return counters[0], counters[1], counters[2]


def check_probe(ctx: Ctx, expected: tuple[int, int, int], when: str) -> None:
    """The probe counters must equal ``expected``."""
    got = probe(ctx)
    if got != expected:
        names = ("produce", "exchange", "on_cancel")
        detail = ", ".join(
            f"{n}={g} (expected {e})" for n, g, e in zip(names, got, expected, strict=True)
        )
        raise CheckError(f"cancel probe {when}: {detail}")


def _open_exchange(ctx: Ctx, turns: int) -> StreamSession:
    ctx.proxy.reset_cancel_probe()
    check_probe(ctx, (0, 0, 0), "after reset")
    session = as_session(ctx.proxy.cancellable_exchange())
    for turn in range(1, turns + 1):
        check_equal(
            exchange_values(session, [float(turn)], f"turn {turn}"), [float(turn)], f"turn {turn}"
        )
    return session


@scenario("cancel", "producer_mid_stream")
def _producer_mid_stream(ctx: Ctx) -> None:
    ctx.proxy.reset_cancel_probe()
    session = as_session(ctx.proxy.cancellable_producer())
    batches = [session.tick().batch for _ in range(3)]
    check_counter_batches(batches, 3)
    session.cancel()
    check(session.closed, "the session is not closed after cancel()")
    check_probe(ctx, (3, 0, 1), "after cancel")
    check_probe(ctx, (3, 0, 1), "a second look (nothing ran late)")


@scenario("cancel", "exchange_after_n")
def _exchange_after_n(ctx: Ctx) -> None:
    session = _open_exchange(ctx, 3)
    session.cancel()
    check_probe(ctx, (0, 3, 1), "after cancel")


@scenario("cancel", "before_any_exchange")
def _before_any_exchange(ctx: Ctx) -> None:
    session = _open_exchange(ctx, 0)
    session.cancel()
    check_probe(ctx, (0, 0, 1), "after cancel")
    check_alive(ctx)


@scenario("cancel", "idempotent")
def _idempotent(ctx: Ctx) -> None:
    session = _open_exchange(ctx, 1)
    for _ in range(3):
        session.cancel()
    check_probe(ctx, (0, 1, 1), "after three cancels")
    session.cancel()
    check_probe(ctx, (0, 1, 1), "after a fourth cancel")


@scenario("cancel", "exchange_after_cancel_raises")
def _exchange_after_cancel(ctx: Ctx) -> None:
    session = _open_exchange(ctx, 2)
    session.cancel()
    try:
        session.exchange(values_batch([9.0]))
    except (VgiRpcError, RuntimeError, ValueError, OSError):
        pass
    else:
        raise CheckError("exchange() on a cancelled session returned a batch instead of raising")
    check_probe(ctx, (0, 2, 1), "after the rejected exchange")
    check_alive(ctx)


@scenario("cancel", "transport_reusable")
def _transport_reusable(ctx: Ctx) -> None:
    ctx.proxy.reset_cancel_probe()
    producer = as_session(ctx.proxy.cancellable_producer())
    producer.tick()
    producer.cancel()
    check_alive(ctx)
    check_counter_batches(collect(as_session(ctx.proxy.produce_n(count=2))), 2)
    exchange = _open_exchange(ctx, 2)
    exchange.cancel()
    check_probe(ctx, (0, 2, 1), "after the second cancelled stream")
    with as_session(ctx.proxy.exchange_scale(factor=2.0)) as s:
        check_equal(exchange_values(s, [21.0], "fresh exchange"), [42.0], "fresh exchange")
    check_alive(ctx)


# ---------------------------------------------------------------- rich headers


def check_rich_header(session: StreamSession, seed: int) -> None:
    """The session's header must be ``rich_header(seed)``, float32 field at float32 precision."""
    got = header_as(session, RichHeader)
    want = rich_header(seed)
    for f in dataclasses.fields(RichHeader):
        actual, expected = getattr(got, f.name), getattr(want, f.name)
        what = f"header.{f.name} (seed {seed})"
        if f.name == "annotated_float32":
            check_float(actual, to_float32(expected), what)
        elif isinstance(expected, float):
            check_float(actual, expected, what)
        else:
            check_equal(actual, expected, what)


def _rich_producer(seed: int) -> None:
    def run(ctx: Ctx) -> None:
        session = as_session(ctx.proxy.produce_with_rich_header(seed=seed, count=3))
        check_rich_header(session, seed)
        check_counter_batches(collect(session), 3)

    scenario("rich_header_producer", f"seed_{seed}")(run)


for _seed in (0, 7, 42):
    _rich_producer(_seed)


@scenario("rich_header_exchange", "header_then_exchange")
def _rich_exchange(ctx: Ctx) -> None:
    with as_session(ctx.proxy.exchange_with_rich_header(seed=5, factor=2.0)) as s:
        check_rich_header(s, 5)
        check_equal(exchange_values(s, [1.5, -1.0], "turn 1"), [3.0, -2.0], "turn 1")
        check_equal(exchange_values(s, [10.0], "turn 2"), [20.0], "turn 2")


@scenario("rich_header_exchange", "different_seed")
def _rich_exchange_seeds(ctx: Ctx) -> None:
    headers = []
    for seed, factor in ((3, 0.5), (8, 4.0)):
        with as_session(ctx.proxy.exchange_with_rich_header(seed=seed, factor=factor)) as s:
            check_rich_header(s, seed)
            headers.append(s.header)
            check_equal(exchange_values(s, [2.0], f"seed {seed}"), [2.0 * factor], f"seed {seed}")
    check(headers[0] != headers[1], "different seeds produced equal headers")


# ---------------------------------------------------------------- dynamic_schema_producer


def _dynamic(name: str, strings: bool, floats: bool) -> None:
    def run(ctx: Ctx) -> None:
        seed, count = 11, 3
        fields: list[pa.Field[Any]] = [pa.field("index", pa.int64())]
        if strings:
            fields.append(pa.field("label", pa.string()))
        if floats:
            fields.append(pa.field("score", pa.float64()))
        schema = pa.schema(fields)
        session = as_session(
            ctx.proxy.produce_dynamic_schema(
                seed=seed, count=count, include_strings=strings, include_floats=floats
            )
        )
        check_rich_header(session, seed)
        batches = collect(session)
        check_equal(len(batches), count, "number of batches")
        for i, batch in enumerate(batches):
            check_schema(batch, schema, f"batch {i} schema")
            row: dict[str, list[object]] = {"index": [i]}
            if strings:
                row["label"] = [f"row-{i}"]
            if floats:
                row["score"] = [i * 1.5]
            check_columns(batch, row, f"batch {i}")

    scenario("dynamic_schema_producer", name)(run)


_dynamic("all_columns", True, True)
_dynamic("strings_only", True, False)
_dynamic("floats_only", False, True)
_dynamic("minimal", False, False)


# ---------------------------------------------------------------- protocol_version


@scenario("protocol_version", "matched_dispatch_succeeds")
def _matched_version(ctx: Ctx) -> None:
    conn = connection_of(ctx.proxy)
    declared = getattr(conn.protocol, "protocol_version", ConformanceService.protocol_version)
    check_equal(conn.protocol_version, declared, "protocol_version the client sends")
    check_equal(ctx.proxy.echo_string(value="versioned"), "versioned", "echo_string")
    with as_session(ctx.proxy.exchange_scale(factor=2.0)) as s:
        check_equal(exchange_values(s, [1.0], "exchange"), [2.0], "exchange")
