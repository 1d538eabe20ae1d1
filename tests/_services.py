"""Test services: Protocols and implementations (imported by fixtures and the test worker only)."""

from __future__ import annotations

import datetime as dt
import enum
import logging
import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, ClassVar, Protocol

import numpy as np
import pyarrow as pa

from vgi_rpc import (
    AnnotatedBatch,
    ArrowSerializableDataclass,
    ArrowType,
    CallContext,
    ExchangeState,
    Level,
    OutputCollector,
    ProducerState,
    Stream,
    StreamState,
)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclass(frozen=True)
class Item(ArrowSerializableDataclass):
    name: str
    qty: int
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Order(ArrowSerializableDataclass):
    id: int
    items: list[Item]
    color: Color
    note: str | None = None


@dataclass(frozen=True)
class CountHeader(ArrowSerializableDataclass):
    total: int


class Service(Protocol):
    """A service touching every core feature."""

    def noop(self) -> None: ...
    def add(self, a: float, b: float) -> float:
        """Add two numbers."""
        ...

    def greet(self, name: str, punctuation: str = "!") -> str: ...
    def echo_bytes(self, data: bytes) -> bytes: ...
    def echo_big(
        self, data: Annotated[bytes, ArrowType(pa.large_binary())]
    ) -> Annotated[bytes, ArrowType(pa.large_binary())]: ...
    def echo_order(self, order: Order) -> Order: ...
    def echo_color(self, color: Color) -> Color: ...
    def echo_optional(self, value: int | None) -> int | None: ...
    def echo_map(self, mapping: dict[str, list[int]]) -> dict[str, list[int]]: ...
    def echo_set(self, values: frozenset[str]) -> frozenset[str]: ...
    def echo_when(self, when: dt.datetime, day: dt.date) -> str: ...
    def echo_money(
        self, amount: Annotated[Decimal, ArrowType(pa.decimal128(12, 2))]
    ) -> Annotated[Decimal, ArrowType(pa.decimal128(12, 2))]: ...
    def fail(self, message: str) -> str: ...
    def fail_chained(self) -> str: ...
    def logs(self, count: int) -> int: ...
    def whoami(self) -> str: ...
    def secret(self) -> str: ...
    def calls(self) -> int: ...
    def bad_result(self) -> int: ...
    def pid(self) -> int: ...
    def crash(self, code: int) -> int: ...
    def shout(self, text: str) -> str: ...
    def countdown(self, n: int) -> Stream[StreamState]: ...
    def counted(self, n: int) -> Stream[StreamState, CountHeader]: ...
    def running_sum(self) -> Stream[StreamState]: ...
    def echo_rows(self) -> Stream[StreamState]: ...
    def fail_stream(self, after: int) -> Stream[StreamState]: ...
    def fail_init(self) -> Stream[StreamState]: ...
    def chatty(self, batches: int, logs_per_batch: int) -> Stream[StreamState]: ...
    def die_mid_stream(self, after: int) -> Stream[StreamState]: ...


@dataclass
class Countdown(ProducerState):
    n: int
    log_each: int = 0
    fail_after: int | None = None
    die_after: int | None = None
    sent: int = 0
    cancelled: list[bool] = field(default_factory=list)

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        if self.die_after is not None and self.sent >= self.die_after:
            os._exit(7)
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise ValueError(f"failed after {self.sent}")
        if self.sent >= self.n:
            out.finish()
            return
        for i in range(self.log_each):
            out.client_log(Level.DEBUG, f"batch {self.sent} log {i}")
        out.emit_pydict({"value": [self.n - self.sent]})
        self.sent += 1

    def on_cancel(self, ctx: CallContext) -> None:
        ServiceImpl.cancelled += 1


@dataclass
class RunningSum(ExchangeState):
    total: float = 0.0

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        for v in input.batch.column("value").to_pylist():
            self.total += v or 0.0
        out.emit_pydict({"total": [self.total]})


@dataclass
class EchoRows(ExchangeState):
    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        out.emit(input.batch)


VALUE = pa.schema([("value", pa.int64())])
FLOAT_VALUE = pa.schema([("value", pa.float64())])
ROWS = pa.schema(
    [
        ("label", pa.dictionary(pa.int16(), pa.utf8())),
        ("at", pa.timestamp("us", tz="UTC")),
        ("price", pa.decimal128(12, 2)),
        ("nested", pa.struct([("x", pa.int64()), ("tags", pa.list_(pa.utf8()))])),
        ("maybe", pa.int64()),
    ]
)


