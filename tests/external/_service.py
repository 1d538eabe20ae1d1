"""The service the external-storage tests call: large bytes both ways, and streams of large batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from vgi_rpc import (
    AnnotatedBatch,
    CallContext,
    ExchangeState,
    Level,
    OutputCollector,
    ProducerState,
    Stream,
    StreamState,
)

BLOB = pa.schema([("blob", pa.binary())])
MiB = 1 << 20


def filler(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that compress well but are not all one value."""
    unit = bytes((seed + i) % 251 for i in range(4096))
    return (unit * (size // len(unit) + 1))[:size]


class Blobs(Protocol):
    def echo(self, data: bytes) -> bytes: ...
    def size(self, data: bytes) -> int: ...
    def make(self, size: int) -> bytes: ...
    def logged(self, size: int) -> bytes: ...
    def small(self) -> int: ...
    def produce(self, count: int, size: int) -> Stream[StreamState]: ...
    def relay(self) -> Stream[StreamState]: ...


@dataclass
class Produce(ProducerState):
    count: int
    size: int
    sent: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        if self.sent == self.count:
            out.finish()
            return
        out.client_log(Level.INFO, f"batch {self.sent}")
        out.emit_pydict({"blob": [filler(self.size, self.sent)]})
        self.sent += 1


@dataclass
class Relay(ExchangeState):
    turns: int = 0

    def exchange(self, input: AnnotatedBatch, out: OutputCollector, ctx: CallContext) -> None:
        self.turns += 1
        out.client_log(Level.INFO, f"turn {self.turns}")
        blob = input.batch.column("blob")[0].as_py()
        tag = (input.custom_metadata or {}).get(b"tag", b"")
        out.emit(
            pa.RecordBatch.from_pydict({"blob": [blob[::-1]]}, schema=BLOB),
            {b"turn": str(self.turns).encode(), b"tag": tag},
        )


class BlobsImpl:
    def echo(self, data: bytes) -> bytes:
        return data

    def size(self, data: bytes) -> int:
        return len(data)

    def make(self, size: int) -> bytes:
        return filler(size)

    def logged(self, size: int, ctx: CallContext) -> bytes:
        ctx.client_log(Level.INFO, "before the result")
        ctx.client_log(Level.WARN, "also before the result")
        return filler(size)

    def small(self) -> int:
        return 42

    def produce(self, count: int, size: int) -> Stream[Produce]:
        return Stream(BLOB, Produce(count, size))

    def relay(self) -> Stream[Relay]:
        return Stream(BLOB, Relay(), input_schema=BLOB)
