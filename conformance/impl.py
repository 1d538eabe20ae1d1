"""Our implementation of the ConformanceService (behaviour fixed by the public suite)."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from conformance.types import ConformanceHeader, NestedContainers, Point, Status, rich_header
from vgi_rpc import (
    AnnotatedBatch,
    CallContext,
    ExchangeState,
    Level,
    OutputCollector,
    ProducerState,
    Stream,
)

_COUNTER_FIELDS: list[pa.Field[pa.DataType]] = [
    pa.field("index", pa.int64()),
    pa.field("value", pa.int64()),
]
COUNTER = pa.schema(_COUNTER_FIELDS)
VALUES = pa.schema([("value", pa.float64())])
_ACCUMULATED_FIELDS: list[pa.Field[pa.DataType]] = [
    pa.field("running_sum", pa.float64()),
    pa.field("exchange_count", pa.int64()),
]
ACCUMULATED = pa.schema(_ACCUMULATED_FIELDS)
SESSION_VALUE = pa.schema([("value", pa.int64())])
EMPTY = pa.schema([])
_TICK_FIELDS: list[pa.Field[pa.DataType]] = [
    pa.field("index", pa.int64()),
    pa.field("seen", pa.string()),
]
TICK_SEEN = pa.schema(_TICK_FIELDS)
ANNOTATED_VALUES = pa.schema([("value", pa.int64())])
INPUT_SEEN = pa.schema([("seen", pa.string()), ("keys", pa.string())])

# Metadata keys and values of the 2.0.0 streams (suite facts). The label is
# deliberately non-ASCII: metadata must travel as UTF-8 bytes, untouched.
TICK_KEY = b"vgi.conformance.tick"
INPUT_KEY = b"vgi.conformance.input"
EMIT_LABEL = "\u00fcn\u00efcode-\u03bb"


def _counter_rows(start: int, count: int) -> dict[str, list[int]]:
    indices = list(range(start, start + count))
    return {"index": indices, "value": [i * 10 for i in indices]}


class CancelProbe:
    """Counts produce/exchange/on_cancel calls, in memory or in a shared JSON file.

    The file (``VGI_RPC_CONFORMANCE_PROBE_FILE``) lets several worker processes
    behind one HTTP endpoint report one set of counters.
    """

    FIELDS = ("produce_calls", "exchange_calls", "on_cancel_calls")
    _memory: ClassVar[dict[str, int]] = dict.fromkeys(FIELDS, 0)

    @classmethod
    def _apply(cls, change: Callable[[dict[str, int]], None] | None) -> dict[str, int]:
        path = os.environ.get("VGI_RPC_CONFORMANCE_PROBE_FILE")
        if not path:
            if change is not None:
                change(cls._memory)
            return dict(cls._memory)
        with open(path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            data = {**dict.fromkeys(cls.FIELDS, 0), **json.loads(f.read() or "{}")}
            if change is not None:
                change(data)
                f.seek(0)
                f.truncate()
                f.write(json.dumps(data))
            return data

    @classmethod
    def bump(cls, name: str) -> None:
        """Add one to a counter."""
        cls._apply(lambda data: data.__setitem__(name, data[name] + 1))

    @classmethod
    def snapshot(cls) -> list[int]:
        """The counters in suite order."""
        data = cls._apply(None)
        return [data[name] for name in cls.FIELDS]

    @classmethod
    def reset(cls) -> None:
        """Zero every counter."""
        cls._apply(lambda data: data.update(dict.fromkeys(cls.FIELDS, 0)))


@dataclass
class Counter(ProducerState):
    """``count`` one-row batches of ``{index, value=index*10}``, optionally logging or failing."""

    count: int
    rows: int = 1
    log_each: bool = False
    fail_after: int | None = None
    emitted: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        if self.fail_after is not None and self.emitted >= self.fail_after:
            raise RuntimeError(f"intentional error after {self.fail_after} batches")
        if self.emitted >= self.count:
            out.finish()
            return
        if self.log_each:
            out.client_log(Level.INFO, f"producing batch {self.emitted}")
        out.emit_pydict(_counter_rows(self.emitted * self.rows, self.rows))
        self.emitted += 1


@dataclass
class Dynamic(ProducerState):
    """Batches whose columns depend on the call's flags."""

    count: int
    include_strings: bool
    include_floats: bool
    emitted: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        if self.emitted >= self.count:
            out.finish()
            return
        i = self.emitted
        row: dict[str, list[object]] = {"index": [i]}
        if self.include_strings:
            row["label"] = [f"row-{i}"]
        if self.include_floats:
            row["score"] = [i * 1.5]
        out.emit_pydict(row)
        self.emitted += 1


