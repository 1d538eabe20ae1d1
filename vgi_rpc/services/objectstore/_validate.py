"""Checks on untrusted request fields: names, sizes, kinds, page tokens, object payloads."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable

import pyarrow as pa

from vgi_rpc import IPCError, read_ipc_stream
from vgi_rpc.services.objectstore._codec import VALUE_LIMITS, check_value, typename_of
from vgi_rpc.services.objectstore._errors import InvalidRequest
from vgi_rpc.services.objectstore._ids import ObjectID
from vgi_rpc.services.objectstore.protocol import BLOB, VALUE

MAX_NAME_BYTES = 512
MAX_PROPERTIES = 64
MAX_PROPERTY_BYTES = 4096
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def name(text: str) -> str:
    """A name: 1-512 bytes of UTF-8 without control characters."""
    size = len(text.encode()) if text else 0
    if not 0 < size <= MAX_NAME_BYTES:
        raise InvalidRequest(f"a name is 1 to {MAX_NAME_BYTES} bytes of UTF-8, got {size}")
    if _CONTROL.search(text):
        raise InvalidRequest(f"a name may not contain control characters: {text[:60]!r}")
    return text


def pattern(text: str) -> Callable[[str], bool]:
    """A glob of at most 512 bytes, compiled for this request only (``fnmatch`` caches forever)."""
    size = len(text.encode())
    if size > MAX_NAME_BYTES:
        raise InvalidRequest(f"a pattern is at most {MAX_NAME_BYTES} bytes of UTF-8, got {size}")
    match = re.compile(fnmatch.translate(text)).match
    return lambda candidate: match(candidate) is not None


def kind(text: str) -> str:
    """``value`` or ``blob``."""
    if text not in (VALUE, BLOB):
        raise InvalidRequest(f"kind must be {VALUE!r} or {BLOB!r}, not {text[:40]!r}")
    return text


def object_id(number: int) -> ObjectID:
    """An id as it arrives on the wire (int64)."""
    try:
        return ObjectID(number)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(str(exc)) from None


def reference(text: str) -> ObjectID | str:
    """An id spelled ``o`` + 16 hex digits, or else a name."""
    if len(text) == 17 and text.startswith("o"):
        try:
            return ObjectID(text)
        except ValueError:
            pass
    return name(text)


def properties(props: dict[str, str]) -> dict[str, str]:
    """Extra metadata: at most 64 entries of small strings."""
    if len(props) > MAX_PROPERTIES:
        raise InvalidRequest(f"at most {MAX_PROPERTIES} properties, got {len(props)}")
    for key, value in props.items():
        if not key or len(key) + len(value) > MAX_PROPERTY_BYTES:
            raise InvalidRequest(
                f"property {key[:40]!r} is empty or longer than {MAX_PROPERTY_BYTES}"
            )
    return props


def properties_text(text: str) -> dict[str, str]:
    """Extra metadata as it travels: ``""``, or a JSON object of at most 64 small strings."""
    if not text:
        return {}
    if len(text) > MAX_PROPERTIES * (MAX_PROPERTY_BYTES + 8):
        raise InvalidRequest(f"properties of {len(text)} characters are too long")
    try:
        props = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"properties are not JSON: {exc}") from None
    if not isinstance(props, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in props.items()
    ):
        raise InvalidRequest("properties must be a JSON object of strings")
    return properties(props)


def bounded(value: int, what: str, low: int, high: int) -> int:
    """``value`` within ``[low, high]``."""
    if not low <= value <= high:
        raise InvalidRequest(f"{what} must be between {low} and {high}, not {value}")
    return value


def value_stream(data: pa.Buffer) -> str:
    """Check that ``data`` is a well-formed object store IPC stream, values included.

    Every batch is validated in full (offsets, dictionary indices, nested
    lengths), so no reader of the object can be led outside its buffers, and
    the batches must rebuild a value of the kind the schema records, so every
    object a get returns can be read. Returns the type name it records
    (``""`` when it records none).
    """
    try:
        schema, batches = read_ipc_stream(data, VALUE_LIMITS)
        check_value(schema, batches)
    except (IPCError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise InvalidRequest(f"malformed object data: {exc}") from None
    return typename_of(schema)
