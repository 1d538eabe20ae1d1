"""HTTP statuses mapped to the exception tree, in one table (the client side).

A response the client cannot read an answer from becomes an ``RpcError``
subclass whose ``error_type`` says what happened, with the server's own
words as ``error_message``.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping
from typing import cast

from vgi_rpc._errors import RpcError, VgiRpcError
from vgi_rpc._http_errors import (
    AuthenticationError,
    HttpError,
    HttpNotFoundError,
    RequestTooLargeError,
)
from vgi_rpc._ipc import IpcValidation
from vgi_rpc._ipc_reader import open_stream_reader
from vgi_rpc.wire import BatchKind, classify, rpc_error_from_metadata

_ARROW_STATUSES = frozenset((200, 400, 404, 413, 415))
_PREVIEW = 500


def status_error(
    url: str, status: int, headers: Mapping[str, str], body: bytes, arrow: bool
) -> RpcError | None:
    """The error a response stands for, or ``None`` when its Arrow body is the answer.

    ``headers`` must answer lower-case names; ``arrow``: the body is declared an
    Arrow IPC stream.
    """
    if status == 401:
        return _unauthorized(headers, body)
    if status == 413:
        return RequestTooLargeError(_server_words(body, arrow) or f"POST {url}: request too large")
    if status in _ARROW_STATUSES and arrow:
        return None
    text = body[:_PREVIEW].decode("utf-8", "replace").strip()
    message = f"POST {url}: {text or 'no body'}"
    if status == 404:
        return HttpNotFoundError(message)
    return HttpError(status, message)


def _unauthorized(headers: Mapping[str, str], body: bytes) -> AuthenticationError:
    reason = headers.get("vgi-auth-reason") or "unauthorized"
    detail = ""
    with contextlib.suppress(ValueError, AttributeError):
        envelope = json.loads(body)
        reason = str(envelope.get("reason") or reason)
        detail = str(envelope.get("detail") or "")
    if not detail and not body.lstrip().startswith((b"{", b"<")):
        detail = body[:_PREVIEW].decode("utf-8", "replace").strip()  # a proxy's plain-text 401
    return AuthenticationError(reason, detail, request_id=headers.get("x-request-id", ""))


def _server_words(body: bytes, arrow: bool) -> str:
    """The message of the error batch in an Arrow body, else the body's text (bounded)."""
    if not arrow:
        return body[:_PREVIEW].decode("utf-8", "replace").strip()
    try:  # a refusal is one small error stream; anything unreadable says nothing
        source = cast(io.BufferedReader, io.BufferedReader(io.BytesIO(body[: 1 << 20])))
        reader = open_stream_reader(source)
        while reader is not None and (item := reader.read(IpcValidation.FULL)) is not None:
            batch, metadata = item
            if classify(batch, metadata) is BatchKind.ERROR:
                return rpc_error_from_metadata(metadata or {}).error_message
    except (VgiRpcError, ValueError, OSError):
        pass
    return ""


__all__ = ["status_error"]