def dynamic_schema(include_strings: bool, include_floats: bool) -> pa.Schema:
    """``index`` plus the optional ``label`` / ``score`` columns."""
    fields: list[pa.Field[pa.DataType]] = [pa.field("index", pa.int64())]
    if include_strings:
        fields.append(pa.field("label", pa.utf8()))
    if include_floats:
        fields.append(pa.field("score", pa.float64()))
    return pa.schema(fields)


@dataclass
class Endless(ProducerState):
    """Never finishes; exists to be cancelled."""

    emitted: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        CancelProbe.bump("produce_calls")
        out.emit_pydict(_counter_rows(self.emitted, 1))
        self.emitted += 1

    def on_cancel(self, ctx: CallContext) -> None:
        CancelProbe.bump("on_cancel_calls")


@dataclass
class Scale(ExchangeState):
    """Multiplies the ``value`` column by ``factor``."""

    factor: float

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        out.emit_arrays([pc.multiply(input.batch.column("value"), self.factor)])


@dataclass
class Accumulate(ExchangeState):
    """Running sum of ``value`` and number of exchanges."""

    running_sum: float = 0.0
    exchange_count: int = 0

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        self.running_sum += pc.sum(input.batch.column("value")).as_py() or 0.0
        self.exchange_count += 1
        out.emit_pydict(
            {"running_sum": [self.running_sum], "exchange_count": [self.exchange_count]}
        )


@dataclass
class Echo(ExchangeState):
    """Echoes input; optionally logs, fails on the n-th turn, or counts for cancel tests."""

    log_each: bool = False
    fail_on: int | None = None
    probe: bool = False
    turns: int = 0

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        self.turns += 1
        if self.probe:
            CancelProbe.bump("exchange_calls")
        if self.fail_on is not None and self.turns >= self.fail_on:
            raise RuntimeError(f"intentional error on exchange {self.turns}")
        if self.log_each:
            out.client_log(Level.INFO, "exchange processing")
            out.client_log(Level.DEBUG, "exchange debug")
        out.emit(input.batch)

    def on_cancel(self, ctx: CallContext) -> None:
        if self.probe:
            CancelProbe.bump("on_cancel_calls")


@dataclass
class ZeroColumns(ExchangeState):
    """Answers every input with a zero-column batch."""

    turns: int = 0

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        self.turns += 1
        out.emit(pa.record_batch([], schema=EMPTY))


@dataclass
class Oversized(ExchangeState):
    """Answers every input with ``rows`` counter rows."""

    rows: int

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        out.emit_pydict(_counter_rows(0, self.rows))


def tick_metadata(ctx: CallContext) -> Mapping[bytes, bytes] | None:
    """The custom metadata the client sent with the current producer tick, if any.

    Read from ``ctx.tick_metadata``, the attribute through which the server is
    to hand a producer its tick's metadata (over HTTP: the ``/exchange``
    request's metadata less the token and cancel keys). Until the server sets
    it this is ``None``, and ``producer_stream.tick_metadata`` of the 0.52.2
    suite fails (``KNOWN_FAILING`` in tests/interop/test_reference_052.py).
    """
    found = getattr(ctx, "tick_metadata", None)
    return found if isinstance(found, Mapping) else None


def _text(metadata: Mapping[bytes, bytes] | None, key: bytes) -> str:
    raw = metadata.get(key) if metadata is not None else None
    return raw.decode("utf-8", "replace") if raw is not None else ""


