"""The pointer codec (wire spec section 12): payloads in, pointer batches out, and back.

A payload is one Arrow IPC stream holding a turn's log batches and its data
batch (or one request batch), checksummed with SHA-256 before it is
optionally compressed. A pointer is a zero-row batch of the same schema whose
metadata names the payload's URL and checksum. Reading a payload back goes
through the same decode boundary as any peer input: sizes bounded before
allocation, batches validated, schema checked against the pointer's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib

import pyarrow as pa

from vgi_rpc._errors import ExternalStorageError, IPCError, TransportError
from vgi_rpc._ipc import Metadata, encode_stream
from vgi_rpc._ipc_reader import ReadPolicy, memory_source
from vgi_rpc.wire import BatchKind, classify, empty_batch
from vgi_rpc.wire import keys as k

Batch = tuple[pa.RecordBatch, Metadata | None]
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
_STEP = 1 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class Payload:
    """A payload ready to upload."""

    data: bytes
    sha256: str
    content_encoding: str | None
    raw_size: int


def encode_payload(
    schema: pa.Schema, batches: list[Batch], algorithm: str | None, level: int = 3
) -> Payload:
    """Serialise ``batches`` as one IPC stream, checksum it, compress it (``algorithm``)."""
    raw = encode_stream(schema, batches)
    view = memoryview(raw)
    digest = hashlib.sha256(view).hexdigest()
    if algorithm == "zstd":
        import zstandard

        data = zstandard.ZstdCompressor(level=level).compress(view)
    elif algorithm == "gzip":
        packer = zlib.compressobj(level, wbits=31)
        data = packer.compress(view) + packer.flush()
    else:
        data = view.tobytes()
    return Payload(data, digest, algorithm, raw.size)


def pointer_batch(
    schema: pa.Schema, url: str, sha256: str | None, carried: Metadata | None = None
) -> tuple[pa.RecordBatch, Metadata]:
    """The zero-row pointer to ``url`` (``carried``: request keys a request pointer keeps)."""
    metadata: Metadata = dict(carried or {})
    metadata[k.LOCATION_KEY] = url.encode()
    if sha256 is not None:
        metadata[k.LOCATION_SHA256_KEY] = sha256.encode()
    return empty_batch(schema), metadata


def is_pointer(batch: pa.RecordBatch, metadata: Metadata | None) -> bool:
    """Whether a received batch is an external pointer (spec section 7)."""
    return (
        metadata is not None
        and k.LOCATION_KEY in metadata
        and classify(batch, metadata) is BatchKind.EXTERNAL_POINTER
    )


def coding_of(data: bytes | bytearray, declared: str | None, location: str) -> str | None:
    """The coding to undo: the one the store declared, else what the bytes start with."""
    name = (declared or "").split(";")[0].strip().lower()
    if name in ("zstd", "gzip"):
        return name
    if name not in ("", "identity", "binary", "application/octet-stream"):
        raise ExternalStorageError(
            f"payload has an unknown Content-Encoding {declared!r}",
            location=location,
            reason="malformed",
        )
    head = bytes(data[:4])
    if head == _ZSTD_MAGIC:
        return "zstd"
    if head[:2] == _GZIP_MAGIC:
        return "gzip"
    return None


def decompress(
    data: bytes | bytearray, coding: str | None, cap: int, location: str
) -> bytes | bytearray:
    """Undo ``coding``, never producing more than ``cap`` bytes (a bomb costs at most ``cap``)."""
    if coding is None:
        if len(data) > cap:
            raise _too_large(cap, location)
        return data
    out = bytearray()
    try:
        if coding == "zstd":
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(data) as reader:
                while chunk := reader.read(min(_STEP, cap + 1 - len(out))):
                    out += chunk
                    if len(out) > cap:
                        break
        else:
            _gunzip(memoryview(data), out, cap)
    except Exception as exc:
        if isinstance(exc, ExternalStorageError):
            raise
        raise ExternalStorageError(
            f"payload does not decode as {coding}: {type(exc).__name__}: {exc}",
            location=location,
            reason="malformed",
        ) from None
    if len(out) > cap:
        raise _too_large(cap, location)
    return out


def _gunzip(data: memoryview, out: bytearray, cap: int) -> None:
    # Input in steps too: a large unconsumed tail would be copied on every call.
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    for start in range(0, len(data), _STEP):
        pending: bytes | memoryview = data[start : start + _STEP]
        while pending and not inflater.eof:
            out += inflater.decompress(pending, min(_STEP, cap + 1 - len(out)))
            if len(out) > cap:
                return
            pending = inflater.unconsumed_tail
    if not inflater.eof:
        raise EOFError("compressed payload is truncated")


def _too_large(cap: int, location: str) -> ExternalStorageError:
    return ExternalStorageError(
        f"decoded payload exceeds FetchConfig.max_decoded_bytes ({cap})",
        location=location,
        reason="too_large",
    )


def verify(raw: bytes | bytearray, sha256: str | None, location: str) -> None:
    """Check the payload against the pointer's SHA-256 (when it names one)."""
    if sha256 is None:
        return
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha256.strip().lower():
        raise ExternalStorageError(
            f"payload checksum mismatch: the pointer names SHA-256 {sha256[:16]}…, "
            f"the fetched payload has {actual[:16]}…",
            location=location,
            reason="checksum_mismatch",
        )


@dataclasses.dataclass(slots=True)
class Contents:
    """What a payload held: its log batches in order, then its data (or error) batch."""

    logs: list[Batch]
    data: Batch


def read_payload(
    raw: bytes | bytearray, schema: pa.Schema, policy: ReadPolicy, location: str
) -> Contents:
    """Decode a payload under ``policy``; it must be one stream of ``schema`` with one data batch.

    Raises:
        ExternalStorageError: ``reason="malformed"``: not a valid stream, another
            schema, no data batch or several, or a pointer inside (a loop).
    """

    def malformed(problem: str) -> ExternalStorageError:
        return ExternalStorageError(f"payload {problem}", location=location, reason="malformed")

    logs: list[Batch] = []
    found: Batch | None = None
    bounded = policy.for_body(len(raw))
    try:
        reader = bounded.open(memory_source(raw))
        if reader is None:
            raise malformed("is empty")
        if not reader.schema.equals(schema):
            raise malformed(f"has schema {reader.schema}, the pointer names {schema}")
        while (item := reader.read(bounded.validation)) is not None:
            batch, metadata = item
            kind = classify(batch, metadata)
            if kind is BatchKind.LOG:
                logs.append(item)
            elif kind is BatchKind.EXTERNAL_POINTER or (metadata and k.LOCATION_KEY in metadata):
                raise malformed("holds another pointer (a redirect loop)")
            elif found is not None:
                raise malformed("holds more than one data batch")
            else:
                found = item
    except (IPCError, TransportError) as exc:
        raise malformed(f"is not a valid Arrow IPC stream: {exc}") from None
    if found is None:
        raise malformed("holds no data batch")
    return Contents(logs, found)


__all__ = [
    "Batch",
    "Contents",
    "Payload",
    "coding_of",
    "decompress",
    "encode_payload",
    "is_pointer",
    "pointer_batch",
    "read_payload",
    "verify",
]
