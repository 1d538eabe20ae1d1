"""``POST {prefix}/page-call/[{protocol}/]{method}``: the service page's JSON call endpoint.

The page's form sends a unary method's parameters as a JSON object. This
resource checks them against the method's parameter schema, builds the
request stream any client would send, and answers it through the same
dispatcher as ``POST {prefix}/{method}`` (authentication, request size
limit, read policy, routing, access log and observers included), then
returns the result, the logs and any error as JSON.

Only ``application/json`` bodies are taken: a cross-site page cannot send
that content type without a CORS preflight, so the endpoint cannot be
driven by a plain HTML form on another site.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any

import falcon
import pyarrow as pa

from vgi_rpc._http_errors import JsonArgumentError, PageCallRefusedError
from vgi_rpc._ipc import Metadata
from vgi_rpc._logs import HTTP_LOGGER
from vgi_rpc._methods import RpcMethodInfo
from vgi_rpc.http._dispatch import HttpDispatcher, Route
from vgi_rpc.http._page_json import arguments_batch, result_json
from vgi_rpc.http._refusal import RequestRefusedError
from vgi_rpc.rpc import AuthContext
from vgi_rpc.wire import (
    BatchKind,
    classify,
    message_from_metadata,
    new_request_id,
    request_metadata,
    rpc_error_from_metadata,
)
from vgi_rpc.wire import keys as k

CALL_SEGMENT = "page-call"  # not a protocol or method name, so it shadows no RPC route
JSON_CONTENT_TYPE = "application/json"
_log = logging.getLogger(HTTP_LOGGER)
_ERROR_TYPES = {
    400: "BadRequest",
    404: "NotFound",
    413: "RequestTooLarge",
    415: "UnsupportedMediaType",
}


@dataclasses.dataclass(frozen=True, slots=True)
class PageAccess:
    """What the page routes share with the RPC routes of the same app."""

    authenticate: Callable[[falcon.Request], AuthContext] | None
    unauthorized: Callable[[falcon.Request, falcon.Response, Exception], None]
    max_request_bytes: int | None
    max_response_bytes: int | None

    def caller(self, req: falcon.Request, resp: falcon.Response) -> AuthContext | None:
        """The authenticated caller; ``None`` after answering 401."""
        if self.authenticate is None:
            return AuthContext.anonymous()
        try:
            return self.authenticate(req)
        except (ValueError, PermissionError) as exc:
            self.unauthorized(req, resp, exc)
            return None


def _refused(status: int, message: str, error_type: str | None = None) -> PageCallRefusedError:
    return PageCallRefusedError(
        status, message, error_type or _ERROR_TYPES.get(status, "BadRequest")
    )


class PageCall:
    """Calls one unary method with JSON parameters and answers with JSON."""

    def __init__(self, dispatcher: HttpDispatcher, access: PageAccess) -> None:
        self._dispatcher = dispatcher
        self._access = access

    def on_post(self, req: falcon.Request, resp: falcon.Response, first: str) -> None:
        """``page-call/{method}``: the server's default protocol (as first-generation clients)."""
        self._handle(req, resp, None, first)

    def on_post_routed(
        self, req: falcon.Request, resp: falcon.Response, first: str, method: str
    ) -> None:
        """``page-call/{protocol}/{method}``: a hosted protocol, named as second-generation clients name it."""
        self._handle(req, resp, first, method)

    def _handle(
        self, req: falcon.Request, resp: falcon.Response, protocol: str | None, method: str
    ) -> None:
        request_id = req.get_header("X-Request-ID") or new_request_id()
        resp.set_header("X-Request-ID", request_id)
        resp.set_header("Cache-Control", "no-store")
        auth = self._access.caller(req, resp)
        if auth is None:
            return
        try:
            info, version = self._method(protocol, method)
            given = self._arguments(req)
            try:
                batch = arguments_batch(info, given)
            except JsonArgumentError as exc:
                raise _refused(400, str(exc), "TypeError") from None
            answer = self._call(info, protocol, version, batch, auth, request_id)
        except PageCallRefusedError as problem:
            _log.info("%s %s -> %d: %s", req.method, req.path, problem.status, problem.message)
            resp.status = problem.status
            answer = {"error": {"type": problem.error_type, "message": problem.message}}
        resp.content_type = JSON_CONTENT_TYPE
        resp.text = json.dumps({"request_id": request_id, **answer}, ensure_ascii=False)

    def _method(self, protocol: str | None, method: str) -> tuple[RpcMethodInfo, str | None]:
        server = self._dispatcher.server
        if protocol is not None and protocol not in server.hosted:
            raise _refused(
                404,
                f"this server does not host protocol {protocol!r}; it hosts {list(server.hosted)}",
            )
        handler = server.handler(protocol, method)
        if handler is None:
            names = sorted(server.methods if protocol is None else server.hosted[protocol].methods)
            raise _refused(404, f"unknown method {method!r}; methods: {', '.join(names)}")
        if handler.info.is_stream:
            raise _refused(
                400,
                f"{method}() is a stream method; the page calls unary methods only "
                "(use a vgi-rpc client for streams)",
            )
        version = server.protocol_version if protocol is None else handler.hosted.version
        return handler.info, version

    def _arguments(self, req: falcon.Request) -> dict[str, object]:
        content_type = (req.content_type or "").split(";")[0].strip().lower()
        if content_type != JSON_CONTENT_TYPE:
            raise _refused(
                415, f"expected Content-Type {JSON_CONTENT_TYPE!r}, got {req.content_type!r}"
            )
        if req.get_header("Content-Encoding"):
            raise _refused(415, "the page's call endpoint takes an uncompressed JSON body")
        cap = self._access.max_request_bytes
        length = req.content_length
        if cap is not None and length is not None and length > cap:
            raise _refused(413, f"request body of {length} bytes exceeds max_request_bytes ({cap})")
        stream = req.bounded_stream
        body = stream.read() if cap is None else stream.read(cap + 1)
        if cap is not None and len(body) > cap:
            raise _refused(413, f"request body exceeds max_request_bytes ({cap})")
        try:
            given = json.loads(body) if body.strip() else {}
        except json.JSONDecodeError as exc:
            raise _refused(
                400,
                f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            ) from None
        except (ValueError, RecursionError) as exc:  # bad UTF-8; absurd nesting
            raise _refused(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(given, dict):
            raise _refused(
                400,
                f"the body must be a JSON object of parameters, got a JSON {type(given).__name__}",
            )
        return given

    def _call(
        self,
        info: RpcMethodInfo,
        protocol: str | None,
        version: str | None,
        batch: pa.RecordBatch,
        auth: AuthContext,
        request_id: str,
    ) -> dict[str, object]:
        extra: Metadata = {k.PROTOCOL_KEY: protocol.encode()} if protocol is not None else {}
        metadata = request_metadata(info.name, request_id, version, extra)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch, custom_metadata=metadata)
        body = sink.getvalue().to_pybytes()
        cap = self._access.max_request_bytes
        if cap is not None and len(body) > cap:
            raise _refused(
                413, f"the request built from these parameters exceeds max_request_bytes ({cap})"
            )
        route = Route(info.name, protocol, self._access.max_response_bytes)
        try:
            reply = self._dispatcher.unary(route, body, auth, request_id)
        except RequestRefusedError as problem:
            raise _refused(problem.status, problem.message) from None
        answer = _decode_reply(info, b"".join(reply.body))
        if reply.status != 200:
            error = answer.get("error") or {}
            message = error.get("message") or "the server refused the request"
            raise _refused(reply.status, str(message), error.get("type"))
        return answer