@dataclass
class TickSeen(ProducerState):
    """One row per tick, ``{index, seen}``: what the tick's metadata said under ``TICK_KEY``."""

    count: int
    ticks: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        if self.ticks >= self.count:
            out.finish()
            return
        out.emit_pydict({"index": [self.ticks], "seen": [_text(tick_metadata(ctx), TICK_KEY)]})
        self.ticks += 1


@dataclass
class Labelled(ProducerState):
    """``count`` batches of ``rows`` rows, each with metadata naming its own index."""

    count: int
    rows: int
    emitted: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        if self.emitted >= self.count:
            out.finish()
            return
        first = self.emitted * 1_000_000
        metadata = {
            b"conformance.batch_index": str(self.emitted).encode(),
            b"conformance.batch_total": str(self.count).encode(),
            b"conformance.emit_label": EMIT_LABEL.encode(),
        }
        out.emit_pydict({"value": list(range(first, first + self.rows))}, metadata)
        self.emitted += 1


@dataclass
class InputSeen(ExchangeState):
    """Answers each input with ``{seen, keys}``: its ``INPUT_KEY`` value and all its keys."""

    turns: int = 0

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        self.turns += 1
        metadata = input.metadata_dict()
        keys = ",".join(sorted(k.decode("utf-8", "replace") for k in metadata or {}))
        out.emit_pydict({"seen": [_text(metadata, INPUT_KEY)], "keys": [keys]})


@dataclass
class SessionCounter(ProducerState):
    """Sticky-session counter stream; needs HTTP sticky sessions, which this worker lacks."""

    count: int
    extra: dict[str, int] = field(default_factory=dict)

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        raise RuntimeError(
            "no sticky counter bound to this request (sticky sessions are not enabled)"
        )


@dataclass
class SessionCounterExchange(ExchangeState):
    """Exchange twin of ``SessionCounter``."""

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        raise RuntimeError(
            "no sticky counter bound to this request (sticky sessions are not enabled)"
        )


def _require_members(values: Iterable[object], cls: type, what: str) -> None:
    if any(not isinstance(v, cls) for v in values):
        raise TypeError(f"{what} were not rebuilt as {cls.__name__} instances")


def _identity(**arguments: object) -> object:
    """Return the single argument unchanged, whatever the Protocol names it."""
    (value,) = arguments.values()
    return value


