"""The two stream tokens of stateless HTTP streams: the call token and the cursor.

The call token is minted once by ``/init`` and holds what never changes for
the call (method, state class, schemas, stream id); the cursor is re-minted
every turn and holds the state's field values plus the ``call_id`` binding
it to its call. Both are sealed by ``_seal.Sealer``; this module only frames
their plaintext and maps state objects to bytes and back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
import threading
import time
from collections import OrderedDict
from typing import NamedTuple

import pyarrow as pa

from vgi_rpc._arrow_codecs import build_dataclass, dataclass_field_codecs
from vgi_rpc._arrow_types import fields_schema
from vgi_rpc._errors import SchemaError
from vgi_rpc._flat_row import FlatLayout, flat_layout
from vgi_rpc.http._replay import SpentCursorStore
from vgi_rpc.http._seal import Sealer, TokenError, derive_key
from vgi_rpc.rpc import AuthContext, StreamState

CURSOR_VERSION = 6
CALL_VERSION = 1
_CURSOR_AAD = b"vgi_rpc.state.v4\x00"
_CALL_AAD = b"vgi_rpc.call.v1\x00"
_HEAD = struct.Struct("<Q16s")
_CURSOR_HEAD = struct.Struct("<Q16sQ")  # created, call id, turn
_LEN = struct.Struct("<I")


def _is_dataclass(cls: type) -> bool:
    return dataclasses.is_dataclass(cls)


class StateCodec:
    """Maps one ``StreamState`` dataclass to a record-batch message and back."""

    def __init__(self, cls: type[StreamState]) -> None:
        if not _is_dataclass(cls):
            raise SchemaError(
                f"{cls.__name__} must be a @dataclass to travel between HTTP stream turns"
            )
        self.cls = cls
        self.codecs = dataclass_field_codecs(cls)
        self.schema = fields_schema(self.codecs)
        digest = hashlib.sha256(self.schema.serialize().to_pybytes()).hexdigest()[:16]
        # The digest makes a token minted by a different version of the class unreadable.
        self.key = f"{cls.__module__}.{cls.__qualname__}#{digest}"
        self._empty: bytes | None = None
        # A state of flat fields is written and read as pyarrow would, without pyarrow:
        # a cursor is minted and opened on every turn of an HTTP stream.
        self._flat: FlatLayout | None = flat_layout(self.schema) if self.codecs else None

    def encode(self, state: StreamState) -> bytes:
        """The state's field values as one serialized record batch (no schema)."""
        if not self.codecs:  # a stateless stream's cursor carries the same batch every turn
            if self._empty is None:
                self._empty = self._encode(state)
            return self._empty
        return self._encode(state)

    def _encode(self, state: StreamState) -> bytes:
        name = self.cls.__name__
        values = []
        for field_name, codec in self.codecs:
            value = getattr(state, field_name)
            values.append(None if value is None else codec.to_arrow(value, f"{name}.{field_name}"))
        writer = self._flat.writer(None) if self._flat is not None else None
        chunks = writer.message(values) if writer is not None else None
        if chunks is not None:
            return b"".join(chunks)
        arrays = [pa.array([py], type=f.type) for py, f in zip(values, self.schema, strict=True)]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        return batch.serialize().to_pybytes()

    def decode(self, data: bytes) -> StreamState:
        """Rebuild the state from ``encode``'s bytes."""
        values = self._flat_values(data)
        if values is None:
            try:
                batch = pa.ipc.read_record_batch(pa.py_buffer(data), self.schema)
            except (pa.ArrowInvalid, OSError) as exc:
                raise TokenError(f"stream state does not decode: {exc}") from None
            values = tuple(column[0].as_py() for column in batch.columns)
        row = {name: value for (name, _), value in zip(self.codecs, values, strict=True)}
        state = build_dataclass(self.cls, self.codecs, row)
        assert isinstance(state, StreamState)
        return state

    def _flat_values(self, data: bytes) -> tuple[object, ...] | None:
        """The values of a flat state's message read in place (``None``: let pyarrow read it)."""
        if self._flat is None or len(data) < 8:
            return None
        header_length = int.from_bytes(data[4:8], "little", signed=True)
        if not 0 < header_length <= len(data) - 8:
            return None
        return self._flat.decode(data[8 : 8 + header_length], data)


_codecs: dict[type, StateCodec] = {}
_codecs_lock = threading.Lock()


def state_codec(cls: type[StreamState]) -> StateCodec:
    """The (cached) codec of a state class.

    Raises:
        SchemaError: The class is not a dataclass or a field has no Arrow mapping.
    """
    codec = _codecs.get(cls)
    if codec is None:
        codec = StateCodec(cls)
        with _codecs_lock:
            _codecs[cls] = codec
    return codec


def _codec_by_key(key: str) -> StateCodec:
    """Resolve a call token's class key among the StreamState classes this process defines."""
    for codec in list(_codecs.values()):
        if codec.key == key:
            return codec
    pending: list[type] = [StreamState]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if _is_dataclass(cls) and key.startswith(f"{cls.__module__}.{cls.__qualname__}#"):
            codec = state_codec(cls)
            if codec.key == key:
                return codec
    raise TokenError(f"stream state class {key.split('#')[0]!r} is not known to this server")


class Turn(NamedTuple):
    """An opened cursor: its call, the state it carries, and its turn number."""

    call: Call
    state: StreamState
    number: int


class Call(NamedTuple):
    """What the call token carries: fixed for the life of one stream."""

    call_id: bytes
    method: str
    state: StateCodec
    output_schema: pa.Schema
    input_schema: pa.Schema
    stream_id: str


