"""Building blocks of the conformance scenarios: registry, context and checks.

A scenario is a plain function taking a ``Ctx``; it passes by returning,
fails by raising (``CheckError`` for a broken expectation, anything else
for an unexpected error) and skips by raising ``SkipError``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import pyarrow as pa

from conformance.protocol import ConformanceService
from vgi_rpc import AnnotatedBatch, Level, Message, RpcError, StreamSession

T = TypeVar("T")
ScenarioFn = Callable[["Ctx"], None]

VALUES = pa.schema([pa.field("value", pa.float64())])
COUNTER = pa.schema([pa.field("index", pa.int64()), pa.field("value", pa.int64())])


class CheckError(Exception):
    """An expectation of a scenario did not hold."""


class SkipError(Exception):
    """The scenario cannot run here (the reason is the message)."""


@dataclass
class Ctx:
    """What a scenario gets: the typed proxy and the log messages of this test."""

    proxy: ConformanceService
    transport: str = "pipe"  # pipe, unix, tcp or http
    logs: list[Message] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # shown with a passing result


@dataclass(frozen=True)
class Scenario:
    """One registered conformance test."""

    category: str
    name: str
    fn: ScenarioFn
    timeout: float | None = None

    @property
    def full_name(self) -> str:
        """``category.name``, the identifier filters match against."""
        return f"{self.category}.{self.name}"


REGISTRY: list[Scenario] = []


def register(category: str, name: str, fn: ScenarioFn, timeout: float | None = None) -> None:
    """Add a scenario; names must be unique."""
    scenario = Scenario(category, name, fn, timeout)
    if any(s.full_name == scenario.full_name for s in REGISTRY):
        raise ValueError(f"duplicate scenario {scenario.full_name}")
    REGISTRY.append(scenario)


def scenario(
    category: str, name: str, *, timeout: float | None = None
) -> Callable[[ScenarioFn], ScenarioFn]:
    """Decorator form of ``register``."""

    def decorate(fn: ScenarioFn) -> ScenarioFn:
        register(category, name, fn, timeout)
        return fn

    return decorate


# ---------------------------------------------------------------- checks


def check(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition``."""
    if not condition:
        raise CheckError(message)


def check_equal(actual: object, expected: object, what: str = "result") -> None:
    """Fail unless ``actual`` equals ``expected`` and has exactly its type."""
    if type(actual) is not type(expected):
        raise CheckError(
            f"{what}: expected {type(expected).__name__} {expected!r}, "
            f"got {type(actual).__name__} {actual!r}"
        )
    if actual != expected:
        raise CheckError(f"{what}: expected {expected!r}, got {actual!r}")


def check_float(actual: object, expected: float, what: str = "result") -> None:
    """Exact float comparison that also tells NaN and the sign of zero apart."""
    if not isinstance(actual, float):
        raise CheckError(f"{what}: expected float {expected!r}, got {type(actual).__name__}")
    if math.isnan(expected):
        check(math.isnan(actual), f"{what}: expected nan, got {actual!r}")
        return
    same_sign = math.copysign(1.0, actual) == math.copysign(1.0, expected)
    check(actual == expected and same_sign, f"{what}: expected {expected!r}, got {actual!r}")


def to_float32(value: float) -> float:
    """``value`` rounded to the nearest float32, as a Python float."""
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def expect_rpc_error(
    call: Callable[[], object],
    error_type: str | None = None,
    message: str | None = None,
    *,
    exact_message: bool = False,
) -> RpcError:
    """Run ``call``; it must raise ``RpcError`` (optionally of ``error_type``, mentioning ``message``)."""
    try:
        result = call()
    except RpcError as exc:
        if error_type is not None:
            check_equal(exc.error_type, error_type, "error_type")
        if message is not None:
            if exact_message:
                check_equal(exc.error_message, message, "error_message")
            else:
                check(
                    message in exc.error_message,
                    f"error_message {exc.error_message!r} does not contain {message!r}",
                )
        return exc
    raise CheckError(f"expected RpcError({error_type or 'any'}), call returned {result!r}")


def check_logs(logs: Sequence[Message], expected: Iterable[tuple[Level, str]]) -> None:
    """The received logs must be exactly ``expected`` (level, text) pairs, in order."""
    got = [(m.level, m.message) for m in logs]
    want = list(expected)
    if got != want:
        raise CheckError(f"logs: expected {_fmt_logs(want)}, got {_fmt_logs(got)}")


def _fmt_logs(items: Sequence[tuple[Level, str]]) -> str:
    return "[" + ", ".join(f"{level.value}:{text!r}" for level, text in items) + "]"


# ---------------------------------------------------------------- streams


def as_session(opened: object) -> StreamSession:
    """A stream method's result, which the client hands back as a ``StreamSession``."""
    if not isinstance(opened, StreamSession):
        raise CheckError(f"stream call returned {type(opened).__name__}, not a StreamSession")
    return opened


def header_as(session: StreamSession, header_type: type[T]) -> T:
    """The session's header, which must be a ``header_type``."""
    header = session.header
    if not isinstance(header, header_type):
        raise CheckError(
            f"header: expected {header_type.__name__}, got {type(header).__name__} {header!r}"
        )
    return header


def values_batch(values: Sequence[float | None]) -> AnnotatedBatch:
    """An exchange input batch with the single float64 column ``value``."""
    return AnnotatedBatch.from_pydict({"value": list(values)}, schema=VALUES)


def collect(session: StreamSession) -> list[pa.RecordBatch]:
    """Every batch of a producer session, in order."""
    return [item.batch for item in session]


def check_schema(batch: pa.RecordBatch, expected: pa.Schema, what: str = "batch schema") -> None:
    """The batch's schema (names and types; metadata ignored) must equal ``expected``."""
    check(
        batch.schema.equals(expected, check_metadata=False),
        f"{what}: expected {_fmt_schema(expected)}, got {_fmt_schema(batch.schema)}",
    )


def _fmt_schema(schema: pa.Schema) -> str:
    return "{" + ", ".join(f"{f.name}: {f.type}" for f in schema) + "}"


def check_columns(
    batch: pa.RecordBatch, expected: Mapping[str, Sequence[object]], what: str
) -> None:
    """The batch's contents, as Python lists, must equal ``expected`` (columns in order)."""
    got = batch.to_pydict()
    want = {name: list(values) for name, values in expected.items()}
    check(list(got) == list(want) and got == want, f"{what}: expected {want!r}, got {got!r}")


def check_counter_batches(batches: Sequence[pa.RecordBatch], count: int, rows: int = 1) -> None:
    """``count`` batches of ``rows`` rows each, ``index`` counting up and ``value = index * 10``."""
    check_equal(len(batches), count, "number of batches")
    for i, batch in enumerate(batches):
        check_schema(batch, COUNTER, f"batch {i} schema")
        indices = list(range(i * rows, (i + 1) * rows))
        check_columns(batch, {"index": indices, "value": [n * 10 for n in indices]}, f"batch {i}")


def check_alive(ctx: Ctx) -> None:
    """The connection still answers a unary call."""
    check_equal(ctx.proxy.echo_string(value="still alive"), "still alive", "echo_string afterwards")


__all__ = [
    "COUNTER",
    "REGISTRY",
    "VALUES",
    "CheckError",
    "Ctx",
    "Scenario",
    "SkipError",
    "as_session",
    "check",
    "check_alive",
    "check_columns",
    "check_counter_batches",
    "check_equal",
    "check_float",
    "check_logs",
    "check_schema",
    "collect",
    "expect_rpc_error",
    "header_as",
    "register",
    "scenario",
    "to_float32",
    "values_batch",
]
