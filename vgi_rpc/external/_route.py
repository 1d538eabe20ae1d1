"""``ExternalRoute``: one party's use of external storage, as the RPC core calls it.

The core asks three things: replace a turn whose data batch is too large
with a pointer (``externalize``), the same for a request or stream input
(``externalize_request``), and give back the batch a received pointer names
(``resolve``). Everything else (payload codec, URL policy, fetching) lives in
the modules this one composes.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from vgi_rpc._errors import ExternalStorageError
from vgi_rpc._http_errors import ExternalResponseTooLargeError
from vgi_rpc._ipc import Metadata
from vgi_rpc._ipc_reader import ReadPolicy
from vgi_rpc._logs import WIRE_RESPONSE_LOGGER, Message
from vgi_rpc.external._config import ExternalLocationConfig
from vgi_rpc.external._fetch import Fetcher
from vgi_rpc.external._payload import (
    Batch,
    Payload,
    coding_of,
    decompress,
    encode_payload,
    is_pointer,
    pointer_batch,
    read_payload,
    verify,
)
from vgi_rpc.external._storage import FileSystemStorage
from vgi_rpc.external._urls import check_fetchable, redact
from vgi_rpc.wire import BatchKind, classify, message_from_metadata
from vgi_rpc.wire import keys as k

if TYPE_CHECKING:
    import pyarrow.fs as pafs

_log = logging.getLogger(WIRE_RESPONSE_LOGGER)
_TOKEN_KEYS = (k.STREAM_STATE_KEY, k.CALL_STATE_KEY)

# Uploads a payload somewhere the peer can fetch it; ``None`` when it cannot (send inline).
Uploader = Callable[[Payload, pa.Schema], "str | None"]
OnLog = Callable[[Message], None]


class ExternalBudget:
    """What one HTTP response may still upload (``max_externalized_response_bytes``).

    Charged with a batch's buffer size before its upload, so a violating
    upload is refused without paying for it.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0

    def charge(self, size: int, method: str) -> None:
        """Account for ``size`` more bytes, or refuse them."""
        if self.used + size > self.cap:
            raise ExternalResponseTooLargeError(
                f"{method}(): externalized output of {self.used + size} bytes exceeds "
                f"max_externalized_response_bytes ({self.cap})"
            )
        self.used += size


