"""Sans-IO wire codec: request metadata, log and error batches, classification.

Builds and reads the metadata dictionaries of spec sections 5-8 and 13.
Never touches a channel, a transport or user types. ``json`` and ``traceback``
are imported where logs and errors are built: a call without either needs neither.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import TYPE_CHECKING

import pyarrow as pa

from vgi_rpc._errors import RpcError
from vgi_rpc._ipc import Metadata, zero_rows
from vgi_rpc._logs import Level, Message
from vgi_rpc.wire import keys as k

if TYPE_CHECKING:
    import _random

MAX_TRACEBACK_CHARS = 16_000
MAX_TRACEBACK_FRAMES = 5
_TRUNCATED = "\n… <traceback truncated>"

EMPTY_SCHEMA = pa.schema([])


# Request ids correlate log lines, they guard nothing: a generator seeded from the OS
# costs no system call per id (``os.urandom`` does); a forked child is reseeded. The C
# generator ``random.Random`` builds on: the ``random`` module itself costs a worker about
# a millisecond to import, for distributions it never draws from. Made on first use: a
# worker whose clients send their request ids never needs it.
_IDS: _random.Random | None = None


def new_request_id() -> str:
    """A fresh 16-character hex correlation id."""
    return f"{(_IDS or _seeded_ids()).getrandbits(64):016x}"


def _seeded_ids() -> _random.Random:
    global _IDS
    import _random

    ids = _IDS = _random.Random()
    os.register_at_fork(after_in_child=ids.seed)
    return ids


def new_server_id() -> str:
    """A fresh 12-character hex server instance id."""
    return os.urandom(6).hex()


def request_metadata(
    method: str,
    request_id: str | None = None,
    protocol_version: str | None = None,
    extra: Metadata | None = None,
) -> Metadata:
    """Custom metadata for a request batch (spec section 5); the request id is optional."""
    metadata: Metadata = {k.METHOD_KEY: method.encode(), k.REQUEST_VERSION_KEY: k.REQUEST_VERSION}
    if request_id is not None:
        metadata[k.REQUEST_ID_KEY] = request_id.encode()
    if protocol_version is not None:
        metadata[k.PROTOCOL_VERSION_KEY] = protocol_version.encode()
    if extra:
        metadata.update(extra)
    return metadata


def log_metadata(
    level: Level,
    message: str,
    extra: dict[str, object] | None,
    *,
    server_id: str,
    request_id: str,
) -> Metadata:
    """Custom metadata for a log batch (spec section 8)."""
    import json

    metadata: Metadata = {
        k.LOG_LEVEL_KEY: level.value.encode(),
        k.LOG_MESSAGE_KEY: message.encode(),
    }
    if extra:
        metadata[k.LOG_EXTRA_KEY] = json.dumps(extra, default=str).encode()
    metadata[k.SERVER_ID_KEY] = server_id.encode()
    metadata[k.REQUEST_ID_KEY] = request_id.encode()
    return metadata


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TRACEBACK_CHARS else text[:MAX_TRACEBACK_CHARS] + _TRUNCATED


def _format(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _frames(tb: TracebackType | None) -> list[dict[str, object]]:
    import traceback

    summary = traceback.extract_tb(tb)[-MAX_TRACEBACK_FRAMES:]
    return [
        {"file": f.filename, "line": f.lineno, "function": f.name, "code": f.line or None}
        for f in summary
    ]


# Spec section 8: each well-known kind names one canonical code; unclassified errors are UNKNOWN.
_CODE_OF_KIND = {
    "method_not_implemented": "UNIMPLEMENTED",
    "protocol_not_specified": "INVALID_ARGUMENT",
    "protocol_not_supported": "UNIMPLEMENTED",
    "protocol_version_mismatch": "FAILED_PRECONDITION",
}


def error_code_of(exc: BaseException, kind: str | None) -> str:
    """The canonical code of ``exc``: its ``error_code`` attribute, else its kind's, else UNKNOWN."""
    code = getattr(exc, "error_code", None)
    if isinstance(code, str) and code:
        return code
    return _CODE_OF_KIND.get(kind or "", "UNKNOWN")


MAX_ERROR_DETAILS_BYTES = 4096


