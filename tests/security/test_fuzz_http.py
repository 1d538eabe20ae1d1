"""Mutated HTTP requests (bodies, routes, content types, encodings, tokens): the worker
stays up, answers below 500, never drops a connection unanswered, never answers more
than the request's legitimate result, and stays within its memory bound."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_corpus import http_corpus, tokens_of
from fuzz_http import fuzz_http, http_worker

from tests.security._harness import SEED

INPUTS = 5_000


def test_http_corpus_has_routes_and_tokens() -> None:
    with http_worker() as worker:
        corpus = http_corpus(worker.url)
    paths = {item.path for item in corpus}
    assert any(p.endswith("/init") for p in paths)
    assert any(p.endswith("/exchange") for p in paths)
    assert "/vgi/echo_string" in paths
    assert "/vgi/__describe__" in paths
    assert len(tokens_of(corpus)) >= 20
    assert all(item.base_reply > 0 for item in corpus if item.path != "/vgi/__describe__")


@pytest.mark.slow
def test_http_fuzz(tmp_path: Path) -> None:
    summary = fuzz_http(INPUTS, SEED, save_dir=str(tmp_path))
    print(summary.report())
    assert summary.inputs == INPUTS
    assert summary.findings == [], summary.report()
    assert "5xx" not in summary.statuses
    # the mutations reach the methods, not only the refusal paths
    assert summary.statuses.get("200", 0) > INPUTS // 20
    assert summary.peak_rss < 1 << 30
    assert summary.seconds < 60
