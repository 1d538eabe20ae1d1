"""The HTTP client: typed proxies over httpx, stateless stream sessions.

Unary calls reuse ``RpcConnection`` unchanged: the channel collects one
request body and POSTs it when the response is first read. Streams get
their own session class, because every turn is one POST carrying the
state tokens the server handed back on the previous turn.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import io
import ipaddress
import logging
import ssl
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

import httpx
import pyarrow as pa

from vgi_rpc._errors import IPCError, ProtocolError, RpcError, TransportError
from vgi_rpc._http_errors import HttpError, HttpUnauthorizedError
from vgi_rpc._ipc import Chunk, IpcValidation, Metadata, StreamWriter
from vgi_rpc._ipc_reader import memory_source, open_stream_reader
from vgi_rpc._logs import WIRE_HTTP_LOGGER
from vgi_rpc._methods import RpcMethodInfo
from vgi_rpc.http import _encoding
from vgi_rpc.http._app import ARROW_CONTENT_TYPE
from vgi_rpc.http._connections import KeepAliveConnections
from vgi_rpc.http._statuses import status_error
from vgi_rpc.rpc import (
    AnnotatedBatch,
    Connected,
    OnLog,
    RpcConnection,
    ServiceDescription,
    StreamSession,
    encode_arguments,
    make_proxy,
    with_trace_context,
)
from vgi_rpc.wire import (
    EMPTY_SCHEMA,
    BatchKind,
    classify,
    empty_batch,
    message_from_metadata,
    request_metadata,
    rpc_error_from_metadata,
)
from vgi_rpc.wire import keys as k

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalLocationConfig

P = TypeVar("P")
_wire_log = logging.getLogger(WIRE_HTTP_LOGGER)
_TOKEN_KEYS = (k.STREAM_STATE_KEY, k.CALL_STATE_KEY)
_ROUTES_HEADER = "vgi-accept-max-response-bytes-support"  # sent by second-generation servers


class _Sink:
    """Collects the chunks of one request body."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        self.chunks.extend(chunks)

    def take(self) -> list[Chunk]:
        chunks, self.chunks = self.chunks, []
        return chunks


class _PostChannel(_Sink):
    """A ``Channel`` whose reader POSTs the collected request and reads the answer."""

    def __init__(self, transport: HttpTransport) -> None:
        super().__init__()
        self._transport = transport
        self.path = ""
        self._reader: io.BufferedReader | None = None

    @property
    def reader(self) -> io.BufferedReader:
        if self._reader is None:
            self._reader = _reader(self._transport.post(self.path, self.take()))
        return self._reader

    def write_chunks(self, chunks: Sequence[Chunk]) -> None:
        self._reader = None
        super().write_chunks(chunks)

    def use(self, source: io.BufferedReader) -> None:
        self._reader = source

    def peer_failure(self, detail: str) -> TransportError:
        return TransportError(f"{self._transport.base_url}: {detail}")

    def close(self) -> None:
        pass