def error_details_of(exc: BaseException) -> str | None:
    """The JSON of ``exc.error_details`` when it is a valid details array (spec section 8).

    A list of objects, each naming its ``@type`` once, at most 4096 bytes as
    JSON; anything else is omitted whole (never a prefix or a subset).
    """
    import json

    details = getattr(exc, "error_details", None)
    if not isinstance(details, list) or not details:
        return None
    types = [d.get("@type") if isinstance(d, dict) else None for d in details]
    if any(not isinstance(t, str) or not t for t in types) or len(set(types)) != len(types):
        return None
    try:
        text = json.dumps(details, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return None
    return text if len(text.encode()) <= MAX_ERROR_DETAILS_BYTES else None


def error_kind_of(exc: BaseException) -> str | None:
    """The stable error category of ``exc``, if it carries one."""
    kind = getattr(exc, "error_kind", None)
    return kind if isinstance(kind, str) else None


def error_metadata(
    exc: BaseException, *, server_id: str, request_id: str, traceback: bool = True
) -> Metadata:
    """Custom metadata for an EXCEPTION batch describing ``exc`` (spec section 8).

    With ``traceback=False`` the batch carries the type and message only: no
    traceback, frames, file paths or chained exceptions.
    """
    import json

    type_name = type(exc).__name__
    message = str(exc)
    extra: dict[str, object] = {"exception_type": type_name, "exception_message": message}
    if traceback:
        extra["traceback"] = _clip(_format(exc))
        extra["frames"] = _frames(exc.__traceback__)
        if exc.__cause__ is not None:
            extra["cause"] = _clip(_format(exc.__cause__))
        elif exc.__context__ is not None and not exc.__suppress_context__:
            extra["context"] = _clip(_format(exc.__context__))
    kind = error_kind_of(exc)
    code = error_code_of(exc, kind)
    extra["error_code"] = code
    if kind is not None:
        extra["error_kind"] = kind
    details = error_details_of(exc)
    if details is not None:
        extra["error_details"] = json.loads(details)
    metadata: Metadata = {
        k.LOG_LEVEL_KEY: b"EXCEPTION",
        k.LOG_MESSAGE_KEY: f"{type_name}: {message}".encode(),
        k.LOG_EXTRA_KEY: json.dumps(extra, default=str).encode(),
    }
    if kind is not None:
        metadata[k.ERROR_KIND_KEY] = kind.encode()
    metadata[k.ERROR_CODE_KEY] = code.encode()
    if details is not None:
        metadata[k.ERROR_DETAILS_KEY] = details.encode()
    metadata[k.SERVER_ID_KEY] = server_id.encode()
    metadata[k.REQUEST_ID_KEY] = request_id.encode()
    return metadata


def _text(metadata: Metadata, key: bytes) -> str:
    raw = metadata.get(key)
    return raw.decode("utf-8", "replace") if raw is not None else ""


def _extra(metadata: Metadata) -> dict[str, object] | None:
    import json

    raw = metadata.get(k.LOG_EXTRA_KEY)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return {"raw": raw.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"value": value}


def rpc_error_from_metadata(metadata: Metadata) -> RpcError:
    """Rebuild the ``RpcError`` an EXCEPTION batch describes (spec section 8)."""
    import json

    extra = _extra(metadata) or {}
    error_type = extra.get("exception_type")
    message = _text(metadata, k.LOG_MESSAGE_KEY)
    exc_message = extra.get("exception_message")
    if isinstance(exc_message, str):
        message = exc_message
    kind = _text(metadata, k.ERROR_KIND_KEY) or extra.get("error_kind")
    remote_tb = extra.get("traceback")
    code = _text(metadata, k.ERROR_CODE_KEY) or extra.get("error_code")
    details: object = extra.get("error_details")
    raw_details = metadata.get(k.ERROR_DETAILS_KEY)
    if raw_details is not None:
        try:
            details = json.loads(raw_details)
        except ValueError:
            details = None
    return RpcError(
        error_type if isinstance(error_type, str) else "EXCEPTION",
        message,
        remote_tb if isinstance(remote_tb, str) else "",
        request_id=_text(metadata, k.REQUEST_ID_KEY),
        error_kind=kind if isinstance(kind, str) and kind else None,
        error_code=code if isinstance(code, str) else "",
        error_details=[d for d in details if isinstance(d, dict)]
        if isinstance(details, list)
        else None,
    )


def message_from_metadata(metadata: Metadata) -> Message:
    """Rebuild the client-visible ``Message`` a log batch carries."""
    raw_level = _text(metadata, k.LOG_LEVEL_KEY)
    try:
        level = Level(raw_level)
    except ValueError:
        level = Level.INFO
    return Message(
        level,
        _text(metadata, k.LOG_MESSAGE_KEY),
        _extra(metadata),
        server_id=_text(metadata, k.SERVER_ID_KEY),
        request_id=_text(metadata, k.REQUEST_ID_KEY),
    )


_EMPTY: dict[int, tuple[pa.Schema, pa.RecordBatch]] = {}


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    """A zero-row batch on ``schema`` (carrier for logs, errors and void results).

    Built once per schema object (methods and streams keep theirs for life), so
    a void result or a log carrier is the same immutable batch every time.
    """
    entry = _EMPTY.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    batch = zero_rows(schema)
    if len(_EMPTY) >= 256:
        _EMPTY.clear()
    _EMPTY[id(schema)] = (schema, batch)  # the entry keeps the schema alive: its id stays unique
    return batch


__all__ = [
    "EMPTY_SCHEMA",
    "empty_batch",
    "error_code_of",
    "error_details_of",
    "error_kind_of",
    "error_metadata",
    "log_metadata",
    "message_from_metadata",
    "new_request_id",
    "new_server_id",
    "request_metadata",
    "rpc_error_from_metadata",
]
