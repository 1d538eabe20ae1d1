"""Filter dicts compiled to pyarrow expressions: operator semantics and malformed input."""

from __future__ import annotations

import pyarrow as pa
import pytest

from vgi_rpc.services.vectorindex import FilterError
from vgi_rpc.services.vectorindex._filters import compile_filter, parse_filter

TABLE = pa.table(
    {
        "genre": ["drama", "comedy", None, "drama", "horror"],
        "year": [2019, 2020, 2021, 2022, None],
        "score": [1.5, 2.5, 3.5, 4.5, 5.5],
        "new": [False, True, True, False, None],
        "row": [0, 1, 2, 3, 4],
    }
)


def rows(spec: dict[str, object]) -> list[int]:
    expr = compile_filter(spec, TABLE.schema)
    return [int(str(r)) for r in TABLE.filter(expr).column("row").to_pylist()]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"genre": "drama"}, [0, 3]),
        ({"genre": {"$eq": "drama"}}, [0, 3]),
        ({"genre": {"$ne": "drama"}}, [1, 2, 4]),
        ({"year": {"$gt": 2020}}, [2, 3]),
        ({"year": {"$gte": 2020, "$lt": 2022}}, [1, 2]),
        ({"year": {"$lte": 2019}}, [0]),
        ({"score": {"$gt": 2}}, [1, 2, 3, 4]),
        ({"genre": {"$in": ["comedy", "horror"]}}, [1, 4]),
        ({"genre": {"$nin": ["comedy", "horror"]}}, [0, 2, 3]),
        ({"year": {"$exists": False}}, [4]),
        ({"genre": {"$exists": True}}, [0, 1, 3, 4]),
        ({"new": True}, [1, 2]),
        ({"genre": {"$eq": "drama"}, "year": {"$gte": 2020}}, [3]),
        ({"$or": [{"genre": "comedy"}, {"year": 2019}]}, [0, 1]),
        (
            {"$and": [{"score": {"$gt": 2}}, {"$or": [{"new": True}, {"genre": "horror"}]}]},
            [1, 2, 4],
        ),
        ({"missing": "x"}, []),
        ({"missing": {"$ne": "x"}}, [0, 1, 2, 3, 4]),
        ({"missing": {"$exists": False}}, [0, 1, 2, 3, 4]),
        ({"missing": {"$nin": [1]}}, [0, 1, 2, 3, 4]),
        ({}, [0, 1, 2, 3, 4]),
    ],
)
def test_operators(spec: dict[str, object], expected: list[int]) -> None:
    assert rows(spec) == expected


def test_dotted_names_reach_into_structs() -> None:
    table = pa.table({"m": [{"a": {"b": 1}}, {"a": {"b": 2}}], "row": [0, 1]})
    expr = compile_filter({"m.a.b": {"$gt": 1}}, table.schema)
    assert table.filter(expr).column("row").to_pylist() == [1]


@pytest.mark.parametrize(
    "spec",
    [
        {"year": {"$regex": "x"}},
        {"$not": {"year": 1}},
        {"$and": {"year": 1}},
        {"$or": []},
        {"year": {"$in": "2019"}},
        {"year": {"$exists": 1}},
        {"year": {"$gt": [1]}},
        {"year": {"$gt": "2019"}},
        {"genre": {"$lt": 3}},
        {"year": {}},
        {"year": {"$eq": {"nested": 1}}},
        {"": 1},
    ],
)
def test_malformed_filters(spec: dict[str, object]) -> None:
    with pytest.raises(FilterError):
        compile_filter(spec, TABLE.schema)


def test_depth_limit() -> None:
    spec: dict[str, object] = {"year": 1}
    for _ in range(40):
        spec = {"$and": [spec]}
    with pytest.raises(FilterError, match="deeper"):
        compile_filter(spec, TABLE.schema)


@pytest.mark.parametrize("text", ["{", "[1]", '"x"', "null"])
def test_parse_refuses_non_objects(text: str) -> None:
    with pytest.raises(FilterError):
        parse_filter(text)
