"""The fetcher against a scripted HTTP store: chunked, parallel, bounded, strict about ranges."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from vgi_rpc import ExternalStorageError, FetchConfig
from vgi_rpc.external._fetch import Fetcher

URL = "https://store.example/bucket/object.arrow?X-Amz-Signature=secret"
KiB = 1024


def _answer(status: int, body: bytes = b"", **headers: str) -> httpx.Response:
    """A response whose body is streamed (``content=`` would count as already read)."""
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return httpx.Response(status, headers=named, stream=httpx.ByteStream(body))


class Store:
    """Serves one object with ranges; counts requests and how many ran at once."""

    def __init__(
        self, body: bytes, misbehave: Callable[[httpx.Request], httpx.Response | None] | None = None
    ) -> None:
        self.body = body
        self.misbehave = misbehave
        self.ranges: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.ranges.append(request.headers.get("range", ""))
        try:
            time.sleep(0.02)  # long enough for parallel requests to overlap
            if self.misbehave is not None and (answer := self.misbehave(request)) is not None:
                return answer
            match = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers.get("range", ""))
            if match is None:
                return _answer(200, self.body)
            start, end = int(match[1]), min(int(match[2]), len(self.body) - 1)
            content_range = f"bytes {start}-{end}/{len(self.body)}"
            return _answer(206, self.body[start : end + 1], Content_Range=content_range)
        finally:
            with self._lock:
                self.in_flight -= 1


def _fetcher(store: Store, retries: int = 0, **config: int) -> Fetcher:
    fetcher = Fetcher(FetchConfig(**config), retries, 0.01)
    fetcher._client = httpx.Client(transport=httpx.MockTransport(store))
    return fetcher


def test_a_large_object_comes_in_parallel_chunks_into_one_buffer() -> None:
    body = bytes(range(256)) * 400  # 100 KiB
    store = Store(body)
    got = _fetcher(store, chunk_size_bytes=16 * KiB, parallel_threshold_bytes=16 * KiB).fetch(URL)
    assert bytes(got.data) == body
    assert store.ranges[0] == f"bytes=0-{16 * KiB - 1}"
    assert sorted(store.ranges[1:]) == sorted(
        f"bytes={s}-{min(s + 16 * KiB, len(body)) - 1}"
        for s in range(16 * KiB, len(body), 16 * KiB)
    )
    assert store.most_in_flight > 1  # the chunks after the first overlapped


def test_objects_under_the_parallel_threshold_take_one_request() -> None:
    store = Store(b"x" * (40 * KiB))
    got = _fetcher(store, chunk_size_bytes=8 * KiB, parallel_threshold_bytes=64 * KiB).fetch(URL)
    assert len(got.data) == 40 * KiB
    assert store.ranges == [f"bytes=0-{64 * KiB - 1}"]


def test_a_store_that_ignores_ranges_is_read_whole_but_bounded() -> None:
    ignoring = Store(b"y" * (50 * KiB), lambda r: _answer(200, b"y" * (50 * KiB)))
    assert len(_fetcher(ignoring, chunk_size_bytes=8 * KiB).fetch(URL).data) == 50 * KiB
    with pytest.raises(ExternalStorageError, match="max_fetch_bytes") as caught:
        _fetcher(ignoring, chunk_size_bytes=8 * KiB, max_fetch_bytes=10 * KiB).fetch(URL)
    assert caught.value.reason == "too_large"


def test_a_declared_size_over_the_limit_is_refused_before_allocating() -> None:
    def huge(request: httpx.Request) -> httpx.Response:
        return _answer(206, b"z", Content_Range=f"bytes 0-0/{1 << 40}")

    with pytest.raises(ExternalStorageError, match="of 1099511627776 bytes exceeds") as caught:
        _fetcher(Store(b"", huge)).fetch(URL)
    assert caught.value.reason == "too_large"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (httpx.Response(404), "not_found"),
        (httpx.Response(403), "refused"),
        (httpx.Response(302, headers={"Location": "http://169.254.169.254/"}), "refused"),
        (httpx.Response(503), "unreachable"),
        (
            httpx.Response(206, content=b"abc", headers={"Content-Range": "bytes 5-7/100"}),
            "malformed",
        ),
        (httpx.Response(206, content=b"abc"), "malformed"),
        (  # more digits than int() converts by default: still a typed answer
            httpx.Response(
                206, content=b"abc", headers={"Content-Range": f"bytes 0-2/{'9' * 5000}"}
            ),
            "malformed",
        ),
    ],
)
def test_every_bad_answer_is_a_typed_error_naming_the_location(
    answer: httpx.Response, reason: str
) -> None:
    store = Store(b"", lambda r: answer)
    with pytest.raises(ExternalStorageError) as caught:
        _fetcher(store, retries=2).fetch(URL)
    assert caught.value.reason == reason
    assert caught.value.location == "https://store.example/bucket/object.arrow"
    assert "secret" not in str(caught.value)
    assert len(store.ranges) == (
        3 if reason == "unreachable" else 1
    )  # only failures worth it retry


def test_a_later_chunk_of_the_wrong_range_fails_the_fetch() -> None:
    body = b"w" * (40 * KiB)

    def shifted(request: httpx.Request) -> httpx.Response | None:
        if request.headers["range"].startswith("bytes=0-"):
            return None
        return httpx.Response(
            206, content=body[:10], headers={"Content-Range": f"bytes 0-9/{len(body)}"}
        )

    with pytest.raises(ExternalStorageError, match="answered range") as caught:
        _fetcher(
            Store(body, shifted), chunk_size_bytes=8 * KiB, parallel_threshold_bytes=8 * KiB
        ).fetch(URL)
    assert caught.value.reason == "malformed"
