"""``make_wsgi_app``: the falcon application serving an ``RpcServer`` over HTTP.

This module is the HTTP surface only (routes, headers, status codes,
content codings, authentication, CORS); RPC semantics live in
``_dispatch.HttpDispatcher``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import falcon
import pyarrow as pa

from vgi_rpc._logs import HTTP_LOGGER, WIRE_HTTP_LOGGER
from vgi_rpc.http import _encoding
from vgi_rpc.http._auth import AuthFailure, unauthorized_body
from vgi_rpc.http._body import FILE_BLOCK, ChunkFile, read_body_into_pool
from vgi_rpc.http._dispatch import HttpDispatcher, HttpReply, Route
from vgi_rpc.http._page import PageAccess, add_page_routes
from vgi_rpc.http._refusal import RequestRefusedError
from vgi_rpc.http._replay import InMemorySpentCursors, SpentCursorStore
from vgi_rpc.http._tokens import TokenBook
from vgi_rpc.rpc import AuthContext, RpcServer, is_wire_name
from vgi_rpc.wire import new_request_id

if TYPE_CHECKING:
    from vgi_rpc.external import UploadUrlProvider

ARROW_CONTENT_TYPE = "application/vnd.apache.arrow.stream"
ACCEPT_MAX_RESPONSE_HEADER = "VGI-Accept-Max-Response-Bytes"
MIN_ACCEPT_MAX_RESPONSE = 65536
MAX_ACCEPT_MAX_RESPONSE = (1 << 53) - 1
_SUFFIXES = ("/init", "/exchange")
_NOT_HOSTED = "protocol_not_supported"
_log = logging.getLogger(HTTP_LOGGER)
_wire_log = logging.getLogger(WIRE_HTTP_LOGGER)
Authenticate = Callable[[falcon.Request], AuthContext]
_EXPOSED = [
    "WWW-Authenticate",
    "X-Request-ID",
    "X-VGI-Content-Encoding",
    "X-VGI-RPC-Error",
    "VGI-Auth-Reason",
    "VGI-Auth-Proxy-Required",
    "VGI-Max-Request-Bytes",
    "VGI-Max-Response-Bytes",
    "VGI-Externalization-Enabled",
    "VGI-Max-Externalized-Response-Bytes",
    "VGI-Upload-URL-Support",
    "VGI-Max-Upload-Bytes",
    "VGI-Supported-Encodings",
]
_JOIN_BELOW = 1 << 20  # smaller bodies are joined into one bytes object


class _Capabilities:
    """Stamps capability headers and the request id on every response."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        resp.set_headers(self._headers)
        if resp.get_header("X-Request-ID") is None:
            resp.set_header("X-Request-ID", req.get_header("X-Request-ID") or new_request_id())