def _pack(*parts: bytes) -> bytes:
    out = bytearray()
    for part in parts:
        out += _LEN.pack(len(part))
        out += part
    return bytes(out)


def _unpack(data: bytes, offset: int, count: int) -> list[bytes]:
    parts = []
    for _ in range(count):
        if offset + 4 > len(data):
            raise TokenError("state token payload is truncated")
        (n,) = _LEN.unpack_from(data, offset)
        offset += 4
        if offset + n > len(data):
            raise TokenError("state token payload is truncated")
        parts.append(data[offset : offset + n])
        offset += n
    return parts


class TokenBook:
    """Mints and opens both token kinds for one app, with a cache of resolved calls.

    Args:
        signing_key: Shared secret; processes sharing it accept each other's tokens.
        ttl: Seconds a token stays valid (0 disables expiry).
        cache_size: Resolved calls kept per process, keyed by authenticated call id.
        replay_guard: Where spent cursors are recorded; with one, a cursor is
            accepted once (see ``_replay``). ``None``: cursors can be replayed.
    """

    def __init__(
        self,
        signing_key: bytes,
        *,
        ttl: float = 3600.0,
        cache_size: int = 1024,
        replay_guard: SpentCursorStore | None = None,
    ) -> None:
        self._guard = replay_guard
        key = derive_key(signing_key)
        self._cursor = Sealer(key, version=CURSOR_VERSION, label=_CURSOR_AAD)
        self._call = Sealer(key, version=CALL_VERSION, label=_CALL_AAD)
        self._ttl = ttl
        self._cache: OrderedDict[bytes, Call] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def mint_call(
        self,
        method: str,
        state_cls: type[StreamState],
        output_schema: pa.Schema,
        input_schema: pa.Schema,
        stream_id: str,
        auth: AuthContext,
    ) -> tuple[Call, bytes]:
        """A new call and its sealed token (``/init`` only)."""
        call = Call(
            os.urandom(16), method, state_codec(state_cls), output_schema, input_schema, stream_id
        )
        plain = _HEAD.pack(int(time.time()), call.call_id) + _pack(
            method.encode(),
            call.state.key.encode(),
            output_schema.serialize().to_pybytes(),
            input_schema.serialize().to_pybytes(),
            stream_id.encode(),
        )
        self._remember(call)
        return call, self._call.seal(plain, auth)

    def mint_cursor(self, call: Call, state: StreamState, auth: AuthContext, turn: int) -> bytes:
        """The sealed cursor carrying ``state`` for turn ``turn`` of ``call`` (0 after /init)."""
        plain = _CURSOR_HEAD.pack(int(time.time()), call.call_id, turn) + call.state.encode(state)
        return self._cursor.seal(plain, auth)

    def open(
        self, cursor: bytes | None, call_token: bytes | None, method: str, auth: AuthContext
    ) -> Turn:
        """Resolve a continuation: cursor first, then the cached call or the call token.

        Raises:
            TokenError: Missing, forged, expired, mismatched or (with a replay
                guard) already spent tokens.
        """
        if cursor is None:
            raise TokenError("request carries no 'vgi_rpc.stream_state#b64' state token")
        plain = self._cursor.open(cursor, auth)
        if len(plain) < _CURSOR_HEAD.size:
            raise TokenError("state token payload is truncated")
        created, call_id, turn = _CURSOR_HEAD.unpack_from(plain)
        self._check_age(created)
        call = self._cached(call_id)
        if call is None:
            call = self._open_call(call_token, call_id, auth)
        if call.method != method:
            raise TokenError(f"state token belongs to a {call.method}() stream, not to {method}()")
        state = call.state.decode(plain[_CURSOR_HEAD.size :])
        if self._guard is not None:
            expires = created + self._ttl if self._ttl > 0 else float("inf")
            if not self._guard.spend(call_id, turn, expires):
                raise TokenError(
                    "this stream cursor was already used; each cursor is accepted once "
                    "(continue with the cursor of the latest response)"
                )
        return Turn(call, state, turn)

    def _open_call(self, token: bytes | None, call_id: bytes, auth: AuthContext) -> Call:
        if token is None:
            raise TokenError(
                "request carries no 'vgi_rpc.call_state#b64' call token and this server "
                "does not have the call cached; echo the call token from /init on every turn"
            )
        plain = self._call.open(token, auth)
        if len(plain) < _HEAD.size:
            raise TokenError("call token payload is truncated")
        created, token_call_id = _HEAD.unpack_from(plain)
        if token_call_id != call_id:
            raise TokenError("call token and state token belong to different streams")
        self._check_age(created)
        method, key, output, input_, stream_id = _unpack(plain, _HEAD.size, 5)
        try:
            output_schema = pa.ipc.read_schema(pa.py_buffer(output))
            input_schema = pa.ipc.read_schema(pa.py_buffer(input_))
        except (pa.ArrowInvalid, OSError):
            raise TokenError("call token schemas do not decode") from None
        call = Call(
            call_id,
            method.decode(),
            _codec_by_key(key.decode()),
            output_schema,
            input_schema,
            stream_id.decode(),
        )
        self._remember(call)
        return call

    def _check_age(self, created: int) -> None:
        if self._ttl > 0 and time.time() - created > self._ttl:
            raise TokenError("State token expired")

    def _cached(self, call_id: bytes) -> Call | None:
        with self._lock:
            call = self._cache.get(call_id)
            if call is not None:
                self._cache.move_to_end(call_id)
            return call

    def _remember(self, call: Call) -> None:
        with self._lock:
            self._cache[call.call_id] = call
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


__all__ = ["Call", "StateCodec", "TokenBook", "TokenError", "Turn", "state_codec"]
