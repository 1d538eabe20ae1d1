"""ArrowSerializableDataclass values as parameters and results, and as bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Protocol

import pyarrow as pa

from vgi_rpc import ArrowSerializableDataclass, ArrowType, serve_pipe


@dataclass(frozen=True)
class Measurement(ArrowSerializableDataclass):
    """A measurement with an Arrow schema derived from its fields."""

    timestamp: str
    value: float
    tags: list[str]


class DataService(Protocol):
    """Stores measurements."""

    def record(self, measurement: Measurement) -> str: ...
    def latest(self) -> Measurement: ...
    def count(self, limit: Annotated[int, ArrowType(pa.int32())]) -> int: ...


class DataServiceImpl:
    """In-memory implementation."""

    def __init__(self) -> None:
        self._items: list[Measurement] = []

    def record(self, measurement: Measurement) -> str:
        self._items.append(measurement)
        return f"stored #{len(self._items)}"

    def latest(self) -> Measurement:
        return self._items[-1]

    def count(self, limit: int) -> int:
        return min(limit, len(self._items))


def main() -> None:
    m = Measurement(timestamp="2025-01-01T00:00:00Z", value=42.0, tags=["a"])
    data = m.serialize_to_bytes()
    assert Measurement.deserialize_from_bytes(data) == m
    print(f"schema: {Measurement.ARROW_SCHEMA}".replace("\n", "; "))
    with serve_pipe(DataService, DataServiceImpl()) as proxy:
        print(proxy.record(measurement=m))
        print(f"latest: {proxy.latest()}")
        print(f"count: {proxy.count(limit=10)}")


if __name__ == "__main__":
    main()
