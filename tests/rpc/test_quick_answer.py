"""A plain unary answer read in place agrees with the general reader, and anything else is left to it."""

from __future__ import annotations

import io
import math
import os
import random
from typing import Any, Protocol

import pyarrow as pa
import pytest

from tests._services import Service, ServiceImpl
from vgi_rpc import IpcValidation, Level, Message, serve_pipe
from vgi_rpc._errors import IPCError, TransportError
from vgi_rpc._flat_row import flat_layout
from vgi_rpc._ipc import encode_stream
from vgi_rpc._ipc_reader import memory_source, open_stream_reader
from vgi_rpc._methods import rpc_methods
from vgi_rpc.rpc._client import connection_of
from vgi_rpc.rpc._quick_answer import MISS, answer_shape, read_plain_answer
from vgi_rpc.wire import empty_batch


class Answers(Protocol):
    def number(self) -> float: ...
    def count(self) -> int: ...
    def text(self) -> str: ...
    def blob(self) -> bytes: ...
    def flag(self) -> bool: ...
    def maybe(self) -> int | None: ...
    def nothing(self) -> None: ...


METHODS = rpc_methods(Answers)
VALUES: list[tuple[str, object]] = [
    ("number", 2.5),
    ("number", -0.0),
    ("number", math.inf),
    ("count", -(2**63)),
    ("count", 7),
    ("text", ""),
    ("text", "héllo"),
    ("blob", b"\x00\xff" * 40),
    ("flag", True),
    ("flag", False),
    ("maybe", None),
    ("maybe", 12),
]


def _answer(method: str, value: object) -> bytes:
    """The bytes our server writes for a plain answer."""
    info = METHODS[method]
    layout = flat_layout(info.result_schema)
    assert layout is not None
    writer = layout.writer()
    assert writer is not None
    wire = writer.stream((value,))
    assert wire is not None
    return wire


def _reader(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(data), buffer_size=1 << 16)


def _general(method: str, data: bytes) -> object:
    """The answer's value as the general reader decodes it (``MISS``: it refuses the bytes)."""
    try:
        reader = open_stream_reader(memory_source(data))
        assert reader is not None
        first = reader.read(IpcValidation.FULL)
        assert first is not None
        batch, metadata = first
        if metadata or reader.read() is not None:
            return MISS
    except (IPCError, TransportError, AssertionError):
        return MISS
    if METHODS[method].result_codec is None:
        return None
    return batch.column(0)[0].as_py()


@pytest.mark.parametrize(("method", "value"), VALUES)
def test_a_plain_answer_is_read_in_place_and_nothing_after_it(method: str, value: object) -> None:
    shape = answer_shape(METHODS[method])
    assert shape is not None
    reader = _reader(_answer(method, value) + b"NEXT ANSWER")
    got = read_plain_answer(reader, shape)
    assert got == value
    assert type(got) is type(value)
    if isinstance(value, float):
        assert isinstance(got, float)
        assert math.copysign(1, got) == math.copysign(1, value)  # -0.0 stays negative
    assert reader.read() == b"NEXT ANSWER"


def test_no_result_is_the_same_bytes_every_time() -> None:
    info = METHODS["nothing"]
    shape = answer_shape(info)
    assert shape is not None
    assert shape.layout is None
    whole = encode_stream(info.result_schema, [(empty_batch(info.result_schema), None)])
    reader = _reader(whole.to_pybytes() * 2)
    assert read_plain_answer(reader, shape) is None
    assert reader.read() == whole.to_pybytes()


def _with_log_first(method: str, value: object) -> bytes:
    schema = METHODS[method].result_schema
    log = {b"vgi_rpc.log_level": b"INFO", b"vgi_rpc.log_message": b"hi"}
    row = pa.RecordBatch.from_pylist([{schema.field(0).name: value}], schema=schema)
    return encode_stream(schema, [(empty_batch(schema), log), (row, None)]).to_pybytes()


