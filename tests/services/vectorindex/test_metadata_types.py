"""Metadata types: a batch the namespace's rows cannot be concatenated with is refused before
the log; new fields, map keys and one row's metadata are bounded."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests.services.vectorindex.conftest import Open
from vgi_rpc.services import vectorindex as vix
from vgi_rpc.services.vectorindex import _batches, _namespace
from vgi_rpc.services.vectorindex.client import VectorIndexClient


def meta(array: pa.Array[Any], name: str = "m") -> pa.Array[Any]:
    return pa.StructArray.from_arrays([array], [name])


def zeros(n: int) -> np.ndarray[Any, Any]:
    return np.zeros((n, 1), np.float32)


def everything_still_works(vi: VectorIndexClient) -> None:
    vi.stats()
    vi.query("n", zeros(1), top_k=5, include_metadata=True, filter={"m": {"$exists": True}})
    assert vi.fetch("n", ["r0"]).table.num_rows == 1
    vi.snapshot("n")


# (first value, second value) of field "m": the second does not fit what the rows hold
POISON: dict[str, tuple[pa.Array[Any], pa.Array[Any]]] = {
    "int64 2**60 then float64": (pa.array([2**60 + 1]), pa.array([1.5])),
    "uint64 2**63 then int64": (pa.array([2**63 + 5], pa.uint64()), pa.array([1])),
    "int64 then uint64 2**63": (pa.array([1]), pa.array([2**63 + 5], pa.uint64())),
    "timestamp[s] far then [ns]": (
        pa.array([10**12], pa.timestamp("s")),
        pa.array([1], pa.timestamp("ns")),
    ),
    "int64 then decimal": (pa.array([1]), pa.array([1], pa.decimal128(10, 2))),
    "none then run_end_encoded": (
        pa.nulls(1),
        pa.RunEndEncodedArray.from_arrays(pa.array([1]), pa.array([7])),
    ),
    "none then sparse_union": (
        pa.nulls(1),
        pa.UnionArray.from_sparse(pa.array([0], pa.int8()), [pa.array([5], pa.int8())]),
    ),
    "none then fixed_size_binary": (pa.nulls(1), pa.array([b"xyz"], pa.binary(3))),
    "none then dictionary": (pa.nulls(1), pa.array(["a"]).dictionary_encode()),
    "none then list of lists": (pa.nulls(1), pa.array([[[1]]])),
}


@pytest.mark.parametrize("case", sorted(POISON))
def test_a_type_the_rows_cannot_take_is_refused_before_the_log(open_index: Open, case: str) -> None:
    first, second = POISON[case]
    with open_index() as vi:
        vi.create_index("n", 1, metric="l2")
        offset = vi.upsert("n", ["r0"], zeros(1), meta(first))
        with pytest.raises(vix.InvalidArgumentError, match="metadata"):
            vi.upsert("n", ["r1"], zeros(1), meta(second))
        assert vi.stats().namespaces[0].offset == offset  # nothing logged
        everything_still_works(vi)
    with open_index() as vi:  # and the log replays
        everything_still_works(vi)


WIDENINGS: dict[str, tuple[pa.Array[Any], pa.Array[Any], list[object]]] = {
    "int8 then int64": (pa.array([1], pa.int8()), pa.array([1000]), [1, 1000]),
    "int64 then float64": (pa.array([3]), pa.array([1.5]), [3.0, 1.5]),
    "string then large_string": (pa.array(["a"]), pa.array(["b"], pa.large_string()), ["a", "b"]),
    "null then int": (pa.nulls(1), pa.array([4]), [None, 4]),
    "int then null": (pa.array([4]), pa.nulls(1), [4, None]),
    "list<int8> then large_list<int64>": (
        pa.array([[1]], pa.list_(pa.int8())),
        pa.array([[1000]], pa.large_list(pa.int64())),
        [[1], [1000]],
    ),
    "struct<a> then struct<b>": (
        pa.array([{"a": 1}]),
        pa.array([{"b": "x"}]),
        [{"a": 1, "b": None}, {"a": None, "b": "x"}],
    ),
    "timestamps and dates": (
        pa.array([datetime.datetime(2024, 1, 2)]),
        pa.array([datetime.datetime(2025, 1, 2)]),
        [datetime.datetime(2024, 1, 2), datetime.datetime(2025, 1, 2)],
    ),
}


@pytest.mark.parametrize("case", sorted(WIDENINGS))
def test_a_type_change_arrow_performs_still_works(open_index: Open, case: str) -> None:
    first, second, expected = WIDENINGS[case]
    for reopen in (False, True):
        with open_index() as vi:
            if not reopen:
                vi.create_index("n", 1, metric="l2")
                vi.upsert("n", ["r0"], zeros(1), meta(first))
                vi.upsert("n", ["r1"], zeros(1), meta(second))
            table = vi.fetch("n", ["r0", "r1"]).table
            rows: list[Any] = table.column("metadata").to_pylist()
            assert [row["m"] for row in rows] == expected


def test_a_namespace_holds_at_most_so_many_fields(
    open_index: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_namespace, "MAX_METADATA_FIELDS", 5)
    with open_index() as vi:
        vi.create_index("n", 1, metric="l2")
        vi.upsert("n", ["a"], zeros(1), [{"f1": 1, "f2": 2, "f3": {"x": 1}}])  # 4 fields
        vi.upsert("n", ["b"], zeros(1), [{"f4": 1}])
        with pytest.raises(vix.InvalidArgumentError, match="holds at most 5"):
            vi.upsert("n", ["c"], zeros(1), [{"f5": 1}])
        vi.upsert("n", ["c"], zeros(1), [{"f1": 7}])  # known fields: fine
        assert vi.list_ids("n").ids == ["a", "b", "c"]


def test_new_fields_cannot_null_fill_more_than_the_budget(
    open_index: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_namespace, "MAX_EXPANSION_BYTES", 10_000)
    with open_index() as vi:
        vi.create_index("n", 1, metric="l2")
        vi.upsert("n", [f"r{i}" for i in range(2_000)], zeros(2_000))
        with pytest.raises(vix.InvalidArgumentError, match="null-filled for 2000 rows"):
            vi.upsert("n", ["w"], zeros(1), [{"wide": 1}])  # 2,000 x 9 bytes > 10,000
        vi.upsert("n", ["w"], zeros(1), [{"flag": True}])  # 2,000 x 2 bytes: fine
        assert vi.fetch("n", ["w"]).table.column("metadata").to_pylist() == [{"flag": True}]


def test_map_metadata_cannot_expand_past_the_budget(
    open_index: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_batches, "MAX_EXPANSION_BYTES", 100_000)
    rows = [[(f"k{i % 50}", i)] for i in range(1_000)]  # 1,000 rows x 50 keys x 9 bytes
    with open_index() as vi:
        vi.create_index("n", 1, metric="l2")
        ids = [f"r{i}" for i in range(1_000)]
        with pytest.raises(vix.InvalidArgumentError, match="distinct keys would take"):
            vi.upsert("n", ids, zeros(1_000), pa.array(rows, pa.map_(pa.utf8(), pa.int64())))
        wide = pa.array([[("k", b"x")]], pa.map_(pa.utf8(), pa.binary(1)))
        with pytest.raises(vix.InvalidArgumentError, match="map value has type fixed_size"):
            vi.upsert("n", ["a"], zeros(1), wide)
        vi.upsert("n", ids[:100], zeros(100), pa.array(rows[:100], pa.map_(pa.utf8(), pa.int64())))
        assert vi.stats().namespaces[0].count == 100


ROW_CAP: dict[str, Callable[[int], pa.Array[Any]]] = {
    "string": lambda n: pa.array([{"s": "x" * n}]),
    "list": lambda n: pa.array([{"l": list(range(n // 8))}]),
    "nested binary": lambda n: pa.array([{"a": {"b": b"x" * n}}]),
}


@pytest.mark.parametrize("case", sorted(ROW_CAP))
def test_one_rows_metadata_is_bounded(
    open_index: Open, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.setattr(_batches, "MAX_ROW_METADATA_BYTES", 1_000)
    with open_index() as vi:
        vi.create_index("n", 1, metric="l2")
        with pytest.raises(vix.InvalidArgumentError, match="metadata of row 0 takes"):
            vi.upsert("n", ["a"], zeros(1), ROW_CAP[case](2_000))
        vi.upsert("n", ["a"], zeros(1), ROW_CAP[case](500))
        assert vi.stats().namespaces[0].count == 1
