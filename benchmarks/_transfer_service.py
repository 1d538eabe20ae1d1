"""The transfer benchmark service, importable under either ``vgi_rpc`` (ours or the reference).

Two exchange streams on one float64 column: ``echo`` emits its input batch
itself; ``rebuild`` emits a new batch object over the same column (same data,
so a server that forwards an unchanged input in shared memory cannot here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from vgi_rpc import AnnotatedBatch, CallContext, ExchangeState, OutputCollector, Stream, StreamState

SCHEMA = pa.schema([pa.field("x", pa.float64())])


@dataclass
class Echo(ExchangeState):
    """Answers every input batch with itself."""

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        out.emit(input.batch)


@dataclass
class Rebuild(ExchangeState):
    """Answers every input batch with a new batch over the same column."""

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        out.emit(pa.RecordBatch.from_arrays(input.batch.columns, schema=SCHEMA))


class TransferBench(Protocol):
    """Echo streams for large batches."""

    def echo(self) -> Stream[StreamState]:
        """Emit every input batch as received."""
        ...

    def rebuild(self) -> Stream[StreamState]:
        """Emit a new batch holding every input's column."""
        ...


class TransferBenchImpl:
    """Server-side implementation of :class:`TransferBench`."""

    def echo(self) -> Stream[Echo]:
        return Stream(output_schema=SCHEMA, state=Echo(), input_schema=SCHEMA)

    def rebuild(self) -> Stream[Rebuild]:
        return Stream(output_schema=SCHEMA, state=Rebuild(), input_schema=SCHEMA)
