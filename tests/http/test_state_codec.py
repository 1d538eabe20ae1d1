"""A stream state's cursor bytes: flat states are written and read without pyarrow, as pyarrow would."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Annotated

import pyarrow as pa
import pytest

from vgi_rpc import ArrowType, OutputCollector, ProducerState
from vgi_rpc.http._tokens import StateCodec
from vgi_rpc.rpc import CallContext


@dataclass
class Flat(ProducerState):
    count: int
    scale: float
    label: str
    blob: bytes
    on: bool
    small: Annotated[int, ArrowType(pa.int16())] = 0
    half: Annotated[float, ArrowType(pa.float32())] = 0.5
    maybe: str | None = None

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        out.finish()


@dataclass
class Nested(ProducerState):
    seen: list[int] = field(default_factory=list)
    count: int = 0

    def produce(self, out: OutputCollector, ctx: CallContext) -> None:
        out.finish()


def _pyarrow_bytes(codec: StateCodec, state: object) -> bytes:
    arrays = [
        pa.array([None if getattr(state, n) is None else c.to_arrow(getattr(state, n), n)], f.type)
        for (n, c), f in zip(codec.codecs, codec.schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=codec.schema).serialize().to_pybytes()


def _random_flat(rng: random.Random) -> Flat:
    return Flat(
        count=rng.randint(-(1 << 63), (1 << 63) - 1),
        scale=rng.choice([0.0, -0.0, 1.5, rng.uniform(-1e300, 1e300), float("inf")]),
        label="".join(rng.choice("aé€😀 \n") for _ in range(rng.randint(0, 12))),
        blob=rng.randbytes(rng.randint(0, 30)),
        on=rng.random() < 0.5,
        small=rng.randint(-(1 << 15), (1 << 15) - 1),
        half=rng.choice([0.5, -2.0, 1024.0]),
        maybe=None if rng.random() < 0.5 else "x" * rng.randint(0, 5),
    )


def test_flat_states_are_the_bytes_pyarrow_writes_and_read_back_equal() -> None:
    codec = StateCodec(Flat)
    rng = random.Random(7)
    for _ in range(300):
        state = _random_flat(rng)
        data = codec.encode(state)
        assert data == _pyarrow_bytes(codec, state)
        assert codec.decode(data) == state
    assert codec._flat_values(codec.encode(Flat(1, 2.0, "a", b"b", True))) is not None


def test_a_value_the_flat_writer_cannot_hold_goes_through_pyarrow() -> None:
    codec = StateCodec(Flat)
    state = Flat(1, 2.0, "a", b"b", True, small=1 << 20)  # over int16: pyarrow's own error
    with pytest.raises(pa.ArrowInvalid):
        codec.encode(state)


def test_states_with_nested_fields_still_round_trip_through_pyarrow() -> None:
    codec = StateCodec(Nested)
    state = Nested(seen=[1, 2, 3], count=4)
    data = codec.encode(state)
    assert data == _pyarrow_bytes(codec, state)
    assert codec.decode(data) == state


def test_damaged_flat_state_bytes_are_read_as_pyarrow_reads_them() -> None:
    codec = StateCodec(Flat)
    rng = random.Random(11)
    agreed = 0
    for _ in range(400):
        data = bytearray(codec.encode(_random_flat(rng)))
        for _ in range(rng.randint(1, 3)):
            near_end = rng.random() < 0.5  # in the values, where a read in place must agree
            at = rng.randrange(len(data) - 64 if near_end else 0, len(data))
            data[at] = rng.randrange(256)
        damaged = bytes(data)
        fast = codec._flat_values(damaged)
        if fast is None:
            continue
        batch = pa.ipc.read_record_batch(pa.py_buffer(damaged), codec.schema)
        batch.validate(full=True)
        slow = tuple(column[0].as_py() for column in batch.columns)
        assert [repr(v) for v in fast] == [repr(v) for v in slow]
        agreed += 1
    assert agreed > 100  # damage to values (not structure) is still read in place
