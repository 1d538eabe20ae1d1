"""Upload URLs (wire spec section 10): ``POST {prefix}/__upload_url__/init`` and its client.

A client without storage of its own externalizes a large request by asking
the server for a presigned PUT/GET pair, PUTting the payload to the first
URL and sending a pointer to the second. The server side answers that
request; ``VendedUploads`` is the client side, an ``ExternalRoute`` uploader.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import falcon
import httpx
import pyarrow as pa

from vgi_rpc._errors import ExternalStorageError, ProtocolError
from vgi_rpc._ipc import Chunk, encode_stream
from vgi_rpc._ipc_reader import memory_source, open_stream_reader
from vgi_rpc.http._dispatch import HttpDispatcher, HttpReply, Route, _MemoryChannel
from vgi_rpc.http._refusal import RequestRefusedError
from vgi_rpc.rpc import AuthContext, Reply
from vgi_rpc.wire import BatchKind, classify, request_metadata, rpc_error_from_metadata

if TYPE_CHECKING:
    from vgi_rpc.external import Payload, UploadUrlProvider

UPLOAD_URL_METHOD = "__upload_url__"
MAX_UPLOAD_URLS = 100
PARAMS_SCHEMA = pa.schema([("count", pa.int64())])
_URL_FIELDS: list[pa.Field[Any]] = [
    pa.field("upload_url", pa.utf8(), nullable=False),
    pa.field("download_url", pa.utf8(), nullable=False),
    pa.field("expires_at", pa.timestamp("us", tz="UTC"), nullable=False),
]
URLS_SCHEMA = pa.schema(_URL_FIELDS)


Answer = Callable[[Route, bytes | bytearray | pa.Buffer, AuthContext, str], HttpReply]
# The RPC resource's request handling: authentication, body limits, refusals, the response.
Handle = Callable[[falcon.Request, falcon.Response, str, "str | None", Answer], None]


class UploadUrls:
    """The falcon resource of ``{prefix}/__upload_url__/init``: one row per URL pair asked for."""

    def __init__(
        self, handle: Handle, dispatcher: HttpDispatcher, provider: UploadUrlProvider
    ) -> None:
        self._handle = handle
        self._dispatcher = dispatcher
        self._provider = provider

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer with ``count`` (1 to 100) fresh URL pairs; authentication applies as for calls."""
        self._handle(req, resp, UPLOAD_URL_METHOD, None, self._answer)

    def _answer(
        self, route: Route, body: bytes | bytearray | pa.Buffer, auth: AuthContext, request_id: str
    ) -> HttpReply:
        dispatcher = self._dispatcher
        channel = _MemoryChannel(body)
        request = dispatcher._request(channel, UPLOAD_URL_METHOD, None)
        count = 1
        if "count" in request.batch.schema.names:
            column = request.batch.column("count")
            if not pa.types.is_integer(column.type) or request.batch.num_rows != 1:
                raise RequestRefusedError(400, "__upload_url__ takes one integer parameter 'count'")
            value = column[0].as_py()
            count = 1 if value is None else max(1, min(int(value), MAX_UPLOAD_URLS))
        try:
            urls = [self._provider.generate_upload_url(pa.schema([])) for _ in range(count)]
            batch = pa.RecordBatch.from_pydict(
                {
                    "upload_url": [u.upload_url for u in urls],
                    "download_url": [u.download_url for u in urls],
                    "expires_at": [u.expires_at for u in urls],
                },
                schema=URLS_SCHEMA,
            )
        except Exception as exc:
            dispatcher.server.log_method_error(UPLOAD_URL_METHOD, exc)
            return dispatcher._error_reply(200, exc, request_id, URLS_SCHEMA)
        channel.write_reply(Reply(URLS_SCHEMA, [(batch, None)]))
        return HttpReply(200, channel.chunks)


class Poster(Protocol):
    """What uploading through vended URLs needs of the HTTP transport."""

    base_url: str
    client: httpx.Client | None

    def post(self, path: str, chunks: Sequence[Chunk]) -> bytes | bytearray | pa.Buffer:
        """POST an Arrow body (made of ``chunks``) to the server; its (decoded) Arrow answer."""
        ...


class VendedUploads:
    """Uploads a client's payloads through URLs its server vends (an ``ExternalRoute`` uploader).

    Asks once whether the server vends them (``HEAD {prefix}/health``); when
    it does not, payloads go inline (the uploader answers ``None``).
    """

    def __init__(self, transport: Poster, prefix: str, timeout: float = 60.0) -> None:
        self._transport = transport
        self._prefix = prefix
        self._timeout = timeout
        self._lock = threading.Lock()
        self._supported: bool | None = None
        self._max_bytes: int | None = None

    def _probe(self) -> bool:
        with self._lock:
            if self._supported is None:
                url = f"{self._transport.base_url}{self._prefix}/health"
                client = self._transport.client
                try:
                    answer = (client or httpx).head(url, timeout=self._timeout)
                except httpx.HTTPError:
                    return False  # asked again next time
                self._supported = answer.headers.get("VGI-Upload-URL-Support") == "true"
                limit = answer.headers.get("VGI-Max-Upload-Bytes")
                self._max_bytes = int(limit) if limit and limit.isdigit() else None
            return self._supported

    def __call__(self, payload: Payload, schema: pa.Schema) -> str | None:
        """PUT ``payload`` to a fresh vended URL; its download URL (``None``: not vended)."""
        if not self._probe():
            return None
        if self._max_bytes is not None and len(payload.data) > self._max_bytes:
            raise ExternalStorageError(
                f"request payload of {len(payload.data)} bytes exceeds the server's "
                f"max_upload_bytes ({self._max_bytes})",
                reason="too_large",
            )
        upload_url, download_url = self._vend()
        headers = {"Content-Type": "application/vnd.apache.arrow.stream"}
        if payload.content_encoding:
            headers["Content-Encoding"] = payload.content_encoding
        from vgi_rpc.external import redact

        try:
            answer = httpx.put(
                upload_url, content=payload.data, headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise ExternalStorageError(
                f"upload failed: {type(exc).__name__}: {exc}",
                location=redact(upload_url),
                reason="unreachable",
            ) from None
        if not 200 <= answer.status_code < 300:
            raise ExternalStorageError(
                f"upload refused (HTTP {answer.status_code})",
                location=redact(upload_url),
                reason="upload_failed",
            )
        return download_url

    def _vend(self) -> tuple[str, str]:
        """One (upload URL, download URL) pair from the server."""
        request = pa.RecordBatch.from_pydict({"count": [1]}, schema=PARAMS_SCHEMA)
        encoded = encode_stream(PARAMS_SCHEMA, [(request, request_metadata(UPLOAD_URL_METHOD))])
        body = self._transport.post(f"{self._prefix}/{UPLOAD_URL_METHOD}/init", [encoded])
        reader = open_stream_reader(memory_source(body))
        while reader is not None and (item := reader.read()) is not None:
            batch, metadata = item
            kind = classify(batch, metadata)
            if kind is BatchKind.ERROR:
                raise rpc_error_from_metadata(metadata or {})
            if kind is BatchKind.DATA and batch.num_rows and "download_url" in batch.schema.names:
                upload = batch.column("upload_url")[0].as_py()
                download = batch.column("download_url")[0].as_py()
                if isinstance(upload, str) and isinstance(download, str):
                    return upload, download
        raise ProtocolError(f"{UPLOAD_URL_METHOD}: the server answered with no URL pair")


__all__ = ["UPLOAD_URL_METHOD", "URLS_SCHEMA", "UploadUrls", "VendedUploads"]
