"""Fetching an external location: ranged requests in parallel, bounded before allocation.

``http://`` and ``https://`` URLs are fetched with httpx: the first request
asks for the first ``parallel_threshold_bytes`` (``Range: bytes=0-…``), which
also tells the total size; the rest is fetched in chunks, several at a time,
straight into one buffer of that size. Redirects are never followed. URLs of the reader's own
``pyarrow.fs`` storage (``file://``, ``s3://``…) are read through that
filesystem the same way. Transient failures are retried; everything ends in
an ``ExternalStorageError`` naming the (redacted) location, within the
configured deadline.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vgi_rpc._errors import ExternalStorageError
from vgi_rpc._logs import WIRE_RESPONSE_LOGGER
from vgi_rpc.external._config import FetchConfig
from vgi_rpc.external._urls import redact

if TYPE_CHECKING:
    import httpx
    import pyarrow.fs as pafs

_log = logging.getLogger(WIRE_RESPONSE_LOGGER)
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d{1,19})-(\d{1,19})/(\d{1,19})\s*$")  # int64 at most


class _TransientError(Exception):
    """A failure worth another attempt (network, 5xx, throttling)."""


@dataclasses.dataclass(slots=True)
class Fetched:
    """An object as stored: its bytes and the coding the store declared."""

    data: bytearray
    content_encoding: str | None


class Fetcher:
    """Fetches external locations for one reader; its HTTP connections are pooled.

    Args:
        config: Chunking, parallelism, deadline and size limits.
        max_retries: Further attempts after a transient failure.
        retry_delay: Seconds between attempts.
    """

    def __init__(self, config: FetchConfig, max_retries: int, retry_delay: float) -> None:
        self.config = config
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def fetch(self, url: str, filesystem: tuple[pafs.FileSystem, str] | None = None) -> Fetched:
        """The object at ``url`` (through ``filesystem`` = (fs, path) when given).

        Raises:
            ExternalStorageError: Not found, refused, too large, or unreachable
                after every attempt.
        """
        location = redact(url)
        deadline = time.monotonic() + self.config.timeout_seconds
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                if filesystem is not None:
                    return self._from_filesystem(*filesystem, location)
                return self._over_http(url, location, deadline)
            except _TransientError as exc:
                late = time.monotonic() + self.retry_delay >= deadline
                if attempt == attempts or late:
                    raise ExternalStorageError(
                        f"external location unreachable after {attempt} attempt(s): {exc}",
                        location=location,
                        reason="unreachable",
                    ) from None
                _log.debug("fetch of %s failed (%s); retrying", location, exc)
                time.sleep(self.retry_delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    # -- HTTP ---------------------------------------------------------------

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.config.timeout_seconds),
                    follow_redirects=False,
                    limits=httpx.Limits(max_connections=self.config.max_parallel_requests),
                    # Ranges address the bytes as stored: no on-the-fly coding.
                    headers={"Accept-Encoding": "identity"},
                )
                # A server's route lives as long as the server: close its sockets with it.
                weakref.finalize(self, self._client.close)
            return self._client

    def _over_http(self, url: str, location: str, deadline: float) -> Fetched:
        import httpx

        chunk = self.config.chunk_size_bytes
        first = max(chunk, self.config.parallel_threshold_bytes)
        client = self._http()
        try:
            with client.stream("GET", url, headers={"Range": f"bytes=0-{first - 1}"}) as resp:
                _check_status(resp.status_code, location)
                coding = resp.headers.get("content-encoding")
                if resp.status_code == 200:  # the store ignored the range: the whole object
                    total = _int(resp.headers.get("content-length"))
                    self._check_size(total, location)
                    return Fetched(self._read_all(resp, location, deadline), coding)
                start, end, total = _content_range(resp.headers.get("content-range"), location)
                self._check_size(total, location)
                if start != 0 or end != min(first, total) - 1:
                    raise _malformed(
                        f"answered bytes {start}-{end} to a request for the first chunk", location
                    )
                buffer = bytearray(total)
                view = memoryview(buffer)
                _read_into(resp, view[: end + 1], location, deadline)
        except httpx.HTTPError as exc:
            raise _TransientError(f"{type(exc).__name__}: {exc}") from None
        if total > first:
            self._fetch_ranges(client, url, view, first, chunk, location, deadline)
        chunks = 1 + max(0, -(-(total - first) // chunk))
        _log.debug("fetched %s: %d bytes in %d request(s)", location, total, chunks)
        return Fetched(buffer, coding)

    def _fetch_ranges(
        self,
        client: httpx.Client,
        url: str,
        view: memoryview,
        start_at: int,
        chunk: int,
        location: str,
        deadline: float,
    ) -> None:
        import httpx

        def one(start: int) -> None:
            end = min(start + chunk, len(view)) - 1
            headers = {"Range": f"bytes={start}-{end}"}
            with client.stream("GET", url, headers=headers) as resp:
                _check_status(resp.status_code, location)
                if resp.status_code != 206:
                    raise _malformed(f"ignored a range request (HTTP {resp.status_code})", location)
                got = _content_range(resp.headers.get("content-range"), location)
                if got != (start, end, len(view)):
                    raise _malformed(
                        f"answered range {got} to a request for {start}-{end}", location
                    )
                _read_into(resp, view[start : end + 1], location, deadline)

        self._parallel(one, range(start_at, len(view), chunk), (httpx.HTTPError, OSError))

    def _read_all(self, resp: httpx.Response, location: str, deadline: float) -> bytearray:
        cap = self.config.max_fetch_bytes
        out = bytearray()
        for piece in resp.iter_raw():
            out += piece
            if len(out) > cap:
                raise _too_large(cap, location)
            if time.monotonic() > deadline:
                raise _TransientError("the fetch deadline passed")
        return out

    # -- pyarrow.fs ---------------------------------------------------------

    def _from_filesystem(self, fs: pafs.FileSystem, path: str, location: str) -> Fetched:
        import pyarrow.fs as pafs

        try:
            info = fs.get_file_info(path)
        except OSError as exc:
            raise _TransientError(f"{type(exc).__name__}: {exc}") from None
        if info.type is pafs.FileType.NotFound:
            raise ExternalStorageError(
                "external object not found", location=location, reason="not_found"
            )
        if info.type is not pafs.FileType.File or info.size is None:
            raise _malformed("is not a file", location)
        self._check_size(info.size, location)
        buffer = bytearray(info.size)
        view = memoryview(buffer)
        chunk = self.config.chunk_size_bytes
        with fs.open_input_file(path) as source:
            reader: Any = source  # the stubs lack read_at's parameters

            def one(start: int) -> None:
                want = min(chunk, len(view) - start)
                piece: bytes = reader.read_at(want, start)  # positional: safe across threads
                if len(piece) != want:
                    raise _malformed("ended early", location)
                view[start : start + want] = piece

            self._parallel(one, range(0, len(view), chunk), (OSError,))
        return Fetched(buffer, None)

    # -- shared -------------------------------------------------------------

    def _parallel(
        self,
        one: Callable[[int], None],
        starts: range,
        transient: tuple[type[BaseException], ...],
    ) -> None:
        """Run ``one`` for every chunk start, ``max_parallel_requests`` at a time."""
        if len(starts) <= 1:
            for start in starts:
                self._guard(one, start, transient)
            return
        workers = min(self.config.max_parallel_requests, len(starts))
        with concurrent.futures.ThreadPoolExecutor(workers, "vgi_rpc-fetch") as pool:
            futures = [pool.submit(self._guard, one, start, transient) for start in starts]
            try:
                for future in concurrent.futures.as_completed(futures):
                    future.result()
            finally:
                for future in futures:
                    future.cancel()

    @staticmethod
    def _guard(
        one: Callable[[int], None], start: int, transient: tuple[type[BaseException], ...]
    ) -> None:
        try:
            one(start)
        except ExternalStorageError:
            raise
        except transient as exc:
            raise _TransientError(f"{type(exc).__name__}: {exc}") from None

    def _check_size(self, total: int | None, location: str) -> None:
        cap = self.config.max_fetch_bytes
        if total is not None and total > cap:
            raise _too_large(cap, location, total)

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _check_status(status: int, location: str) -> None:
    if status in (200, 206):
        return
    if status == 404:
        raise ExternalStorageError(
            "external object not found", location=location, reason="not_found"
        )
    if status in (408, 429) or status >= 500:
        raise _TransientError(f"HTTP {status}")
    if 300 <= status < 400:
        raise ExternalStorageError(
            f"the store answered a redirect (HTTP {status}); redirects are not followed",
            location=location,
            reason="refused",
        )
    if status == 416:
        raise _malformed("is empty", location)
    raise ExternalStorageError(
        f"the store refused the fetch (HTTP {status})", location=location, reason="refused"
    )


def _read_into(resp: httpx.Response, target: memoryview, location: str, deadline: float) -> None:
    filled = 0
    for piece in resp.iter_raw():
        end = filled + len(piece)
        if end > len(target):
            raise _malformed("sent more bytes than the range it was asked for", location)
        target[filled:end] = piece
        filled = end
        if time.monotonic() > deadline:
            raise _TransientError("the fetch deadline passed")
    if filled != len(target):
        raise _TransientError(f"the store sent {filled} of {len(target)} bytes")


def _content_range(value: str | None, location: str) -> tuple[int, int, int]:
    match = _CONTENT_RANGE.match(value or "")
    if match is None:
        raise _malformed(
            f"answered a range request without a valid Content-Range ({value!r})", location
        )
    start, end, total = (int(g) for g in match.groups())
    if not start <= end < total:
        raise _malformed(f"sent an impossible Content-Range {value!r}", location)
    return start, end, total


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _malformed(problem: str, location: str) -> ExternalStorageError:
    return ExternalStorageError(
        f"the external object {problem}", location=location, reason="malformed"
    )


def _too_large(cap: int, location: str, size: int | None = None) -> ExternalStorageError:
    what = f"of {size} bytes " if size is not None else ""
    return ExternalStorageError(
        f"external object {what}exceeds FetchConfig.max_fetch_bytes ({cap})",
        location=location,
        reason="too_large",
    )


__all__ = ["Fetched", "Fetcher"]
