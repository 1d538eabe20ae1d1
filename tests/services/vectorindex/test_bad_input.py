"""Each bad input is a clear typed error, and the server keeps serving."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pytest

from tests.services.vectorindex.conftest import Open, random_vectors
from vgi_rpc import RpcError
from vgi_rpc.services import vectorindex as vix
from vgi_rpc.services.vectorindex.client import VectorIndexClient

DIM = 4
NAN = np.array([[1, np.nan, 0, 0]], np.float32)
INF = np.array([[1, np.inf, 0, 0]], np.float32)

CASES: dict[str, tuple[type[vix.VectorIndexError], str, Callable[[VectorIndexClient], object]]] = {
    "upsert wrong dimension": (
        vix.DimensionMismatchError,
        "dimension 3",
        lambda vi: vi.upsert("n", ["x"], [[1, 2, 3]]),
    ),
    "query wrong dimension": (
        vix.DimensionMismatchError,
        "dimension 5",
        lambda vi: vi.query("n", [[1, 2, 3, 4, 5]], top_k=1),
    ),
    "upsert NaN": (vix.InvalidVectorError, "NaN", lambda vi: vi.upsert("n", ["x"], NAN)),
    "upsert infinity": (vix.InvalidVectorError, "infinity", lambda vi: vi.upsert("n", ["x"], INF)),
    "query NaN": (vix.InvalidVectorError, "finite", lambda vi: vi.query("n", NAN, top_k=1)),
    "null vector": (
        vix.InvalidVectorError,
        "null",
        lambda vi: vi.upsert("n", ["x"], pa.array([None], pa.list_(pa.float32(), DIM))),
    ),
    "duplicate ids": (
        vix.DuplicateIdError,
        "'d'",
        lambda vi: vi.upsert("n", ["d", "e", "d"], random_vectors(3, DIM)),
    ),
    "empty id": (
        vix.InvalidArgumentError,
        "non-empty",
        lambda vi: vi.upsert("n", [""], random_vectors(1, DIM)),
    ),
    "top_k 0": (
        vix.InvalidArgumentError,
        "top_k",
        lambda vi: vi.query("n", random_vectors(1, DIM), top_k=0),
    ),
    "top_k 10001": (
        vix.InvalidArgumentError,
        "top_k",
        lambda vi: vi.query("n", random_vectors(1, DIM), top_k=10_001),
    ),
    "unknown namespace query": (
        vix.NamespaceNotFoundError,
        "'nope'",
        lambda vi: vi.query("nope", random_vectors(1, DIM)),
    ),
    "unknown namespace upsert": (
        vix.NamespaceNotFoundError,
        "'nope'",
        lambda vi: vi.upsert("nope", ["a"], random_vectors(1, DIM)),
    ),
    "unknown namespace fetch": (
        vix.NamespaceNotFoundError,
        "'nope'",
        lambda vi: vi.fetch("nope", ["a"]),
    ),
    "malformed filter query": (
        vix.FilterError,
        "$regex",
        lambda vi: vi.query("n", random_vectors(1, DIM), filter={"g": {"$regex": "a"}}),
    ),
    "malformed filter json": (
        vix.FilterError,
        "JSON",
        lambda vi: vi.query("n", random_vectors(1, DIM), filter="{not json"),
    ),
    "malformed filter delete": (
        vix.FilterError,
        "$or",
        lambda vi: vi.delete("n", filter={"$or": "x"}),
    ),
    "filter type mismatch": (
        vix.FilterError,
        "compares",
        lambda vi: vi.query("n", random_vectors(1, DIM), filter={"g": {"$gt": 3}}),
    ),
    "unknown metric": (
        vix.InvalidArgumentError,
        "unknown metric",
        lambda vi: vi.create_index("m", DIM, metric="hamming"),
    ),
    "unknown kind": (
        vix.InvalidArgumentError,
        "unknown index kind",
        lambda vi: vi.create_index("m", DIM, kind="lsh"),
    ),
    "bad dim": (vix.InvalidArgumentError, "dim", lambda vi: vi.create_index("m", 0)),
    "bad namespace name": (
        vix.InvalidArgumentError,
        "bad namespace",
        lambda vi: vi.create_index("../etc", DIM),
    ),
    "delete without target": (vix.InvalidArgumentError, "exactly one", lambda vi: vi.delete("n")),
    "metadata type clash": (
        vix.InvalidArgumentError,
        "metadata",
        lambda vi: vi.upsert("n", ["z"], random_vectors(1, DIM), [{"g": 5}]),
    ),
    "min_offset never written": (
        vix.InvalidArgumentError,
        "never written",
        lambda vi: vi.query("n", random_vectors(1, DIM), min_offset=99),
    ),
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VectorIndexClient]:
    with vix.connect(store=str(tmp_path_factory.mktemp("bad")), background=False) as vi:
        vi.create_index("n", DIM)
        vi.upsert("n", ["a", "b"], random_vectors(2, DIM), [{"g": "x"}, {"g": "y"}])
        yield vi


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_a_typed_error(shared: VectorIndexClient, case: str) -> None:
    error, text, call = CASES[case]
    with pytest.raises(error, match=text.replace("$", r"\$")) as info:
        call(shared)
    remote = info.value.__cause__
    assert isinstance(remote, RpcError)
    assert remote.error_kind == error.error_kind
    # still serving, and nothing half-written
    assert shared.query("n", random_vectors(1, DIM), top_k=5).num_rows == 2
    assert shared.list_ids("n").ids == ["a", "b"]


def test_raw_proxy_sees_error_kind(open_index: Open) -> None:
    with open_index() as vi:
        with pytest.raises(RpcError) as info:
            vi.proxy.create_index(namespace="n", dim=4, metric="manhattan")
        assert info.value.error_type == "InvalidArgumentError"
        assert info.value.error_kind == "vectorindex.invalid_argument"


def test_namespaces_and_their_link_memory_are_bounded(
    tmp_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vgi_rpc.services.vectorindex import server

    monkeypatch.setattr(server, "MAX_NAMESPACES", 2)
    with vix.connect(store=str(tmp_path), background=False) as vi:
        with pytest.raises(vix.InvalidArgumentError, match="hnsw_m must be between 1 and 256"):
            vi.create_index("wide", DIM, kind="hnsw", hnsw_m=4096)
        vi.create_index("one", DIM)
        vi.create_index("two", DIM)
        vi.create_index("two", DIM)  # idempotent: not a new namespace
        with pytest.raises(vix.InvalidArgumentError, match="holds 2 namespaces, its limit"):
            vi.create_index("three", DIM)
        vi.drop_index("one")
        vi.create_index("three", DIM)
        assert sorted(n.namespace for n in vi.stats().namespaces) == ["three", "two"]
