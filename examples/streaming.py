"""Producer and exchange streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from vgi_rpc import (
    AnnotatedBatch,
    CallContext,
    ExchangeState,
    OutputCollector,
    ProducerState,
    Stream,
    StreamState,
    serve_pipe,
)


@dataclass
class CountdownState(ProducerState):
    """Counts down from n."""

    n: int

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        """Produce the next value or finish."""
        if self.n <= 0:
            out.finish()
            return
        out.emit_pydict({"value": [self.n]})
        self.n -= 1


@dataclass
class RunningSum(ExchangeState):
    """Accumulates a running sum."""

    total: float = 0.0
    input_schema: pa.Schema = field(
        default_factory=lambda: pa.schema([pa.field("value", pa.float64())])
    )

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        """Add the input values to the running total."""
        for v in input.batch.column("value"):
            self.total += v.as_py()
        out.emit_pydict({"total": [self.total]})


class StreamService(Protocol):
    """A producer and an exchange stream."""

    def countdown(self, n: int) -> Stream[StreamState]: ...
    def accumulate(self, initial: float) -> Stream[StreamState]: ...


class StreamServiceImpl:
    """Stream implementations."""

    def countdown(self, n: int) -> Stream[CountdownState]:
        schema = pa.schema([pa.field("value", pa.int64())])
        return Stream(output_schema=schema, state=CountdownState(n=n))

    def accumulate(self, initial: float) -> Stream[RunningSum]:
        state = RunningSum(total=initial)
        return Stream(
            output_schema=pa.schema([pa.field("total", pa.float64())]),
            state=state,
            input_schema=state.input_schema,
        )


def main() -> None:
    with serve_pipe(StreamService, StreamServiceImpl()) as proxy:
        for batch in proxy.countdown(n=3):
            print(batch.batch.to_pydict())
        with proxy.accumulate(initial=0.0) as session:
            result = session.exchange(AnnotatedBatch.from_pydict({"value": [1.0, 2.0]}))
            print(result.batch.to_pydict())
            result = session.exchange(AnnotatedBatch.from_pydict({"value": [10.0]}))
            print(result.batch.to_pydict())


if __name__ == "__main__":
    main()