def _reader(body: bytes | bytearray | pa.Buffer) -> io.BufferedReader:
    return memory_source(body)


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpTransport:
    """POSTs Arrow bodies to one server and turns HTTP failures into typed errors.

    Args:
        base_url: ``scheme://host:port`` of the server.
        client: An httpx client to send through (its auth, hooks and proxies
            apply). Without one, requests go over private keep-alive
            connections of the standard library's ``http.client``, one per
            concurrent caller: httpx's per-request layers cost more CPU than the
            rest of a call.
        headers: Extra headers sent with every request.
        timeout: Seconds per request when no ``client`` is given (``None``: no limit).
        request_compression: ``"zstd"`` or ``"gzip"`` to compress request bodies
            of at least ``compress_min_bytes``; ``None`` sends them as they are.
        response_compression: Whether to let the server compress responses;
            ``None``: yes, except from a loopback address, where compressing
            only costs CPU on both ends.
        ssl_context: For ``https://`` without ``client``: how to verify the
            server (default: the system's trusted certificates).
    """

    def __init__(
        self,
        base_url: str,
        client: httpx.Client | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 60.0,
        request_compression: str | None = None,
        response_compression: bool | None = None,
        compress_min_bytes: int = 4096,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if request_compression not in (None, *_encoding.PRODUCED):
            raise ValueError(
                f"request_compression must be one of {_encoding.PRODUCED} or None, "
                f"got {request_compression!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.client = client
        self._pool: KeepAliveConnections | None = None
        self._path_prefix = ""
        if client is None:
            where = urllib.parse.urlsplit(self.base_url)
            if where.scheme not in ("http", "https") or not where.hostname:
                raise ValueError(f"expected an http:// or https:// base URL, got {base_url!r}")
            self._pool = KeepAliveConnections(
                where.scheme,
                where.hostname,
                where.port or (443 if where.scheme == "https" else 80),
                timeout=timeout,
                ssl_context=ssl_context,
            )
            self._path_prefix = where.path
        self._compression = request_compression
        self._compress_min = compress_min_bytes
        self._prefix = ""
        self._protocol: str | None = None
        self._routes = False
        if response_compression is None:
            response_compression = not _is_loopback(urllib.parse.urlsplit(self.base_url).hostname)
        self._headers = list(
            {
                "Content-Type": ARROW_CONTENT_TYPE,
                _encoding.VGI_ACCEPT_HEADER: "zstd, gzip" if response_compression else "identity",
                **(headers or {}),
            }.items()
        )

    def route(self, prefix: str, protocol: str | None) -> None:
        """Send to ``{prefix}/{protocol}/...`` if the server takes only routed paths.

        Flat paths reach first- and second-generation servers that keep them
        (ours route by the request's ``vgi_rpc.protocol``); a 404 from a server
        that marks itself second-generation switches to routed paths for good.
        """
        self._prefix, self._protocol = prefix, protocol

    def _routed(self, path: str) -> str:
        if not self._routes or self._protocol is None or not path.startswith(self._prefix + "/"):
            return path
        return f"{self._prefix}/{self._protocol}{path[len(self._prefix) :]}"

    def post(self, path: str, chunks: Sequence[Chunk]) -> bytes | bytearray | pa.Buffer:
        """POST the body made of ``chunks`` and return the (decoded) Arrow response body."""
        headers = self._headers
        body: Sequence[Chunk] = chunks
        coding = self._compression
        size = sum(memoryview(c).nbytes for c in chunks)
        if (
            coding is not None
            and size >= self._compress_min
            and _encoding.worth_compressing(chunks, coding)
        ):
            body = [_encoding.encode_chunks(chunks, coding)]
            headers = [*headers, ("Content-Encoding", coding)]
        url, status, answer_headers, answer = self._send(self._routed(path), headers, body)
        if (
            status == 404
            and not self._routes
            and self._protocol is not None
            and answer_headers.get(_ROUTES_HEADER) == "true"
            and not answer_headers.get("content-type", "").startswith(ARROW_CONTENT_TYPE)
        ):
            self._routes = True  # a server that takes only protocol-qualified paths
            url, status, answer_headers, answer = self._send(self._routed(path), headers, body)
        if _wire_log.isEnabledFor(logging.DEBUG):
            _wire_log.debug(
                "POST %s -> %d (request body %d bytes%s, response body %d bytes%s)",
                url,
                status,
                size,
                f", sent {coding}-encoded" if body is not chunks else "",
                len(answer),
                f", {answer_headers.get('x-vgi-content-encoding')}-encoded"
                if answer_headers.get("x-vgi-content-encoding")
                else "",
            )
        return self._answer(url, status, answer_headers, answer)

    def _send(
        self, path: str, headers: list[tuple[str, str]], body: Sequence[Chunk]
    ) -> tuple[str, int, Mapping[str, str], bytes | pa.Buffer]:
        url = self.base_url + path
        try:
            if self._pool is None:
                assert self.client is not None
                content = b"".join(body)
                response = self.client.post(url, content=content, headers=headers)
                return url, response.status_code, response.headers, response.content
            answer = self._pool.post(self._path_prefix + path, headers, body)
        except (httpx.HTTPError, OSError, http.client.HTTPException) as exc:
            raise TransportError(f"POST {url} failed: {type(exc).__name__}: {exc}") from exc
        return url, answer.status, answer.headers, answer.body

    def _answer(
        self, url: str, status: int, headers: Mapping[str, str], body: bytes | pa.Buffer
    ) -> bytes | bytearray | pa.Buffer:
        """The Arrow body of a response, or the typed error its status calls for.

        ``headers`` must answer lower-case names.
        """
        content_type = headers.get("content-type", "").split(";")[0].strip()
        # a pooled body is a 200 Arrow answer, which status_error passes without reading
        text = body if isinstance(body, bytes) else b""
        error = status_error(url, status, headers, text, content_type == ARROW_CONTENT_TYPE)
        if error is not None:
            raise error
        coding = headers.get(_encoding.VGI_CONTENT_HEADER.lower())
        if coding:
            try:
                return _encoding.decode(body, coding, None)
            except Exception as exc:
                raise IPCError(
                    f"POST {url}: response body does not decode as {coding}: {exc}"
                ) from exc
        return body

    def close(self) -> None:
        """Close the pooled connections this transport opened (not a caller's client)."""
        if self._pool is not None:
            self._pool.close()


class HttpConnection(RpcConnection):
    """An ``RpcConnection`` whose requests are HTTP POSTs to ``{prefix}/{method}``."""

    def __init__(
        self,
        protocol: type,
        transport: HttpTransport,
        *,
        prefix: str = "/vgi",
        on_log: OnLog | None = None,
        ipc_validation: IpcValidation = IpcValidation.FULL,
        external_location: ExternalLocationConfig | None = None,
    ) -> None:
        self.transport = transport
        self.prefix = _normalise_prefix(prefix)
        self._post_channel = _PostChannel(transport)
        super().__init__(
            protocol,
            self._post_channel,
            on_log=on_log,
            ipc_validation=ipc_validation,
            external_location=external_location,
        )
        if self.external is not None and not self.external.externalizes:
            # No storage of its own: large requests go through URLs the server vends.
            from vgi_rpc.http._upload import VendedUploads

            self.external.uploader = VendedUploads(transport, self.prefix)
        self._direct = True  # flat requests are encoded straight from their values (_send_row)

    def _send_row(self, info: RpcMethodInfo, arguments: dict[str, object]) -> bool:
        self.transport.route(self.prefix, self.routing)
        self._post_channel.path = f"{self.prefix}/{info.name}"
        return super()._send_row(info, arguments)

    def send_request(
        self,
        method: str,
        batch: pa.RecordBatch,
        extra: Metadata | None = None,
        schema: pa.Schema | None = None,
    ) -> None:
        """Queue the request body for ``POST {prefix}/{method}``."""
        self.transport.route(self.prefix, self.routing)
        self._post_channel.path = f"{self.prefix}/{method}"
        super().send_request(method, batch, extra, schema)

    def read_from(self, source: io.BufferedReader) -> None:
        """Make the next ``read_response`` read ``source`` (a body already received)."""
        self._post_channel.use(source)

    def open_stream(self, info: RpcMethodInfo, arguments: dict[str, object]) -> HttpStreamSession:
        """Start a stream with ``POST {prefix}/{method}/init``."""
        header_type = info.header_type
        return HttpStreamSession(
            self,
            info.name,
            encode_arguments(info, arguments),
            decode_header=None if header_type is None else header_type.from_record_batch,  # type: ignore[attr-defined]  # ArrowSerializableDataclass
        )

    def close(self) -> None:
        """Close the pooled connections (a caller's own httpx client stays open)."""
        if self.external is not None:
            self.external.close()
        self.transport.close()


class HttpStreamSession(StreamSession):
    """One stream over HTTP: every turn is a POST carrying the server's state tokens.

    Same interface as the byte-stream ``StreamSession`` (iterate, ``exchange``,
    ``cancel``, ``close``, ``header``); it shares none of its channel state.
    """

    def __init__(  # the base __init__ is deliberately not called: no channel here
        self,
        connection: HttpConnection,
        name: str,
        request: pa.RecordBatch,
        *,
        decode_header: Callable[[pa.RecordBatch], object] | None = None,
        expects_header: bool | None = None,
    ) -> None:
        """Send ``request`` (the method's parameters) to ``{prefix}/{name}/init``.

        A stream with a header is read for one first (``expects_header``, which
        defaults to whether ``decode_header`` is given); ``decode_header`` turns
        it into ``self.header``, else the header stays a ``RecordBatch``.
        """
        self._conn = connection
        self._name = name
        self._path = f"{connection.prefix}/{name}"
        connection.transport.route(connection.prefix, connection.routing)
        self._cursor: bytes | None = None
        self._call_token: bytes | None = None
        self._pending: collections.deque[AnnotatedBatch] = collections.deque()
        self._finished = False
        self._closed = False
        self.header: object = None
        sink = _Sink()
        writer = StreamWriter(sink, request.schema)
        routing = {k.PROTOCOL_KEY: connection.routing.encode()} if connection.routing else None
        metadata = with_trace_context(
            request_metadata(name, None, connection.protocol_version, routing)
        )
        if connection.external is not None:
            request, metadata = connection.external.externalize_request(request, metadata)
        writer.write(request, metadata)
        writer.close()
        source = _reader(connection.transport.post(self._path + "/init", sink.take()))
        if expects_header is None:
            expects_header = decode_header is not None
        if expects_header:
            connection.read_from(source)
            data, error = connection.read_response_stream(name)
            if error is not None:
                self._closed = True
                raise error
            if data is None:
                raise ProtocolError(f"{name}(): the header stream carried no header row")
            self.header = data if decode_header is None else decode_header(data)
        self._absorb(source, exchange=False)

    def _absorb(self, source: io.BufferedReader, *, exchange: bool) -> None:
        """Read one output stream: deliver logs, queue data, keep the tokens, raise errors."""
        reader = open_stream_reader(source)
        if reader is None:
            raise IPCError(f"{self._name}(): the server sent no output stream")
        error: RpcError | None = None
        token_seen = False
        while (item := reader.read(self._conn.ipc_validation)) is not None:
            batch, metadata = item
            if classify(batch, metadata) is BatchKind.EXTERNAL_POINTER and metadata:
                _, batch, metadata = self._conn.resolve_pointer(batch, metadata, self._name)
            if metadata and k.STREAM_STATE_KEY in metadata:
                token_seen = True
                metadata = self._keep_tokens(metadata)
                if batch.num_rows == 0 and not metadata and (not exchange or self._pending):
                    continue  # a token sentinel, not data
                if exchange:
                    self._pending.append(AnnotatedBatch(batch, metadata or None))
                    continue
            error = self._deliver(batch, metadata) or error
        if error is not None:
            self._closed = True
            raise error
        if not token_seen:
            self._finished = True

    def _deliver(self, batch: pa.RecordBatch, metadata: Metadata | None) -> RpcError | None:
        """Queue a data batch or hand a log to ``on_log``; return the error a batch carries."""
        kind = classify(batch, metadata)
        if kind is BatchKind.LOG:
            if self._conn.on_log is not None:
                self._conn.on_log(message_from_metadata(metadata or {}))
        elif kind is BatchKind.ERROR:
            return rpc_error_from_metadata(metadata or {})
        elif kind is BatchKind.DATA:
            self._pending.append(AnnotatedBatch(batch, metadata or None))
        else:
            raise IPCError(f"{self._name}(): received a {kind.value} batch over HTTP")
        return None

    def _keep_tokens(self, metadata: Metadata) -> Metadata:
        """Remember the tokens a batch carries; return its metadata without them."""
        self._cursor = metadata[k.STREAM_STATE_KEY]
        self._call_token = metadata.get(k.CALL_STATE_KEY, self._call_token)
        return {key: v for key, v in metadata.items() if key not in _TOKEN_KEYS}

    def _post_turn(
        self, batch: pa.RecordBatch, metadata: Metadata | None, *, exchange: bool
    ) -> None:
        if self._cursor is None:
            raise ProtocolError(f"{self._name}(): the server gave no state token to continue with")
        tokens: Metadata = {k.STREAM_STATE_KEY: self._cursor}
        if self._call_token is not None:
            tokens[k.CALL_STATE_KEY] = self._call_token
        tokens = with_trace_context(tokens)  # each request of the stream joins the caller's trace
        sink = _Sink()
        writer = StreamWriter(sink, batch.schema)
        combined = {**(metadata or {}), **tokens}
        if self._conn.external is not None:
            batch, combined = self._conn.external.externalize_request(batch, combined)
        writer.write(batch, combined)
        writer.close()
        try:
            body = self._conn.transport.post(self._path + "/exchange", sink.take())
            self._absorb(_reader(body), exchange=exchange)
        except BaseException:
            self._closed = True
            raise

    def tick(self) -> AnnotatedBatch:
        """The producer's next batch; ``StopIteration`` when it has finished."""
        while not self._pending:
            if self._closed or self._finished:
                self._closed = True
                raise StopIteration
            self._post_turn(empty_batch(EMPTY_SCHEMA), None, exchange=False)
        return self._pending.popleft()

    def exchange(self, input: AnnotatedBatch | pa.RecordBatch) -> AnnotatedBatch:
        """Send one input batch to an exchange stream and return its answer."""
        if self._closed:
            raise ProtocolError(f"{self._name}(): the stream is closed")
        self._pending.clear()  # an exchange init answers with nothing to deliver
        if isinstance(input, pa.RecordBatch):
            self._post_turn(input, None, exchange=True)
        else:
            self._post_turn(input.batch, input.metadata_dict(), exchange=True)
        if not self._pending:
            raise ProtocolError(f"{self._name}(): the server answered the exchange with no batch")
        answer = self._pending.popleft()
        self._pending.clear()
        return answer

    def cancel(self) -> None:
        """Tell the server the stream is abandoned (runs its ``on_cancel``); best effort."""
        if self._closed:
            return
        self._closed = True
        if self._finished or self._cursor is None:
            return
        with contextlib.suppress(RpcError, TransportError, IPCError, ProtocolError):
            self._closed = False
            self._post_turn(empty_batch(EMPTY_SCHEMA), {k.CANCEL_KEY: b"1"}, exchange=False)
        self._closed = True

    def close(self) -> None:
        """End the session (the server keeps nothing, so there is nothing to send)."""
        self._closed = True


def _normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip().rstrip("/")
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    return prefix


def http_connect(
    protocol: type[P],
    base_url: str,
    *,
    prefix: str = "/vgi",
    on_log: OnLog | None = None,
    external_location: ExternalLocationConfig | None = None,
    ipc_validation: IpcValidation = IpcValidation.FULL,
    headers: Mapping[str, str] | None = None,
    bearer_token: str | None = None,
    timeout: float | None = 60.0,
    client: httpx.Client | None = None,
    request_compression: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    response_compression: bool | None = None,
) -> Connected[P]:
    """Connect to a vgi-rpc HTTP server and return a context manager yielding a typed proxy.

    Args:
        protocol: The Protocol class the server serves.
        base_url: ``http://host:port`` (the prefix is separate).
        prefix: The server's URL prefix (``""`` for a server at the root).
        on_log: Called with every log message the server sends.
        external_location: External storage (``vgi_rpc.external``): pointers the server
            sends are fetched back; large requests are uploaded to its storage, or
            (without one) through upload URLs the server vends.
        ipc_validation: How thoroughly to validate received batches.
        headers: Extra headers sent with every request.
        bearer_token: Sent as ``Authorization: Bearer <token>``.
        timeout: Seconds per request (``None``: no limit).
        client: An httpx client to send through instead of a private connection
            pool (its auth, event hooks and proxies apply; it is not closed on exit).
        request_compression: ``"zstd"`` or ``"gzip"`` to compress large request bodies.
        ssl_context: For ``https://`` without ``client``: how to verify the
            server (default: the system's trusted certificates).
        response_compression: Let the server compress large responses (zstd or
            gzip). ``None`` (default): yes, unless ``base_url`` is a loopback
            address, where compression only costs CPU on both ends.
    """
    all_headers = dict(headers or {})
    if bearer_token is not None:
        all_headers["Authorization"] = f"Bearer {bearer_token}"
    transport = HttpTransport(
        base_url,
        client,
        headers=all_headers,
        timeout=timeout,
        request_compression=request_compression,
        response_compression=response_compression,
        ssl_context=ssl_context,
    )
    connection = HttpConnection(
        protocol,
        transport,
        prefix=prefix,
        on_log=on_log,
        ipc_validation=ipc_validation,
        external_location=external_location,
    )

    return Connected(make_proxy(protocol, connection), connection.close)


class _AnyService(Protocol):
    """Placeholder: introspection needs no methods of its own."""


def http_introspect(
    base_url: str, *, prefix: str = "/vgi", headers: Mapping[str, str] | None = None
) -> ServiceDescription:
    """Fetch the ``__describe__`` payload of an HTTP server (started with ``enable_describe``)."""
    transport = HttpTransport(base_url, headers=headers)
    try:
        return HttpConnection(_AnyService, transport, prefix=prefix).describe()
    finally:
        transport.close()


__all__ = [
    "HttpConnection",
    "HttpError",
    "HttpStreamSession",
    "HttpTransport",
    "HttpUnauthorizedError",
    "http_connect",
    "http_introspect",
]