class _Health:
    def __init__(self, server: RpcServer) -> None:
        self._body = json.dumps(
            {"status": "ok", "server_id": server.server_id, "protocol": server.protocol_name}
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/json"
        resp.text = self._body

    def on_head(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/json"

    def on_options(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.set_header("Allow", "GET, HEAD, OPTIONS")


class _TokenIntrospection:
    """Section 16 route: always present, definitively refusing (not enabled here)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = 404
        resp.content_type = "application/json"
        resp.text = json.dumps({"error": "token introspection is not enabled on this server"})


class _Rpc:
    """``{prefix}/{method}``, ``.../init`` and ``.../exchange``."""

    def __init__(
        self,
        dispatcher: HttpDispatcher,
        *,
        authenticate: Authenticate | None,
        www_authenticate: str | None,
        max_request_bytes: int | None,
        max_response_bytes: int | None,
        compress_min_bytes: int,
        max_external_bytes: int | None = None,
    ) -> None:
        self._max_external_bytes = max_external_bytes
        self._max_response_bytes = max_response_bytes
        self._dispatcher = dispatcher
        self._authenticate = authenticate
        self._www_authenticate = www_authenticate
        self._max_request_bytes = max_request_bytes
        self._compress_min_bytes = compress_min_bytes

    # First generation: {prefix}/{method}[/init|/exchange].
    def on_post(self, req: falcon.Request, resp: falcon.Response, first: str) -> None:
        self._handle(req, resp, first, None, self._dispatcher.unary)

    def on_post_init(self, req: falcon.Request, resp: falcon.Response, first: str) -> None:
        self._handle(req, resp, first, None, self._dispatcher.init)

    def on_post_exchange(self, req: falcon.Request, resp: falcon.Response, first: str) -> None:
        self._handle(req, resp, first, None, self._dispatcher.exchange)

    # Second generation: {prefix}/{protocol}/{method}[/init|/exchange].
    def on_post_routed(
        self, req: falcon.Request, resp: falcon.Response, first: str, method: str
    ) -> None:
        self._handle(req, resp, method, first, self._dispatcher.unary)

    def on_post_routed_init(
        self, req: falcon.Request, resp: falcon.Response, first: str, method: str
    ) -> None:
        self._handle(req, resp, method, first, self._dispatcher.init)

    def on_post_routed_exchange(
        self, req: falcon.Request, resp: falcon.Response, first: str, method: str
    ) -> None:
        self._handle(req, resp, method, first, self._dispatcher.exchange)

    def _route(self, req: falcon.Request, method: str, protocol: str | None) -> Route:
        if protocol is not None and (
            "%" in _raw_path(req).split("/")[-3 if req.path.endswith(_SUFFIXES) else -2]
            or not is_wire_name(protocol)
        ):
            raise RequestRefusedError(
                404, "the URL's protocol segment is not a protocol name", error_kind=_NOT_HOSTED
            )
        return Route(method, protocol, self._response_cap(req), self._max_external_bytes)

    def _response_cap(self, req: falcon.Request) -> int | None:
        """The effective response cap: the server's, lowered by VGI-Accept-Max-Response-Bytes."""
        cap = self._max_response_bytes
        asked = req.get_header(ACCEPT_MAX_RESPONSE_HEADER)
        if asked is None:
            return cap
        text = asked.strip()
        if not (text.isascii() and text.isdigit() and not text.startswith("0")):
            raise RequestRefusedError(
                400, f"{ACCEPT_MAX_RESPONSE_HEADER} must be one positive decimal integer"
            )
        value = int(text)
        if not MIN_ACCEPT_MAX_RESPONSE <= value <= MAX_ACCEPT_MAX_RESPONSE:
            raise RequestRefusedError(
                400,
                f"{ACCEPT_MAX_RESPONSE_HEADER} must be between {MIN_ACCEPT_MAX_RESPONSE} "
                f"and {MAX_ACCEPT_MAX_RESPONSE}",
            )
        return value if cap is None else min(cap, value)

    def _handle(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        method: str,
        protocol: str | None,
        run: Callable[[Route, bytes | bytearray | pa.Buffer, AuthContext, str], HttpReply],
    ) -> None:
        request_id = req.get_header("X-Request-ID") or new_request_id()
        resp.set_header("X-Request-ID", request_id)
        auth = AuthContext.anonymous()
        if self._authenticate is not None:
            try:
                auth = self._authenticate(req)
            except (ValueError, PermissionError) as exc:
                self._unauthorized(req, resp, exc)
                return
        try:
            route = self._route(req, method, protocol)
            body = self._body(req)
            reply = run(route, body, auth, request_id)
        except RequestRefusedError as problem:
            _log.info("%s %s -> %d: %s", req.method, req.path, problem.status, problem.message)
            reply = self._dispatcher.refusal_reply(problem, request_id)
        self._send(req, resp, reply)
        if _wire_log.isEnabledFor(logging.DEBUG):
            _wire_log.debug(
                "%s %s -> %d (request body %s bytes, response body %d bytes)",
                req.method,
                req.url,
                reply.status,
                req.content_length if req.content_length is not None else "?",
                sum(memoryview(c).nbytes for c in reply.body),
            )

    def _body(self, req: falcon.Request) -> bytes | bytearray | pa.Buffer:
        content_type = (req.content_type or "").split(";")[0].strip().lower()
        if content_type != ARROW_CONTENT_TYPE:
            raise RequestRefusedError(
                415,
                f"expected Content-Type {ARROW_CONTENT_TYPE!r}, got {req.content_type!r}; "
                "every vgi-rpc request body is an Arrow IPC stream",
            )
        cap = self._max_request_bytes
        length = req.content_length
        if cap is not None and length is not None and length > cap:
            raise RequestRefusedError(
                413, f"request body of {length} bytes exceeds max_request_bytes ({cap})"
            )
        coding = req.get_header("Content-Encoding")
        source = req.env.get("wsgi.input")
        if length and not coding and hasattr(source, "readinto"):
            take = getattr(source, "take", None)  # waitress's pooled body (PooledBodyFile)
            if take is not None:
                pooled: pa.Buffer = take()
                if pooled.size == length:
                    return pooled
                raise RequestRefusedError(
                    400, f"request body of {pooled.size} bytes, not its Content-Length {length}"
                )
            return read_body_into_pool(source, length)
        stream = req.bounded_stream
        body = stream.read() if cap is None else stream.read(cap + 1)
        if cap is not None and len(body) > cap:
            raise RequestRefusedError(413, f"request body exceeds max_request_bytes ({cap})")
        return _encoding.decode(body, coding, cap) if coding else body

    def _send(self, req: falcon.Request, resp: falcon.Response, reply: HttpReply) -> None:
        resp.status = reply.status
        resp.content_type = ARROW_CONTENT_TYPE
        if reply.rpc_error:
            resp.set_header("X-VGI-RPC-Error", "true")
        chunks = reply.body
        size = sum(memoryview(c).nbytes for c in chunks)
        if size >= self._compress_min_bytes:
            coding, header = _encoding.choose_response_coding(
                req.get_header(_encoding.ACCEPT_HEADER),
                req.get_header(_encoding.VGI_ACCEPT_HEADER),
            )
            if coding is not None and _encoding.worth_compressing(chunks, coding):
                resp.data = _encoding.encode_chunks(chunks, coding)
                resp.set_header(header, coding)
                return
        if size < _JOIN_BELOW:
            resp.data = b"".join(chunks)
            return
        resp.content_length = size
        file_wrapper = req.env.get("wsgi.file_wrapper")
        if file_wrapper is None:
            resp.stream = cast(Iterable[bytes], chunks)  # any buffer goes to the WSGI server
        else:
            # The wrapper itself is the body (falcon passes a non-file iterable through),
            # so the server sees its own file wrapper and streams from our buffers.
            # waitress sends what it reads as is, so it may read views; gunicorn wants bytes
            views = getattr(file_wrapper, "__module__", "").startswith("waitress.")
            resp.stream = file_wrapper(ChunkFile(chunks, views=views), FILE_BLOCK)

    def _unauthorized(self, req: falcon.Request, resp: falcon.Response, exc: Exception) -> None:
        reason = exc.reason if isinstance(exc, AuthFailure) else "unauthorized"
        resp.status = 401
        resp.content_type = "application/json"
        resp.text = unauthorized_body(reason, str(exc))
        resp.set_header("VGI-Auth-Reason", reason)
        resp.set_header("Cache-Control", "no-store")
        if self._www_authenticate:
            resp.set_header("WWW-Authenticate", self._www_authenticate)
        _log.info("%s %s -> 401 (%s)", req.method, req.path, reason)


def make_wsgi_app(
    server: RpcServer,
    *,
    prefix: str = "/vgi",
    signing_key: bytes | None = None,
    max_stream_response_bytes: int | None = None,
    max_request_bytes: int | None = None,
    authenticate: Authenticate | None = None,
    cors_origins: str | Iterable[str] | None = None,
    upload_url_provider: UploadUrlProvider | None = None,
    max_upload_bytes: int | None = None,
    token_ttl: float = 3600.0,
    www_authenticate: str | None = 'Bearer realm="vgi-rpc"',
    compress_min_bytes: int = 4096,
    token_key: bytes | None = None,
    max_response_bytes: int | None = None,
    replay_guard: SpentCursorStore | bool = False,
    service_page: bool = True,
    max_externalized_response_bytes: int | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """Serve ``server`` as a WSGI application (wire spec section 10).

    Args:
        server: The ``RpcServer`` to expose.
        prefix: URL prefix of every route (``""`` serves at the root).
        signing_key: Secret sealing stream tokens. Give every process behind one
            endpoint the same key; without one a random per-process key is used
            and a warning is logged. ``token_key`` is accepted as an alias.
        max_stream_response_bytes: Response body cap: producer streams continue
            in a new request past it, unary and exchange responses fail with an
            error naming ``max_response_bytes``. ``max_response_bytes`` is an alias.
        max_request_bytes: Largest request body accepted, encoded or decoded (413);
            by default the server's ``limits.max_request_bytes`` (256 MiB unless
            changed; ``ResourceLimits(max_request_bytes=None)`` removes the bound).
        authenticate: Called with each RPC request; return an ``AuthContext`` or
            raise ``ValueError`` / ``PermissionError`` (or ``AuthFailure``) for a 401.
        cors_origins: Origins allowed cross-origin (``"*"`` for any).
        upload_url_provider: Vends presigned upload URLs (``S3Storage``, ``GCSStorage``)
            at ``POST {prefix}/__upload_url__/init``, so clients without storage of
            their own can externalize large requests; the server needs an
            ``external_location`` to fetch them back.
        max_upload_bytes: Largest upload clients are told to make (advertised).
        token_ttl: Seconds a stream token stays valid; 0 disables expiry.
        www_authenticate: ``WWW-Authenticate`` value sent with every 401.
        compress_min_bytes: Smallest response body compressed when the client accepts it.
        token_key: Alias of ``signing_key`` (the reference implementation's name).
        max_response_bytes: Alias of ``max_stream_response_bytes``.
        replay_guard: Accept each stream cursor once. Cursors are sealed and
            stateless, so by default whoever holds one can send it again and
            resume the stream from that point. ``True`` remembers spent cursors
            in this process (``InMemorySpentCursors``); behind several worker
            processes pass one shared ``SpentCursorStore``.
        service_page: Serve an HTML page of the service at ``GET {prefix}/`` (its
            protocols, methods, types and a form per unary method, which posts JSON
            to ``{prefix}/page-call/...``); ``False`` removes both routes.
        max_externalized_response_bytes: Cap on what one response may upload to
            external storage; past it the call fails (before uploading) with an
            error naming ``max_externalized_response_bytes``.
    """
    if upload_url_provider is not None and server.external is None:
        raise ValueError(
            "upload_url_provider needs RpcServer(external_location=...) to fetch what "
            "clients upload"
        )
    if signing_key is not None and token_key is not None and signing_key != token_key:
        raise ValueError("give signing_key or token_key (an alias), not two different keys")
    key = signing_key if signing_key is not None else token_key
    if key is None:
        key = os.urandom(32)
        _log.warning(
            "make_wsgi_app(): no signing_key given, so a random key was generated for this "
            "process; stream turns will fail if a load balancer sends them to another process. "
            "Pass the same signing_key to every process serving %s.",
            server.protocol_name,
        )
    if max_request_bytes is None:
        max_request_bytes = server.limits.max_request_bytes
    cap = max_stream_response_bytes if max_stream_response_bytes is not None else max_response_bytes
    prefix = _normalise_prefix(prefix)
    guard: SpentCursorStore | None
    if replay_guard is True:
        guard = InMemorySpentCursors()
    elif replay_guard is False:
        guard = None
    else:
        guard = replay_guard
    dispatcher = HttpDispatcher(server, TokenBook(key, ttl=token_ttl, replay_guard=guard))
    externalizes = server.external is not None and server.external.externalizes
    capability_headers = _capability_headers(
        max_request_bytes,
        cap,
        max_externalized_response_bytes if externalizes else None,
        externalizes=externalizes,
        uploads=upload_url_provider is not None,
        max_upload_bytes=max_upload_bytes,
    )
    middleware: list[Any] = [_Capabilities(capability_headers)]
    if cors_origins is not None:
        origins = cors_origins if isinstance(cors_origins, str) else list(cors_origins)
        middleware.append(falcon.CORSMiddleware(allow_origins=origins, expose_headers=_EXPOSED))
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    rpc = _Rpc(
        dispatcher,
        authenticate=authenticate,
        www_authenticate=www_authenticate,
        max_request_bytes=max_request_bytes,
        max_response_bytes=cap,
        compress_min_bytes=compress_min_bytes,
        max_external_bytes=max_externalized_response_bytes if externalizes else None,
    )
    app.add_route(f"{prefix}/health", _Health(server))
    app.add_route(f"{prefix}/__introspect_token__", _TokenIntrospection())
    if upload_url_provider is not None:
        from vgi_rpc.http._upload import UploadUrls

        uploads = UploadUrls(rpc._handle, dispatcher, upload_url_provider)
        app.add_route(f"{prefix}/__upload_url__/init", uploads)
    app.add_route(f"{prefix}/{{first}}", rpc)
    app.add_route(f"{prefix}/{{first}}/init", rpc, suffix="init")
    app.add_route(f"{prefix}/{{first}}/exchange", rpc, suffix="exchange")
    app.add_route(f"{prefix}/{{first}}/{{method}}", rpc, suffix="routed")
    app.add_route(f"{prefix}/{{first}}/{{method}}/init", rpc, suffix="routed_init")
    app.add_route(f"{prefix}/{{first}}/{{method}}/exchange", rpc, suffix="routed_exchange")
    if service_page:
        access = PageAccess(authenticate, rpc._unauthorized, max_request_bytes, cap)
        add_page_routes(app, prefix, dispatcher, access)
    return app


def _capability_headers(
    max_request_bytes: int | None,
    max_response_bytes: int | None,
    max_external_bytes: int | None,
    *,
    externalizes: bool,
    uploads: bool,
    max_upload_bytes: int | None,
) -> dict[str, str]:
    """The capability headers stamped on every response (spec section 10)."""
    headers = {
        "VGI-Accept-Max-Response-Bytes-Support": "true",
        "VGI-Externalization-Enabled": "true" if externalizes else "false",
        "VGI-Supported-Encodings": ", ".join(_encoding.PRODUCED),
    }
    optional = {
        "VGI-Max-Request-Bytes": max_request_bytes,
        "VGI-Max-Response-Bytes": max_response_bytes,
        "VGI-Max-Externalized-Response-Bytes": max_external_bytes,
        "VGI-Max-Upload-Bytes": max_upload_bytes if uploads else None,
    }
    headers.update({name: str(value) for name, value in optional.items() if value is not None})
    if uploads:
        headers["VGI-Upload-URL-Support"] = "true"
    return headers


def _raw_path(req: falcon.Request) -> str:
    """The request path as sent, before percent-decoding (when the WSGI server keeps it)."""
    raw = req.env.get("RAW_URI") or req.env.get("REQUEST_URI") or req.path
    return str(raw).split("?", 1)[0].rstrip("/")


def _normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    if prefix in ("", "/"):
        return ""
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    return prefix.rstrip("/")


__all__ = ["ARROW_CONTENT_TYPE", "make_wsgi_app"]
