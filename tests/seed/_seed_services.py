"""The ``MyService`` the seed's snippets call but never define (the one adaptation they need).

Imported by the snippet tests and by the ``worker.py`` files they write, so
a subprocess worker and the in-process client agree on the Protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from vgi_rpc import CallContext, OutputCollector, ProducerState, Stream, StreamState


class MyService(Protocol):
    """The seed's generic example service."""

    def some_method(self, arg: str) -> str:
        """Echo ``arg`` with a greeting."""
        ...

    def generate(self, count: int) -> Stream[StreamState]:
        """``count`` one-row batches."""
        ...

    def failing_method(self) -> None:
        """Always raises ValueError("something went wrong")."""
        ...

    def blob(self, size: int) -> bytes:
        """``size`` bytes (large results test external storage)."""
        ...


@dataclass
class Generate(ProducerState):
    """Counts up to ``count``."""

    count: int
    sent: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        """One batch per tick."""
        if self.sent >= self.count:
            out.finish()
            return
        out.emit_pydict({"i": [self.sent]})
        self.sent += 1


class MyServiceImpl:
    """Implementation of ``MyService``."""

    def some_method(self, arg: str) -> str:
        """Echo ``arg`` with a greeting."""
        return f"got {arg}"

    def generate(self, count: int) -> Stream[Generate]:
        """``count`` one-row batches."""
        return Stream(output_schema=pa.schema([pa.field("i", pa.int64())]), state=Generate(count))

    def failing_method(self) -> None:
        """Always raises."""
        raise ValueError("something went wrong")

    def blob(self, size: int) -> bytes:
        """``size`` bytes of a repeating pattern."""
        return (bytes(range(256)) * (size // 256 + 1))[:size]
