"""The HTTP benchmark service, importable under either ``vgi_rpc`` (ours or the reference)."""

from __future__ import annotations

from typing import Protocol

from _streams_service import EXCHANGE_SCHEMA, Echo

from vgi_rpc import Stream, StreamState


class HttpBench(Protocol):
    """Unary calls without and with scalars, and an exchange stream that echoes its input."""

    def noop(self) -> None:
        """Do nothing; measures the fixed cost of a call."""
        ...

    def add(self, a: float, b: float) -> float:
        """Add two floats."""
        ...

    def exchange(self) -> Stream[StreamState]:
        """Echo every input batch (one float64 column ``x``)."""
        ...


class HttpBenchImpl:
    """Server-side implementation of :class:`HttpBench`."""

    def noop(self) -> None:
        return None

    def add(self, a: float, b: float) -> float:
        return a + b

    def exchange(self) -> Stream[Echo]:
        return Stream(output_schema=EXCHANGE_SCHEMA, state=Echo(), input_schema=EXCHANGE_SCHEMA)
