"""A stream batch framed and decoded inline is the batch the general reader reads; damage is refused alike."""

from __future__ import annotations

import io
import os
import random
from typing import Any, cast

import pyarrow as pa
import pytest

from vgi_rpc import IpcValidation
from vgi_rpc._errors import IPCError, TransportError
from vgi_rpc._ipc import encode_stream
from vgi_rpc._ipc_reader import IpcStreamReader, open_stream_reader
from vgi_rpc._limits import DEFAULT_LIMITS, ResourceLimits


def _schema(*fields: pa.Field[Any]) -> pa.Schema:
    return pa.schema(list(fields))


FLOATS = _schema(pa.field("x", pa.float64()))
MIXED = _schema(
    pa.field("i", pa.int64()), pa.field("s", pa.utf8()), pa.field("l", pa.list_(pa.int32()))
)
STRINGS = _schema(pa.field("i", pa.int32()), pa.field("s", pa.utf8()))
DICTIONARY = pa.schema([pa.field("d", pa.dictionary(pa.int8(), pa.utf8()))])


def _stream(schema: pa.Schema) -> bytes:
    """Batches of every kind the inline path must read or leave: small, empty, with metadata, nulls, large."""
    if schema is DICTIONARY:
        batches = [pa.RecordBatch.from_pydict({"d": ["a", "b", "a"]}, schema=schema)] * 2
        return encode_stream(schema, [(b, None) for b in batches]).to_pybytes()
    if schema is FLOATS:
        rows: list[list[float | None]] = [[1.5], [None], [2.0, 3.0, -4.5], [], [0.25] * 9000]
        data = [pa.RecordBatch.from_pydict({"x": r}, schema=schema) for r in rows]
    elif schema is STRINGS:
        data = [
            pa.RecordBatch.from_pydict({"i": [1], "s": ["wörld"]}, schema=schema),
            pa.RecordBatch.from_pydict(
                {"i": [2, None], "s": [None, "abcdefgh" * 3]}, schema=schema
            ),
        ]
    else:
        data = [
            pa.RecordBatch.from_pydict(
                {"i": [1, None, 3], "s": ["a", "ü", None], "l": [[1], None, [2, 3]]}, schema=schema
            ),
            pa.RecordBatch.from_pydict({"i": [7], "s": ["x"], "l": [[]]}, schema=schema),
        ]
    items: list[tuple[pa.RecordBatch, dict[bytes, bytes] | None]] = [(b, None) for b in data]
    items.insert(1, (data[0], {b"vgi_rpc.log_level": b"INFO", b"k": b"v"}))
    return encode_stream(schema, items).to_pybytes()


def _reader(data: bytes, inline: bool, limits: ResourceLimits) -> IpcStreamReader | None:
    source = cast("io.BufferedReader", io.BufferedReader(io.BytesIO(data), 1 << 16))
    reader = open_stream_reader(source, limits)
    if reader is not None:
        assert reader._plain == (reader._replay is None)  # on by default for a buffered reader
        reader._plain = inline and reader._plain
    return reader


Outcome = list[tuple[str, object, object]]


def _outcomes(
    data: bytes, inline: bool, validation: IpcValidation, limits: ResourceLimits
) -> Outcome:
    """Every read of the stream until its end or the first error, as comparable values."""
    seen: Outcome = []
    try:
        reader = _reader(data, inline, limits)
        while reader is not None:
            item = reader.read(validation)
            if item is None:
                seen.append(("end", None, None))
                break
            batch, metadata = item
            # An unvalidated batch from damaged bytes is not safe to walk: only its shape is compared.
            shape = (
                batch.serialize().to_pybytes()
                if validation is not IpcValidation.NONE
                else batch.num_rows
            )
            seen.append(("batch", shape, metadata))
    except (IPCError, TransportError) as exc:
        seen.append(("error", type(exc), str(exc)))
    return seen


@pytest.mark.parametrize(
    "schema", [FLOATS, STRINGS, MIXED, DICTIONARY], ids=["floats", "strings", "nested", "dict"]
)
def test_intact_streams_read_the_same_inline_and_in_general(schema: pa.Schema) -> None:
    data = _stream(schema)
    inline = _outcomes(data, True, IpcValidation.FULL, DEFAULT_LIMITS)
    assert inline == _outcomes(data, False, IpcValidation.FULL, DEFAULT_LIMITS)
    assert inline[-1] == ("end", None, None)
    with_metadata = [m for kind, _, m in inline if kind == "batch" and m]
    assert with_metadata == (
        [] if schema is DICTIONARY else [{b"vgi_rpc.log_level": b"INFO", b"k": b"v"}]
    )


def test_the_inline_path_reads_the_small_batches_of_a_pipe() -> None:
    data = _stream(FLOATS)
    reader = _reader(data, True, DEFAULT_LIMITS)
    assert reader is not None
    general: list[object] = []
    original = reader._read

    def counted(validation: IpcValidation, rows: bool, first: object) -> object:
        general.append(first)
        return original(validation, rows, first)

    reader._read = counted  # type: ignore[method-assign,assignment]
    while reader.read(IpcValidation.FULL) is not None:
        pass
    # 1.5, null, three rows, no rows, 9000 rows: the one with metadata, the empty one,
    # the large one and the end-of-stream marker are left to the general path
    assert len(general) == 4
    assert general[-1] is None


@pytest.mark.parametrize(
    ("limits", "refusal"),
    [
        (ResourceLimits(min_free_rows=0, max_rows_per_byte=0), "max_rows_per_byte"),
        (ResourceLimits(max_message_bytes=300), "max_message_bytes"),
        (ResourceLimits(max_metadata_bytes=100), "max_metadata_bytes"),
    ],
    ids=["rows", "message", "header"],
)
def test_limits_hold_inline(limits: ResourceLimits, refusal: str) -> None:
    data = _stream(FLOATS)
    inline = _outcomes(data, True, IpcValidation.FULL, limits)
    assert inline == _outcomes(data, False, IpcValidation.FULL, limits)
    assert inline[-1][0] == "error"
    assert refusal in str(inline[-1][2])


@pytest.mark.parametrize("validation", list(IpcValidation))
def test_mutated_and_truncated_streams_agree_with_the_general_reader(
    validation: IpcValidation,
) -> None:
    cases = int(os.environ.get("VGI_PLAIN_STREAM_FUZZ_CASES", "1500"))
    rng = random.Random(int(os.environ.get("VGI_FUZZ_SEED", "11")))
    streams = [_stream(FLOATS), _stream(STRINGS), _stream(MIXED)]
    errors = batches = 0
    for _ in range(cases):
        data = bytearray(rng.choice(streams))
        if rng.random() < 0.25:
            del data[rng.randrange(1, len(data)) :]
        for _ in range(rng.randint(0 if len(data) < len(streams[0]) else 1, 3)):
            at = rng.randrange(len(data))
            data[at] = rng.randrange(256) if rng.random() < 0.7 else data[at] ^ 1
        inline = _outcomes(bytes(data), True, validation, DEFAULT_LIMITS)
        general = _outcomes(bytes(data), False, validation, DEFAULT_LIMITS)
        assert inline == general, bytes(data)
        errors += inline[-1][0] == "error"
        batches += sum(kind == "batch" for kind, _, _ in inline)
    assert errors > cases // 10
    assert batches > cases
