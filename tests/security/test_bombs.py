"""Decompression bomb and huge bodies against the default HTTP worker: refused, and peak
memory (VmHWM) under twice the default request cap (issue 9, finding 3)."""

from __future__ import annotations

import pytest
from fuzz_http import bomb

MiB = 1 << 20
DEFAULT_CAP = 256 * MiB


def _check(result: dict[str, object]) -> None:
    peak, cap = int(str(result["peak"])), int(str(result["cap"]))
    assert result["advertised"], "the default worker advertises no VGI-Max-Request-Bytes"
    assert cap == DEFAULT_CAP
    assert peak < 2 * cap, f"peak RSS {peak / MiB:.0f} MiB with a {cap / MiB:.0f} MiB cap"
    assert result["status"] == 413, result["detail"]
    assert result["alive"], "the worker does not answer after the bomb"


@pytest.mark.slow
def test_zstd_bomb() -> None:
    """About 130 KB of zstd inflating to 4 GiB."""
    _check(bomb("zstd"))


@pytest.mark.slow
def test_512_mib_body() -> None:
    _check(bomb("plain"))


@pytest.mark.slow
def test_512_mib_chunked_body() -> None:
    """No Content-Length: the cap must hold while the body streams in."""
    _check(bomb("chunked"))


@pytest.mark.slow
def test_gzip_bomb() -> None:
    """1 GiB of zeros in one gzip member: decoding stops at the cap too."""
    _check(bomb("gzip"))