def _with_metadata(method: str, value: object) -> bytes:
    schema = METHODS[method].result_schema
    row = pa.RecordBatch.from_pylist([{schema.field(0).name: value}], schema=schema)
    return encode_stream(schema, [(row, {b"vgi_rpc.request_id": b"abc"})]).to_pybytes()


def _two_rows(method: str, value: object) -> bytes:
    schema = METHODS[method].result_schema
    rows = pa.RecordBatch.from_pylist([{schema.field(0).name: value}] * 2, schema=schema)
    return encode_stream(schema, [(rows, None)]).to_pybytes()


@pytest.mark.parametrize("build", [_with_log_first, _with_metadata, _two_rows])
def test_answers_that_are_not_plain_are_left_for_the_general_reader(build: Any) -> None:
    for method, value in VALUES:
        data = build(method, value)
        reader = _reader(data)
        assert read_plain_answer(reader, answer_shape(METHODS[method])) is MISS  # type: ignore[arg-type]
        assert reader.read() == data


def test_an_answer_not_wholly_arrived_is_left_alone() -> None:
    data = _answer("text", "a longer answer")
    shape = answer_shape(METHODS["text"])
    assert shape is not None
    for cut in range(1, len(data)):
        reader = _reader(data[:cut])
        assert read_plain_answer(reader, shape) is MISS
        assert reader.read() == data[:cut]


def test_mutated_answers_agree_with_the_general_reader() -> None:
    cases = int(os.environ.get("VGI_QUICK_ANSWER_FUZZ_CASES", "3000"))
    rng = random.Random(int(os.environ.get("VGI_FUZZ_SEED", "7")))
    quick_reads = 0
    for _ in range(cases):
        method, value = rng.choice(VALUES)
        data = bytearray(_answer(method, value))
        for _ in range(rng.randint(1, 3)):
            # half the flips land near the end: in the values, where a read in place must agree
            near_end = rng.random() < 0.5
            at = rng.randrange(len(data) - 40, len(data)) if near_end else rng.randrange(len(data))
            data[at] = rng.randrange(256) if rng.random() < 0.7 else data[at] ^ 1
        shape = answer_shape(METHODS[method])
        assert shape is not None
        reader = _reader(bytes(data))
        got = read_plain_answer(reader, shape)
        if got is MISS:
            assert reader.read() == bytes(data)  # nothing consumed
            continue
        quick_reads += 1
        expected = _general(method, bytes(data))
        assert expected is not MISS, (
            f"read in place, refused by the general reader: {bytes(data)!r}"
        )
        assert got == expected or (got != got and expected != expected)  # NaN is NaN
    assert quick_reads > cases // 25  # flipped value bytes are still read in place


def test_calls_over_a_pipe_read_plain_answers_in_place_and_the_rest_in_general() -> None:
    logs: list[Message] = []
    with serve_pipe(Service, ServiceImpl(), on_log=logs.append) as proxy:
        connection = connection_of(proxy)
        general = connection.read_response
        general_reads: list[str] = []

        def counted(method: str, rows: bool = False) -> Any:
            general_reads.append(method)
            return general(method, rows)

        connection.read_response = counted  # type: ignore[method-assign]
        assert proxy.add(a=1.5, b=2.0) == 3.5
        assert proxy.greet(name="quick") == "hello quick!"
        assert proxy.echo_optional(value=None) is None
        assert proxy.echo_optional(value=-5) == -5
        proxy.noop()
        assert general_reads == []
        assert proxy.logs(count=2) == 2  # logs come first: the general reader delivers them
        assert [m.message for m in logs if m.level is Level.INFO][:2] == ["log 0", "log 1"]
        with pytest.raises(Exception, match="boom"):
            proxy.fail(message="boom")
        assert general_reads == ["logs", "fail"]
        assert proxy.add(a=1.0, b=1.0) == 2.0  # the channel is still in step
