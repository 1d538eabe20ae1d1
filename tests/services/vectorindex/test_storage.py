"""Vectors are held once where faiss keeps them as upserted, and always come back bit for bit."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.services.vectorindex.conftest import Open, random_vectors
from vgi_rpc.services.vectorindex._engine import Engine, IndexConfig

N, DIM = 3000, 16  # IVF trains from 2,048 rows


def awkward_vectors(n: int, dim: int) -> npt.NDArray[np.float32]:
    """Values whose bits a normalise-and-scale round trip would change: tiny, huge, -0.0."""
    vectors = random_vectors(n, dim, seed=5)
    vectors[:, 0] *= 1e-30
    vectors[:, 1] *= 1e15
    vectors[::7, 2] = -0.0
    return vectors


def bits(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.uint32]:
    return np.ascontiguousarray(vectors, np.float32).view(np.uint32)


def table_vectors(table: pa.Table) -> npt.NDArray[np.float32]:
    flat = pc.list_flatten(table.column("vector")).to_numpy()
    vectors: npt.NDArray[np.float32] = flat.reshape(table.num_rows, DIM)
    return vectors


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_fetch_and_export_are_bit_exact_through_rebuild_and_restart(
    open_index: Open, kind: str, metric: str
) -> None:
    vectors = awkward_vectors(N, DIM)
    ids = [f"v{i:05d}" for i in range(N)]
    with open_index() as vi:
        vi.create_index("n", DIM, metric=metric, kind=kind)
        for lo in range(0, N, 1000):
            vi.upsert("n", ids[lo : lo + 1000], vectors[lo : lo + 1000])
        vi.upsert("n", ids[:5], vectors[100:105])  # replace five (masked rows until a rebuild)
        vectors[:5] = vectors[100:105]
        vi.delete("n", ids=ids[-5:])
        fetched = vi.fetch("n", ids[:50])
        assert bits(table_vectors(fetched.table)).tolist() == bits(vectors[:50]).tolist()
        vi.compact("n")  # rebuilt (IVF: trained) from the vectors the engine reads back
        hits = vi.query("n", vectors[200:203], top_k=5, include_data=True)
        rows = [int(str(i)[1:]) for i in hits.column("id").to_pylist()]
        assert hits.num_rows == 15
        assert np.array_equal(bits(table_vectors(hits)), bits(vectors[rows]))
        late = awkward_vectors(10, DIM) * 3
        vi.upsert("n", [f"w{i}" for i in range(10)], late)  # added to the rebuilt index
        assert np.array_equal(
            bits(table_vectors(vi.fetch("n", [f"w{i}" for i in range(10)]).table)), bits(late)
        )
        vi.snapshot("n")
    with open_index() as vi:  # restart from the snapshot
        exported = vi.export_table("n")
        assert exported.column("id").to_pylist() == ids[:-5] + [f"w{i}" for i in range(10)]
        expected = np.concatenate([vectors[:-5], late])
        assert np.array_equal(bits(table_vectors(exported)), bits(expected))


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_only_cosine_keeps_a_second_copy(kind: str) -> None:
    vectors = random_vectors(N, DIM)
    per_vector = {}
    for metric in ("cosine", "dot", "l2"):
        engine = Engine(IndexConfig(DIM, metric, kind))
        engine.upsert([f"v{i}" for i in range(N)], vectors, None)
        engine = engine.rebuilt()  # IVF: trained now
        assert engine.index is not None
        assert engine.owns_vectors == (metric == "cosine")
        assert len(engine._vectors) == (len(engine._alive) if metric == "cosine" else 0)
        per_vector[metric] = engine.memory_bytes() / N
    extra = DIM * 4 - (8 if kind == "ivf" else 0)  # IVF pays 8 bytes a row for its direct map
    assert per_vector["cosine"] - per_vector["dot"] >= extra
    assert per_vector["dot"] == per_vector["l2"]


def test_snapshot_whose_index_disagrees_with_its_rows_is_rebuilt_from_the_rows() -> None:
    vectors = random_vectors(100, DIM)
    engine = Engine(IndexConfig(DIM, "dot"))
    engine.upsert([f"v{i}" for i in range(100)], vectors, None)
    table, index = engine.to_table(), engine.index_bytes()
    assert index is not None
    other = Engine(IndexConfig(DIM, "dot"))
    other.upsert([f"v{i}" for i in range(100)], vectors + 1, None)
    with pytest.raises(ValueError, match="differ"):
        Engine.from_table(IndexConfig(DIM, "dot"), table, other.index_bytes())
    restored = Engine.from_table(IndexConfig(DIM, "dot"), table, index)
    assert np.array_equal(restored.all_vectors(), vectors)


def test_cosine_normalises_vectors_whose_squares_overflow_float32() -> None:
    engine = Engine(IndexConfig(4, "cosine"))
    huge = np.array([[3e20, 4e20, 0, 0], [0, 0, 1e-30, 0]], np.float32)
    unit = engine.prepare(huge)
    assert np.allclose(unit, np.array([[0.6, 0.8, 0, 0], [0, 0, 1, 0]]))
