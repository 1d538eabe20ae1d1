"""The stream benchmark service, importable under either ``vgi_rpc`` (ours or the reference).

Only the public streaming API shared by both packages is used here, so the
very same file is exercised by both sides of the comparison.  Batches are
built once per process and re-emitted, so the server spends its time in the
framework, not in building data.
"""

from __future__ import annotations

import array
import functools
from dataclasses import dataclass
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
)

PRODUCE_SCHEMA = pa.schema([pa.field("i", pa.int64())])
EXCHANGE_SCHEMA = pa.schema([pa.field("x", pa.float64())])


@functools.lru_cache(maxsize=8)
def int64_batch(rows: int) -> pa.RecordBatch:
    """A ``rows``-row batch of ``PRODUCE_SCHEMA`` (0, 1, 2, ...), built once per size."""
    values = pa.py_buffer(array.array("q", range(rows)))
    column = pa.Array.from_buffers(pa.int64(), rows, [None, values])
    return pa.RecordBatch.from_arrays([column], schema=PRODUCE_SCHEMA)


@dataclass
class Produce(ProducerState):
    """Emits ``count`` copies of one pre-built ``rows``-row batch, then finishes."""

    count: int
    rows: int
    sent: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        if self.sent >= self.count:
            out.finish()
            return
        out.emit(int64_batch(self.rows))
        self.sent += 1


@dataclass
class Echo(ExchangeState):
    """Answers every input batch with itself."""

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        out.emit(input.batch)


class StreamBench(Protocol):
    """A producer stream and an exchange stream."""

    def produce(self, count: int, rows: int) -> Stream[StreamState]:
        """Stream ``count`` batches of ``rows`` int64 rows each."""
        ...

    def exchange(self) -> Stream[StreamState]:
        """Echo every input batch (schema: one float64 column ``x``)."""
        ...


class StreamBenchImpl:
    """Server-side implementation of :class:`StreamBench`."""

    def produce(self, count: int, rows: int) -> Stream[Produce]:
        int64_batch(rows)  # build (and cache) outside the stream's turns
        return Stream(output_schema=PRODUCE_SCHEMA, state=Produce(count, rows))

    def exchange(self) -> Stream[Echo]:
        return Stream(output_schema=EXCHANGE_SCHEMA, state=Echo(), input_schema=EXCHANGE_SCHEMA)
