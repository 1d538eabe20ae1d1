"""The main demo: a sensor-readings service in a worker process, called through a typed proxy.

Run it with ``./run demo`` (sets up a virtualenv) or ``python examples/demo.py``.
It starts ``examples/demo.py --worker`` as a subprocess and exercises unary
calls, dataclasses, client logs, remote errors, a producer stream and an
exchange stream over the vgi-rpc wire protocol.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from vgi_rpc import (
    AnnotatedBatch,
    ArrowSerializableDataclass,
    CallContext,
    ExchangeState,
    Level,
    Message,
    OutputCollector,
    ProducerState,
    RpcError,
    Stream,
    StreamState,
    connect,
    run_server,
)

_READING_FIELDS: list[pa.Field[pa.DataType]] = [
    pa.field("sensor", pa.utf8()),
    pa.field("t", pa.int64()),
    pa.field("celsius", pa.float64()),
]
READINGS = pa.schema(_READING_FIELDS)


@dataclass(frozen=True)
class Summary(ArrowSerializableDataclass):
    """Statistics of one sensor."""

    sensor: str
    count: int
    mean: float
    low: float
    high: float


class Sensors(Protocol):
    """Collects temperature readings and answers questions about them."""

    def record(self, sensor: str, celsius: list[float]) -> int:
        """Store readings for a sensor; returns how many it now has."""
        ...

    def summary(self, sensor: str) -> Summary:
        """Statistics for one sensor."""
        ...

    def history(self, sensor: str, batch_size: int = 4) -> Stream[StreamState]:
        """Stream a sensor's readings in batches."""
        ...

    def smooth(self, window: int) -> Stream[StreamState]:
        """Exchange: send readings, get their moving average back."""
        ...


@dataclass
class History(ProducerState):
    sensor: str
    values: list[float]
    batch_size: int
    sent: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        if self.sent >= len(self.values):
            out.finish()
            return
        chunk = self.values[self.sent : self.sent + self.batch_size]
        out.emit_pydict(
            {
                "sensor": [self.sensor] * len(chunk),
                "t": list(range(self.sent, self.sent + len(chunk))),
                "celsius": chunk,
            }
        )
        self.sent += len(chunk)


@dataclass
class Smoother(ExchangeState):
    window: int
    recent: list[float] = field(default_factory=list)

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        smoothed = []
        for value in (
            pc.cast(input.batch.column("celsius"), pa.float64()).fill_null(0.0).to_pylist()
        ):
            self.recent = [*self.recent, float(value or 0.0)][-self.window :]
            smoothed.append(sum(self.recent) / len(self.recent))
        out.emit_pydict({"smoothed": smoothed})


class SensorsImpl:
    def __init__(self) -> None:
        self._data: dict[str, list[float]] = {}

    def record(self, sensor: str, celsius: list[float], ctx: CallContext) -> int:
        values = self._data.setdefault(sensor, [])
        values.extend(celsius)
        if any(v > 60 for v in celsius):
            ctx.client_log(Level.WARN, f"{sensor} reported a reading above 60 °C", sensor=sensor)
        return len(values)

    def summary(self, sensor: str) -> Summary:
        values = self._data.get(sensor)
        if not values:
            raise KeyError(f"no readings for sensor {sensor!r}")
        return Summary(sensor, len(values), statistics.fmean(values), min(values), max(values))

    def history(self, sensor: str, batch_size: int = 4) -> Stream[History]:
        return Stream(READINGS, History(sensor, list(self._data.get(sensor, [])), batch_size))

    def smooth(self, window: int) -> Stream[Smoother]:
        return Stream(
            pa.schema([("smoothed", pa.float64())]),
            Smoother(window),
            input_schema=pa.schema([("celsius", pa.float64())]),
        )


def main() -> None:
    def show(msg: Message) -> None:
        print(f"  server says [{msg.level.value}] {msg.message}")

    started = time.perf_counter()
    with connect(Sensors, [sys.executable, __file__, "--worker"], on_log=show) as sensors:
        print(
            "record:",
            sensors.record(sensor="kitchen", celsius=[20.5, 21.0, 21.4, 22.0, 64.0, 22.3]),
        )
        print("summary:", sensors.summary(sensor="kitchen"))
        try:
            sensors.summary(sensor="attic")
        except RpcError as exc:
            print(f"remote error: {exc.error_type}: {exc.error_message}")
        print("history:")
        for batch in sensors.history(sensor="kitchen"):
            print("  ", batch.batch.to_pydict()["celsius"])
        with sensors.smooth(window=3) as session:
            inputs = pa.RecordBatch.from_pydict(
                {"celsius": [10.0, 20.0, 30.0, 40.0]}, schema=pa.schema([("celsius", pa.float64())])
            )
            print("smoothed:", session.exchange(inputs).batch.to_pydict()["smoothed"])
        for _ in range(200):  # warm up: caches, encoders, the worker's first-call paths
            sensors.record(sensor="bench", celsius=[1.0])
        calls = 2000
        t0 = time.perf_counter()
        for _ in range(calls):
            sensors.record(sensor="bench", celsius=[1.0])
        per_call = (time.perf_counter() - t0) / calls * 1e6
        print(
            f"{calls} round trips to the worker: {per_call:.0f} µs per call (unpinned; see benchmarks/)"
        )
    print(f"demo finished in {time.perf_counter() - started:.2f} s; the worker has exited")
    from vgi_rpc.services.vectorindex.demo import run_demo  # the vector index service

    run_demo()


if __name__ == "__main__":
    if "--worker" in sys.argv:
        run_server(Sensors, SensorsImpl())
    else:
        main()
        from object_store import demo as objectstore_demo  # examples/object_store.py

        objectstore_demo()