def _decode_reply(info: RpcMethodInfo, body: bytes) -> dict[str, Any]:
    """Logs, the error or the result of a unary reply (our own dispatcher's bytes)."""
    logs: list[dict[str, object]] = []
    answer: dict[str, Any] = {"logs": logs}
    source = pa.BufferReader(body)
    while source.tell() < len(body):
        reader = pa.ipc.open_stream(source)
        for batch, metadata in _batches(reader):
            kind = classify(batch, metadata)
            if kind is BatchKind.LOG and metadata:
                message = message_from_metadata(metadata)
                logs.append(
                    {
                        "level": message.level.value,
                        "message": message.message,
                        "extra": message.extra,
                    }
                )
            elif kind is BatchKind.ERROR and metadata:
                error = rpc_error_from_metadata(metadata)
                answer["error"] = {
                    "type": error.error_type,
                    "message": error.error_message,
                    "kind": error.error_kind,
                    "traceback": error.remote_traceback or None,
                }
            elif kind is BatchKind.DATA:
                answer["result"] = result_json(info, batch)
    return answer


def _batches(
    reader: pa.ipc.RecordBatchStreamReader,
) -> list[tuple[pa.RecordBatch, dict[bytes, bytes] | None]]:
    out: list[tuple[pa.RecordBatch, dict[bytes, bytes] | None]] = []
    while True:
        try:
            batch, metadata = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            return out
        out.append((batch, dict(metadata) if metadata else None))


__all__ = ["CALL_SEGMENT", "PageAccess", "PageCall"]
