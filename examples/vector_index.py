"""The vector index service: upsert, filtered query, delete, restart.

Run with ``python examples/vector_index.py``. The service runs as a worker
process persisting to a temporary directory; see docs/vectorindex.md.
"""

from __future__ import annotations

import tempfile

import numpy as np

from vgi_rpc.services import vectorindex
from vgi_rpc.services.vectorindex.demo import run_demo


def main() -> None:
    run_demo()
    # The same client in-process (no worker), with typed errors for bad input.
    with tempfile.TemporaryDirectory() as store, vectorindex.connect(store=store) as vi:
        vi.create_index("docs", 3, metric="l2")
        offset = vi.upsert(
            "docs", ["a", "b"], np.eye(3, dtype=np.float32)[:2], [{"lang": "en"}, {"lang": "fr"}]
        )
        table = vi.query("docs", [[1, 0, 0]], top_k=2, min_offset=offset)
        print("nearest to [1, 0, 0]:", table["id"].to_pylist())
        try:
            vi.query("docs", [[1, 0]], top_k=1)
        except vectorindex.DimensionMismatchError as exc:
            print("typed error:", type(exc).__name__, "-", exc)


if __name__ == "__main__":
    main()
