"""The benchmark service, importable under either ``vgi_rpc`` (ours or the reference).

Only the public API shared by both packages is used here, so the very same
file is exercised by both sides of the comparison.
"""

from __future__ import annotations

from typing import Protocol


class Bench(Protocol):
    """Three unary methods: no payload, two scalars, one binary blob."""

    def noop(self) -> None:
        """Do nothing; measures the fixed cost of a call."""
        ...

    def add(self, a: float, b: float) -> float:
        """Add two floats; measures a call with a small scalar request and result."""
        ...

    def echo(self, data: bytes) -> bytes:
        """Return ``data`` unchanged; measures payload throughput."""
        ...


class BenchImpl:
    """Server-side implementation of :class:`Bench`."""

    def noop(self) -> None:
        return None

    def add(self, a: float, b: float) -> float:
        return a + b

    def echo(self, data: bytes) -> bytes:
        return data