class ServiceImpl:
    """Implementation of ``Service`` (``ctx`` appears only here, never in the Protocol)."""

    cancelled: ClassVar[int] = 0

    def __init__(self) -> None:
        self._calls = 0

    def noop(self) -> None:
        self._calls += 1

    def add(self, a: float, b: float) -> float:
        self._calls += 1
        return a + b

    def greet(self, name: str, punctuation: str = "!") -> str:
        self._calls += 1
        return f"hello {name}{punctuation}"

    def echo_bytes(self, data: bytes) -> bytes:
        return data

    def echo_big(self, data: bytes) -> bytes:
        return data

    def echo_order(self, order: Order) -> Order:
        return order

    def echo_color(self, color: Color) -> Color:
        return color

    def echo_optional(self, value: int | None) -> int | None:
        return value

    def echo_map(self, mapping: dict[str, list[int]]) -> dict[str, list[int]]:
        return mapping

    def echo_set(self, values: frozenset[str]) -> frozenset[str]:
        assert isinstance(values, frozenset)
        return values

    def echo_when(self, when: dt.datetime, day: dt.date) -> str:
        return f"{when.isoformat()} {day.isoformat()}"

    def echo_money(self, amount: Decimal) -> Decimal:
        return amount

    def fail(self, message: str) -> str:
        raise ValueError(message)

    def fail_chained(self) -> str:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise RuntimeError("outer") from exc

    def logs(self, count: int, ctx: CallContext) -> int:
        for i in range(count):
            ctx.client_log(Level.INFO, f"log {i}", index=i)
        ctx.logger.info("server-side log for %d", count)
        return count

    def whoami(self, ctx: CallContext) -> str:
        return f"{ctx.logger.name}|{ctx.auth.authenticated}|{ctx.method}|{len(ctx.request_id)}"

    def secret(self, ctx: CallContext) -> str:
        ctx.auth.require_authenticated()
        return "secret"

    def calls(self) -> int:
        return self._calls

    def bad_result(self) -> int:
        return "not an int"  # type: ignore[return-value]

    def pid(self) -> int:
        return os.getpid()

    def crash(self, code: int) -> int:
        logging.getLogger("tests").error("about to crash with %d", code)
        os.write(2, f"worker crashing with code {code}\n".encode())
        os._exit(code)

    def shout(self, text: str) -> str:
        print("this print must not corrupt the protocol")
        return text.upper()

    def countdown(self, n: int) -> Stream[Countdown]:
        return Stream(VALUE, Countdown(n))

    def counted(self, n: int, ctx: CallContext) -> Stream[Countdown, CountHeader]:
        ctx.client_log(Level.INFO, "opening")
        return Stream(VALUE, Countdown(n), header=CountHeader(total=n))

    def running_sum(self) -> Stream[RunningSum]:
        return Stream(pa.schema([("total", pa.float64())]), RunningSum(), input_schema=FLOAT_VALUE)

    def echo_rows(self) -> Stream[EchoRows]:
        return Stream(ROWS, EchoRows(), input_schema=ROWS)

    def fail_stream(self, after: int) -> Stream[Countdown]:
        return Stream(VALUE, Countdown(after + 5, fail_after=after))

    def fail_init(self) -> Stream[Countdown]:
        raise LookupError("cannot start")

    def chatty(self, batches: int, logs_per_batch: int) -> Stream[Countdown]:
        return Stream(VALUE, Countdown(batches, log_each=logs_per_batch))

    def die_mid_stream(self, after: int) -> Stream[Countdown]:
        return Stream(VALUE, Countdown(after + 5, die_after=after))


SERVICES: dict[str, tuple[type, type]] = {"service": (Service, ServiceImpl)}


# --- bulk data, for the shared-memory tests -------------------------------------------

BULK = pa.schema([("x", pa.float64())])
SHM_SOURCE = b"vgi_rpc.shm_source"


class Bulk(Protocol):
    """Large batches both ways."""

    def echo_big(
        self, data: Annotated[bytes, ArrowType(pa.large_binary())]
    ) -> Annotated[bytes, ArrowType(pa.large_binary())]: ...
    def echo_batches(self) -> Stream[StreamState]: ...
    def produce(self, count: int, rows: int) -> Stream[StreamState]: ...
    def pid(self) -> int: ...


@dataclass
class EchoBatches(ExchangeState):
    """Sends every input back, saying whether it arrived through shared memory."""

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        via = (input.metadata_dict() or {}).get(SHM_SOURCE, b"")
        out.emit(input.batch, {b"input_shm_source": via})


@dataclass
class ProduceBulk(ProducerState):
    count: int
    rows: int

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        if self.count <= 0:
            out.finish()
            return
        self.count -= 1
        values = pa.array(np.arange(self.rows, dtype=np.float64))
        out.emit(pa.RecordBatch.from_arrays([values], schema=BULK))


class BulkImpl:
    def echo_big(self, data: bytes) -> bytes:
        return data

    def echo_batches(self) -> Stream[EchoBatches]:
        return Stream(BULK, EchoBatches(), input_schema=BULK)

    def produce(self, count: int, rows: int) -> Stream[ProduceBulk]:
        return Stream(BULK, ProduceBulk(count, rows))

    def pid(self) -> int:
        return os.getpid()


SERVICES["bulk"] = (Bulk, BulkImpl)
