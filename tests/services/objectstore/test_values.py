"""Every kind of value round-trips exactly (same type, same value) over unix, TCP and HTTP."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # no stubs installed
import pyarrow as pa
import pytest

from tests.services.objectstore.conftest import open_client
from vgi_rpc.services.objectstore import ObjectStoreClient, RunningStore
from vgi_rpc.services.objectstore._codec import decode, encode


def _arrow_values() -> list[object]:
    table = pa.table(
        {
            "i": pa.array([1, None, 3], pa.int32()),
            "s": ["a", "é", None],
            "l": [[1, 2], [], None],
            "st": [{"x": 1.5}, {"x": None}, None],
            "d": pa.array(["u", "v", "u"]).dictionary_encode(),
            "ts": pa.array([0, 1, 2], pa.timestamp("us", tz="UTC")),
        },
        metadata={"owner": "tests"},
    )
    return [
        table,
        pa.concat_tables([table, table]),  # two batches
        table.slice(0, 0),
        table.to_batches()[0],
        pa.array([1.5, None, -0.0]),
        pa.array(["x", None], pa.large_string()),
        pa.chunked_array([[1, 2], [3]], pa.int16()),
        pa.chunked_array([], pa.float32()),
    ]


def _numpy_values() -> list[object]:
    base = np.arange(24).reshape(2, 3, 4)
    arrays: list[object] = []
    for dtype in [
        "i1",
        "i2",
        "i4",
        "i8",
        "u1",
        "u2",
        "u4",
        "u8",
        "f2",
        "f4",
        "f8",
        "c8",
        "c16",
        "?",
        ">i4",
    ]:
        typed = (base % 5).astype(dtype)
        arrays += [typed, np.asfortranarray(typed)]
    arrays += [
        np.zeros((0, 7)),
        np.array(3.25),
        np.arange(10.0)[::3],  # not contiguous: comes back contiguous and equal
        np.float32(1.5),
        np.int64(-7),
        np.bool_(True),
        np.arange(3 << 20, dtype=np.float64),  # 24 MiB: larger than any chunk
    ]
    return arrays


PYTHON_VALUES: list[object] = [
    None,
    True,
    False,
    0,
    -(2**63),
    2**100,
    1.1,
    -0.0,
    math.inf,
    "",
    "héllo ✓",
    b"",
    b"\x00\xff" * 1000,
    [],
    (),
    {},
    [1, "a", None, (2.5, b"x"), {"k": [True]}],
    ((1,), [()], {(1, 2): "tuple key", 3: 4.0, None: "none key"}),
    {"nested": {"deep": [[[]]]}},
    "x" * 300_000,  # above the inline limit
]


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, pa.Table | pa.RecordBatch):
        return bool(a.equals(b, check_metadata=True))  # type: ignore[arg-type]
    if isinstance(a, pa.Array):
        assert isinstance(b, pa.Array)
        return bool(a.equals(b))
    if isinstance(a, pa.ChunkedArray):
        assert isinstance(b, pa.ChunkedArray)
        return bool(a.equals(b)) and a.num_chunks == b.num_chunks
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b))
            and (a.flags.f_contiguous == b.flags.f_contiguous or a.ndim < 2)
        )
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and bool(a == b)  # type: ignore[attr-defined]
    if isinstance(a, pd.DataFrame):
        assert isinstance(b, pd.DataFrame)
        return bool(a.equals(b)) and list(a.dtypes) == list(b.dtypes) and a.index.equals(b.index)
    if isinstance(a, float):
        assert isinstance(b, float)
        return math.copysign(1, a) == math.copysign(1, b) and (
            a == b or (math.isnan(a) and math.isnan(b))
        )
    if isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


FRAMES = [
    pd.DataFrame({"a": [1, 2], "b": ["x", None], "c": [0.5, float("nan")]}),
    pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index(["p", "q"], name="key")),
]
ALL_VALUES = _arrow_values() + _numpy_values() + PYTHON_VALUES + FRAMES


def test_nan_keeps_its_float_type_in_the_codec() -> None:
    back = decode(encode(float("nan")).to_buffer())
    assert isinstance(back, float)
    assert math.isnan(back)


def test_every_value_round_trips_exactly(client: ObjectStoreClient) -> None:
    ids = [client.put(value) for value in ALL_VALUES]
    for value, oid in zip(ALL_VALUES, ids, strict=True):
        back = client.get(oid)
        assert _same(value, back), (
            type(value),
            value if not hasattr(value, "shape") else value.shape,
        )
    client.delete(ids)


def test_a_python_float_stays_a_float64(client: ObjectStoreClient) -> None:
    value = 0.1 + 0.2  # not representable in float32
    back = client.get(client.put(value))
    assert type(back) is float
    assert back == value


@pytest.mark.parametrize("value", [object(), {1, 2}, bytearray(b"x"), np.array(["s"]), [object()]])
def test_unsupported_values_are_refused_before_anything_is_sent(
    running: RunningStore, value: object
) -> None:
    with open_client(running, "unix") as client:
        with pytest.raises(TypeError):
            client.put(value)
        assert client.list_objects().objects == []