class ConformanceImpl:
    """The conformance service: echoes, errors, logs and every stream shape."""

    # every echo_* method returns its argument unchanged
    echo_string = echo_bytes = echo_int = echo_float = echo_bool = staticmethod(_identity)
    echo_enum = echo_list = echo_dict = echo_nested_list = staticmethod(_identity)
    echo_optional_string = echo_optional_int = staticmethod(_identity)
    echo_point = echo_all_types = echo_bounding_box = staticmethod(_identity)
    echo_int32 = echo_float32 = echo_int8 = echo_int16 = staticmethod(_identity)
    echo_uint8 = echo_uint16 = echo_uint32 = echo_uint64 = staticmethod(_identity)
    echo_date = echo_timestamp = echo_timestamp_utc = echo_time = echo_duration = staticmethod(
        _identity
    )
    echo_decimal = echo_large_string = echo_large_binary = echo_fixed_binary = staticmethod(
        _identity
    )
    echo_wide_types = echo_container_wide_types = echo_embedded_arrow = staticmethod(_identity)
    echo_deep_nested = echo_dict_encoded_string = staticmethod(_identity)
    # 2.0.0
    echo_optional_point = echo_annotated_optional_int = staticmethod(_identity)
    echo_outer_optional_non_null = staticmethod(_identity)

    def echo_status_list(self, statuses: list[Status]) -> list[Status]:
        _require_members(statuses, Status, "statuses")
        return statuses

    def pack_nested_containers(
        self, statuses: list[Status], points: list[Point], status_by_name: dict[str, Status]
    ) -> NestedContainers:
        # the server must have rebuilt the nested enums and dataclasses
        _require_members(statuses, Status, "statuses")
        _require_members(points, Point, "points")
        _require_members(list(status_by_name.values()), Status, "status_by_name values")
        return NestedContainers(
            statuses=statuses,
            points=points,
            status_by_name=status_by_name,
            frozen_statuses=frozenset(statuses),
            tagged_status=statuses[0] if statuses else None,
            tagged_point=points[0] if points else None,
            tagged_batch=pa.RecordBatch.from_pydict({"value": [1, 2]}),
        )

    def published_string(self, value: str, include_sha256: bool) -> str:
        # publishing needs the external-storage backend, which this worker does not have
        raise RuntimeError("published_string requires external storage")

    def oversized_unary(self, target_bytes: int) -> bytes:
        if target_bytes < 0:
            raise ValueError("target_bytes must be non-negative")
        return bytes(target_bytes)

    def void_noop(self) -> None:
        return None

    def void_with_param(self, value: int) -> None:
        return None

    def inspect_point(self, point: object) -> str:
        return f"Point({point.x}, {point.y})"  # type: ignore[attr-defined]  # a Point by Protocol

    def add_floats(self, a: float, b: float) -> float:
        return a + b

    def concatenate(self, prefix: str, suffix: str, separator: str = "-") -> str:
        return f"{prefix}{separator}{suffix}"

    def with_defaults(
        self, required: int, optional_str: str = "default", optional_int: int = 42
    ) -> str:
        return f"required={required}, optional_str={optional_str}, optional_int={optional_int}"

    def raise_value_error(self, message: str) -> str:
        raise ValueError(message)

    def raise_runtime_error(self, message: str) -> str:
        raise RuntimeError(message)

    def raise_type_error(self, message: str) -> str:
        raise TypeError(message)

    def echo_with_info_log(self, value: str, ctx: CallContext) -> str:
        ctx.client_log(Level.INFO, f"info: {value}")
        return value

    def echo_with_multi_logs(self, value: str, ctx: CallContext) -> str:
        for level in (Level.DEBUG, Level.INFO, Level.WARN):
            ctx.client_log(level, f"{level.value.lower()}: {value}")
        return value

    def echo_with_log_extras(self, value: str, ctx: CallContext) -> str:
        ctx.client_log(Level.INFO, f"info: {value}", source="conformance", detail=value)
        return value

    def echo_with_all_log_levels(self, value: str, ctx: CallContext) -> str:
        for level in (Level.TRACE, Level.DEBUG, Level.INFO, Level.WARN, Level.ERROR):
            ctx.client_log(level, f"{level.value.lower()}: {value}")
        return value

    # producers
    def produce_n(self, count: int) -> Stream[Counter]:
        return Stream(COUNTER, Counter(count))

    def produce_empty(self) -> Stream[Counter]:
        return Stream(COUNTER, Counter(0))

    def produce_single(self) -> Stream[Counter]:
        return Stream(COUNTER, Counter(1))

    def produce_large_batches(self, rows_per_batch: int, batch_count: int) -> Stream[Counter]:
        return Stream(COUNTER, Counter(batch_count, rows=rows_per_batch))

    def produce_tick_metadata(self, count: int) -> Stream[TickSeen]:
        return Stream(TICK_SEEN, TickSeen(count))

    def produce_annotated_batches(self, count: int, rows_per_batch: int) -> Stream[Labelled]:
        return Stream(ANNOTATED_VALUES, Labelled(count, rows_per_batch))

    def produce_with_logs(self, count: int) -> Stream[Counter]:
        return Stream(COUNTER, Counter(count, log_each=True))

    def produce_error_mid_stream(self, emit_before_error: int) -> Stream[Counter]:
        return Stream(COUNTER, Counter(emit_before_error + 1, fail_after=emit_before_error))

    def produce_error_on_init(self) -> Stream[Counter]:
        raise RuntimeError("intentional init error")

    def produce_oversized_batch(self, rows_per_batch: int) -> Stream[Counter]:
        return Stream(COUNTER, Counter(1, rows=rows_per_batch))

    def produce_with_header(self, count: int) -> Stream[Counter, ConformanceHeader]:
        header = ConformanceHeader(total_expected=count, description=f"producing {count} batches")
        return Stream(COUNTER, Counter(count), header=header)

    def produce_with_header_and_logs(
        self, count: int, ctx: CallContext
    ) -> Stream[Counter, ConformanceHeader]:
        ctx.client_log(Level.INFO, "stream init log")
        header = ConformanceHeader(total_expected=count, description=f"producing {count} with logs")
        return Stream(COUNTER, Counter(count), header=header)

    # exchanges
    def exchange_scale(self, factor: float) -> Stream[Scale]:
        return Stream(VALUES, Scale(factor), input_schema=VALUES)

    def exchange_accumulate(self) -> Stream[Accumulate]:
        return Stream(ACCUMULATED, Accumulate(), input_schema=VALUES)

    def exchange_with_logs(self) -> Stream[Echo]:
        return Stream(VALUES, Echo(log_each=True), input_schema=VALUES)

    def exchange_error_on_nth(self, fail_on: int) -> Stream[Echo]:
        return Stream(VALUES, Echo(fail_on=fail_on), input_schema=VALUES)

    def exchange_zero_columns(self) -> Stream[ZeroColumns]:
        return Stream(EMPTY, ZeroColumns(), input_schema=EMPTY)

    def exchange_input_metadata(self) -> Stream[InputSeen]:
        return Stream(INPUT_SEEN, InputSeen(), input_schema=VALUES)

    def exchange_error_on_init(self) -> Stream[Scale]:
        raise RuntimeError("intentional exchange init error")

    def exchange_oversized(self, rows_per_batch: int) -> Stream[Oversized]:
        return Stream(COUNTER, Oversized(rows_per_batch), input_schema=VALUES)

    def exchange_with_header(self, factor: float) -> Stream[Scale, ConformanceHeader]:
        header = ConformanceHeader(total_expected=0, description=f"scale by {factor}")
        return Stream(VALUES, Scale(factor), input_schema=VALUES, header=header)

    def exchange_cast_compatible(self) -> Stream[Scale]:
        return Stream(VALUES, Scale(1.0), input_schema=VALUES)

    # cancellation
    def cancellable_producer(self) -> Stream[Endless]:
        return Stream(COUNTER, Endless())

    def cancellable_exchange(self) -> Stream[Echo]:
        return Stream(VALUES, Echo(probe=True), input_schema=VALUES)

    def cancel_probe_counters(self) -> list[int]:
        return CancelProbe.snapshot()

    def reset_cancel_probe(self) -> None:
        CancelProbe.reset()

    # rich headers, dynamic schemas
    def produce_with_rich_header(self, seed: int, count: int) -> Stream[Counter, object]:
        return Stream(COUNTER, Counter(count), header=rich_header(seed))

    def produce_dynamic_schema(
        self, seed: int, count: int, include_strings: bool, include_floats: bool
    ) -> Stream[Dynamic, object]:
        schema = dynamic_schema(include_strings, include_floats)
        return Stream(
            schema, Dynamic(count, include_strings, include_floats), header=rich_header(seed)
        )

    def exchange_with_rich_header(self, seed: int, factor: float) -> Stream[Scale, object]:
        return Stream(VALUES, Scale(factor), input_schema=VALUES, header=rich_header(seed))

    # sticky sessions: HTTP-only; this worker has no session store
    def open_counter(self, initial: int) -> int:
        raise RuntimeError("sticky sessions are not enabled on this worker")

    def increment_counter(self, by: int) -> int:
        raise RuntimeError(
            "no sticky counter bound to this request (sticky sessions are not enabled)"
        )

    def close_counter(self) -> int:
        raise RuntimeError(
            "no sticky counter bound to this request (sticky sessions are not enabled)"
        )

    def stream_session_counter(self, count: int) -> Stream[SessionCounter]:
        return Stream(SESSION_VALUE, SessionCounter(count))

    def exchange_session_counter(self) -> Stream[SessionCounterExchange]:
        return Stream(
            SESSION_VALUE, SessionCounterExchange(), input_schema=pa.schema([("by", pa.int64())])
        )
