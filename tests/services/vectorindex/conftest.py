"""Fixtures of the vector index tests: an in-process service over a pipe, reopenable."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from vgi_rpc.services import vectorindex
from vgi_rpc.services.vectorindex.client import VectorIndexClient

Open = Callable[..., AbstractContextManager[VectorIndexClient]]


@pytest.fixture
def open_index(tmp_path: Any) -> Open:
    """``open_index(**options)``: an in-process service on this test's store (inline maintenance)."""
    store = str(tmp_path / "store")

    @contextlib.contextmanager
    def opener(**options: Any) -> Iterator[VectorIndexClient]:
        options.setdefault("background", False)
        with vectorindex.connect(store=store, **options) as client:
            yield client

    return opener


def random_vectors(n: int, dim: int, seed: int = 0) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def brute_force(
    base: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], k: int, metric: str = "cosine"
) -> npt.NDArray[np.int64]:
    """Exact top-k row positions, for checking results."""
    if metric == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    if metric == "l2":
        scores = -((queries[:, None, :] - base[None, :, :]) ** 2).sum(axis=2)
    else:
        scores = queries @ base.T
    result: npt.NDArray[np.int64] = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return result