class ExternalRoute:
    """Externalizes large batches of one party and resolves the pointers it receives.

    Args:
        config: The party's ``ExternalLocationConfig``.
        policy: How fetched payloads are decoded (the party's read policy).
        uploader: Where uploads go when ``config`` has no storage (an HTTP
            client uploading through URLs its server vends).
    """

    def __init__(
        self, config: ExternalLocationConfig, policy: ReadPolicy, uploader: Uploader | None = None
    ) -> None:
        self.config = config
        self.policy = policy
        self.uploader = uploader
        self.fetcher = Fetcher(config.fetch_config, config.max_retries, config.retry_delay_seconds)

    @property
    def externalizes(self) -> bool:
        """Whether this party writes pointers (it has somewhere to upload to)."""
        return self.config.writer is not None

    def _large(self, batch: pa.RecordBatch) -> int:
        """The batch's buffer size when it must be externalized, else 0."""
        if batch.num_rows == 0:
            return 0
        size = batch.get_total_buffer_size()
        return size if size >= self.config.externalize_threshold_bytes else 0

    # -- writing ------------------------------------------------------------

    def externalize(
        self,
        schema: pa.Schema,
        batches: list[Batch],
        budget: ExternalBudget | None = None,
        method: str = "",
    ) -> list[Batch]:
        """A turn (logs, then its data batch) as one pointer when the data batch is large.

        The payload holds the whole turn, logs included (spec section 12).

        Raises:
            ExternalStorageError: The upload failed.
            ExternalResponseTooLargeError: ``budget`` refuses the upload.
        """
        if self.config.writer is None or not batches:
            return batches
        data, metadata = batches[-1]
        size = self._large(data)
        if not size or classify(data, metadata) is not BatchKind.DATA:
            return batches
        if budget is not None:
            budget.charge(size, method)
        payload = self._encode(schema, batches)
        url = self._put(payload, schema)
        assert url is not None  # storage uploads always give a URL
        return [pointer_batch(schema, url, payload.sha256)]

    def externalize_request(
        self, batch: pa.RecordBatch, metadata: Metadata
    ) -> tuple[pa.RecordBatch, Metadata]:
        """A request or stream input batch, or the pointer replacing it (its metadata kept).

        Raises:
            ExternalStorageError: The upload failed.
        """
        if (self.config.writer is None and self.uploader is None) or not self._large(batch):
            return batch, metadata
        payload = self._encode(batch.schema, [(batch, metadata)])
        url = self._put(payload, batch.schema)
        if url is None:
            return batch, metadata
        return pointer_batch(batch.schema, url, payload.sha256, carried=metadata)

    def _encode(self, schema: pa.Schema, batches: list[Batch]) -> Payload:
        compression = self.config.compression
        if compression is None:
            return encode_payload(schema, batches, None)
        return encode_payload(schema, batches, compression.algorithm, compression.level)

    def _put(self, payload: Payload, schema: pa.Schema) -> str | None:
        storage = self.config.writer
        started = time.monotonic()
        if storage is None:
            assert self.uploader is not None
            url = self.uploader(payload, schema)
        else:
            try:
                url = storage.upload(
                    payload.data, schema, content_encoding=payload.content_encoding
                )
            except ExternalStorageError:
                raise
            except Exception as exc:  # a user's storage: report it in our terms
                raise ExternalStorageError(
                    f"upload to {storage!r} failed: {type(exc).__name__}: {exc}",
                    reason="upload_failed",
                ) from exc
        if url is not None and _log.isEnabledFor(logging.DEBUG):
            _log.debug(
                "externalized %d bytes (%d stored, %s) to %s in %.1f ms",
                payload.raw_size,
                len(payload.data),
                payload.content_encoding or "uncompressed",
                redact(url),
                (time.monotonic() - started) * 1000,
            )
        return url

    # -- reading ------------------------------------------------------------

    def resolve(
        self, batch: pa.RecordBatch, metadata: Metadata, on_log: OnLog | None = None
    ) -> tuple[pa.RecordBatch, Metadata]:
        """The batch a pointer names; the payload's logs go to ``on_log`` first.

        The result carries the payload's own metadata plus the reader's
        provenance keys (``vgi_rpc.location.fetch_ms`` and ``.source``).

        Raises:
            ExternalStorageError: Refused by the URL policy, not found,
                unreachable, too large, corrupt or failing its checksum.
        """
        url = metadata[k.LOCATION_KEY].decode("utf-8", "replace")
        raw_sha = metadata.get(k.LOCATION_SHA256_KEY)
        location = redact(url)
        storage = self.config.writer
        owned = isinstance(storage, FileSystemStorage) and storage.owns(url)
        check_fetchable(url, owned, self.config.url_validator)
        started = time.monotonic()
        fetched = self.fetcher.fetch(url, self._filesystem_for(url, storage if owned else None))
        elapsed = (time.monotonic() - started) * 1000
        coding = coding_of(fetched.data, fetched.content_encoding, location)
        raw = decompress(fetched.data, coding, self.config.fetch_config.max_decoded_bytes, location)
        verify(raw, raw_sha.decode("ascii", "replace") if raw_sha else None, location)
        contents = read_payload(raw, batch.schema, self.policy, location)
        if on_log is not None:
            for _, log_metadata in contents.logs:
                on_log(message_from_metadata(log_metadata or {}))
        data, inner = contents.data
        resolved: Metadata = dict(inner or {})
        resolved[k.LOCATION_FETCH_MS_KEY] = f"{elapsed:.1f}".encode()
        resolved[k.LOCATION_SOURCE_KEY] = url.encode()
        _log.debug("resolved %s: %d rows, %.1f ms", location, data.num_rows, elapsed)
        return data, resolved

    def resolve_input(self, batch: pa.RecordBatch, metadata: Metadata) -> Batch:
        """A server's ``resolve`` of a client's input: any other batch unchanged.

        The payload's stream tokens are dropped: they belong to the transport,
        which read them from the pointer itself.
        """
        if not is_pointer(batch, metadata):
            return batch, metadata
        data, resolved = self.resolve(batch, metadata)
        return data, {key: v for key, v in resolved.items() if key not in _TOKEN_KEYS}

    @staticmethod
    def _filesystem_for(url: str, owner: object) -> tuple[pafs.FileSystem, str] | None:
        """(filesystem, path) for a URL not fetched over HTTP(S); ``None`` for HTTP(S)."""
        if isinstance(owner, FileSystemStorage):
            path = owner.path_of(url)
            if path is not None:
                return owner.filesystem, path
        if urllib.parse.urlsplit(url).scheme in ("http", "https"):
            return None
        import pyarrow.fs as pafs

        try:
            return pafs.FileSystem.from_uri(url)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise ExternalStorageError(
                f"cannot open an external location: {exc}", location=redact(url), reason="refused"
            ) from None

    def close(self) -> None:
        """Release pooled connections."""
        self.fetcher.close()


__all__ = ["ExternalBudget", "ExternalRoute", "Uploader", "is_pointer"]
