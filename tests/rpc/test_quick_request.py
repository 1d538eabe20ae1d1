"""A small request read in place is the request the general reader reads; anything else is left to it."""

from __future__ import annotations

import io
import math
import os
import random
import struct
from typing import Any, cast

import pyarrow as pa
import pytest

from tests._services import Service
from vgi_rpc import IpcValidation
from vgi_rpc._errors import IPCError, TransportError
from vgi_rpc._flat_row import FlatRow, flat_layout
from vgi_rpc._ipc import encode_stream
from vgi_rpc._ipc_reader import ReadPolicy
from vgi_rpc._limits import DEFAULT_LIMITS
from vgi_rpc._methods import rpc_methods
from vgi_rpc.rpc._quick_request import read_plain_request
from vgi_rpc.rpc._request import ONE_EMPTY_ROW, Request, read_request

METHODS = rpc_methods(Service)
CALLS: list[tuple[str, tuple[object, ...]]] = [
    ("add", (1.5, -2.0)),
    ("greet", ("wörld", "?")),
    ("echo_bytes", (b"\x00\x01" * 30,)),
    ("echo_optional", (None,)),
    ("echo_optional", (42,)),
    ("noop", ()),
    ("calls", ()),
]


def _metadata(method: str) -> dict[bytes, bytes]:
    return {b"vgi_rpc.method": method.encode(), b"vgi_rpc.request_version": b"1"}


def _request(method: str, values: tuple[object, ...]) -> bytes:
    """The bytes our client writes for a call."""
    if not values:
        return encode_stream(
            ONE_EMPTY_ROW.schema, [(ONE_EMPTY_ROW, _metadata(method))]
        ).to_pybytes()
    layout = flat_layout(METHODS[method].params_schema)
    assert layout is not None
    writer = layout.writer(_metadata(method))
    assert writer is not None
    wire = writer.stream(values)
    assert wire is not None
    return wire


class _Channel:
    def __init__(self, data: bytes) -> None:
        # typed as the Channel contract's reader (typeshed parametrises it by its raw stream)
        self.reader = cast("io.BufferedReader", io.BufferedReader(io.BytesIO(data), 1 << 16))


def _policy() -> ReadPolicy:
    return ReadPolicy.make(IpcValidation.FULL, DEFAULT_LIMITS)


def _values(request: Request) -> tuple[object, ...]:
    """The request's values; a NaN as its bits (NaN is not equal to itself)."""
    if request.row is not None:
        values = tuple(request.row.values)
    else:
        values = tuple(column[0].as_py() for column in request.batch.columns)
    return tuple(
        ("nan", struct.pack("<d", v)) if isinstance(v, float) and math.isnan(v) else v
        for v in values
    )


def _primed(policy: ReadPolicy) -> ReadPolicy:
    """What a server has seen after serving each call twice through the general reader."""
    for method, values in CALLS * 2:
        assert read_request(_Channel(_request(method, values)), policy) is not None  # type: ignore[arg-type]
    return policy


@pytest.mark.parametrize(("method", "values"), CALLS)
def test_a_known_small_request_is_read_in_place_as_the_general_reader_reads_it(
    method: str, values: tuple[object, ...]
) -> None:
    policy = _primed(_policy())
    data = _request(method, values)
    channel = _Channel(data + b"THE NEXT REQUEST")
    quick = read_plain_request(channel.reader, policy)
    assert quick is not None
    general = read_request(_Channel(data), policy)  # type: ignore[arg-type]
    assert general is not None
    assert _values(quick) == _values(general) == values
    assert quick.metadata == general.metadata == _metadata(method)
    assert quick.extra_batches == general.extra_batches == 0
    assert quick.rejected is None
    assert (quick.row is None) == (not values)
    assert channel.reader.read() == b"THE NEXT REQUEST"


def _two_batches(method: str, values: tuple[object, ...]) -> bytes:
    schema = METHODS[method].params_schema
    row = pa.RecordBatch.from_pylist([dict(zip(schema.names, values, strict=True))], schema=schema)
    return encode_stream(schema, [(row, _metadata(method)), (row, None)]).to_pybytes()


def _other_schema_spelling(method: str, values: tuple[object, ...]) -> bytes:
    schema = METHODS[method].params_schema.with_metadata({b"note": b"not ours"})
    row = pa.RecordBatch.from_pylist([dict(zip(schema.names, values, strict=True))], schema=schema)
    return encode_stream(schema, [(row, _metadata(method))]).to_pybytes()


def _empty_row_other_spelling(method: str, values: tuple[object, ...]) -> bytes:
    schema = pa.schema([], metadata={b"x": b"y"})
    return encode_stream(
        schema, [(pa.RecordBatch.from_pylist([{}], schema=schema), None)]
    ).to_pybytes()


@pytest.mark.parametrize("build", [_two_batches, _other_schema_spelling, _empty_row_other_spelling])
def test_requests_that_are_not_plain_are_left_for_the_general_reader(build: Any) -> None:
    policy = _primed(_policy())
    for method, values in CALLS[:5]:
        data = build(method, values)
        channel = _Channel(data)
        assert read_plain_request(channel.reader, policy) is None
        assert channel.reader.read() == data


def test_a_schema_the_general_reader_has_not_parsed_is_left_to_it() -> None:
    policy = _policy()
    data = _request("add", (1.0, 2.0))
    channel = _Channel(data)
    assert read_plain_request(channel.reader, policy) is None
    assert channel.reader.read() == data


def test_a_request_not_wholly_arrived_is_left_alone() -> None:
    policy = _primed(_policy())
    for method, values in (("greet", ("someone", "!")), ("noop", ())):
        data = _request(method, values)
        for cut in range(1, len(data)):
            channel = _Channel(data[:cut])
            assert read_plain_request(channel.reader, policy) is None
            assert channel.reader.read() == data[:cut]


def _general(data: bytes, policy: ReadPolicy) -> Request | None:
    try:
        request = read_request(_Channel(data), policy)  # type: ignore[arg-type]
    except (IPCError, TransportError):
        return None
    return request if request is not None and request.rejected is None else None


def test_mutated_requests_agree_with_the_general_reader() -> None:
    cases = int(os.environ.get("VGI_QUICK_REQUEST_FUZZ_CASES", "3000"))
    rng = random.Random(int(os.environ.get("VGI_FUZZ_SEED", "5")))
    policy = _primed(_policy())
    quick_reads = 0
    for _ in range(cases):
        method, values = rng.choice(CALLS)
        data = bytearray(_request(method, values))
        for _ in range(rng.randint(1, 3)):
            near_end = rng.random() < 0.5  # in the values, where a read in place must agree
            at = (
                rng.randrange(max(0, len(data) - 48), len(data))
                if near_end
                else rng.randrange(len(data))
            )
            data[at] = rng.randrange(256) if rng.random() < 0.7 else data[at] ^ 1
        channel = _Channel(bytes(data))
        quick = read_plain_request(channel.reader, policy)
        if quick is None:
            assert channel.reader.read() == bytes(data)  # nothing consumed
            continue
        quick_reads += 1
        general = _general(bytes(data), policy)
        assert general is not None, f"read in place, refused by the general reader: {bytes(data)!r}"
        assert _values(quick) == _values(general)
        assert quick.metadata == general.metadata
        assert isinstance(quick.row, FlatRow) or quick.batch is ONE_EMPTY_ROW
    assert quick_reads > cases // 25
