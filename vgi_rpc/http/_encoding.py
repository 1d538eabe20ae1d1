"""HTTP content codings (wire spec section 10, "Content-encoding negotiation").

Request bodies may arrive as zstd or gzip and are decoded with a hard cap on
the decoded size; responses are compressed with the first coding the client
offers that we produce, ``X-VGI-Accept-Encoding`` taking precedence.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Sequence

import pyarrow as pa
import zstandard

from vgi_rpc._ipc import Chunk
from vgi_rpc.http._refusal import RequestRefusedError

PRODUCED = ("zstd", "gzip")
DECODED = ("zstd", "gzip", "identity")
ACCEPT_HEADER = "Accept-Encoding"
VGI_ACCEPT_HEADER = "X-VGI-Accept-Encoding"
VGI_CONTENT_HEADER = "X-VGI-Content-Encoding"
_READ_CHUNK = 1 << 20
_local = threading.local()


def _zstd_compressor() -> zstandard.ZstdCompressor:
    cctx: zstandard.ZstdCompressor | None = getattr(_local, "cctx", None)
    if cctx is None:
        cctx = _local.cctx = zstandard.ZstdCompressor(level=1)
    return cctx


def parse_codings(value: str | None) -> list[str]:
    """Codings in preference order: explicit ``q`` values first, then list order; ``q=0`` dropped."""
    if not value:
        return []
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(value.split(",")):
        name, _, params = item.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if name and q > 0:
            ranked.append((-q, position, name.strip().lower()))
    return [name for _, _, name in sorted(ranked)]


def choose_response_coding(accept: str | None, vgi_accept: str | None) -> tuple[str | None, str]:
    """The coding to apply (``None`` = none) and the header that names it."""
    offered, header = (
        (vgi_accept, VGI_CONTENT_HEADER) if vgi_accept is not None else (accept, "Content-Encoding")
    )
    for name in parse_codings(offered):
        if name == "identity":
            return None, header
        if name in PRODUCED:
            return name, header
    return None, header


_SAMPLE = 64 * 1024
_WORTH_IT = 0.9  # compress only if a sample shrinks to 90% or less


def worth_compressing(chunks: Sequence[Chunk], coding: str) -> bool:
    """Whether a body of ``chunks`` is likely to shrink: a sample of its largest chunk is tried.

    Arrow bodies of random or already-compressed data (floats, images, zstd
    columns) do not shrink; compressing them costs time on both ends for nothing.
    """
    largest = max(chunks, key=lambda c: memoryview(c).nbytes, default=b"")
    view = memoryview(largest).cast("B")
    if view.nbytes <= _SAMPLE:
        return True
    middle = (view.nbytes - _SAMPLE) // 2
    sample = bytes(view[middle : middle + _SAMPLE])
    return len(encode(sample, coding)) <= _WORTH_IT * _SAMPLE


def encode_chunks(chunks: Sequence[Chunk], coding: str) -> bytes:
    """Compress the body made of ``chunks`` without joining them first."""
    views = [memoryview(chunk).cast("B") for chunk in chunks]
    if coding == "zstd":
        size = sum(view.nbytes for view in views)
        zstd = _zstd_compressor().compressobj(size=size)  # the frame records the size
        return b"".join([*(zstd.compress(view) for view in views), zstd.flush()])
    gzip = zlib.compressobj(1, wbits=31)
    return b"".join([*(gzip.compress(view) for view in views), gzip.flush()])


def encode(body: bytes, coding: str) -> bytes:
    """Compress ``body`` with ``coding`` (one of ``PRODUCED``)."""
    if coding == "zstd":
        return _zstd_compressor().compress(body)
    return zlib.compress(body, 1, wbits=31)


def decode(
    body: bytes | pa.Buffer, coding: str | None, limit: int | None
) -> bytes | bytearray | pa.Buffer:
    """Decode a request body, refusing to produce more than ``limit`` bytes.

    Decompression stops as soon as the output passes ``limit``, so a
    compression bomb costs at most ``limit`` bytes of memory.

    Raises:
        RequestRefusedError: 415 for an unsupported coding, 400 for a corrupt body,
            413 when the decoded body exceeds ``limit``.
    """
    name = (coding or "identity").strip().lower()
    if name in ("", "identity"):
        return body
    if name not in DECODED:
        raise RequestRefusedError(
            415,
            f"unsupported Content-Encoding {coding!r}; this server decodes {', '.join(DECODED)}",
        )
    cap = limit if limit is not None else 1 << 40
    out: bytes | bytearray | pa.Buffer
    try:
        out = _unzstd(body, cap) if name == "zstd" else _gunzip(body, cap)
    except (zstandard.ZstdError, zlib.error, EOFError) as exc:
        raise RequestRefusedError(400, f"request body does not decode as {name}: {exc}") from None
    except MemoryError:
        raise RequestRefusedError(
            413, f"request body's decoded size cannot be allocated (limit {cap} bytes)"
        ) from None
    if len(out) > cap:
        raise RequestRefusedError(
            413,
            f"decoded request body exceeds the server's limit of {cap} bytes (max_request_bytes)",
        )
    return out


def _unzstd(data: bytes | pa.Buffer, cap: int) -> bytes | bytearray | pa.Buffer:
    body = memoryview(data).cast("B")
    size = zstandard.frame_content_size(body)
    if 0 <= size <= cap:
        # A frame that states its size is decoded straight into a pooled buffer of that
        # size (fresh bytes would fault every page in); as below, only its first frame.
        pooled = pa.allocate_buffer(size)
        view = memoryview(pooled).cast("B")
        filled = 0
        with zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=False) as reader:
            while filled < size and (count := reader.readinto(view[filled:])):
                filled += count
            if filled < size or reader.read(1):
                raise zstandard.ZstdError(f"frame decodes to other than its stated {size} bytes")
        return pooled
    out = bytearray()
    with zstandard.ZstdDecompressor().stream_reader(body) as reader:
        while len(out) <= cap:
            chunk = reader.read(min(_READ_CHUNK, cap + 1 - len(out)))
            if not chunk:
                break
            out += chunk
    return out


def _gunzip(body: bytes | pa.Buffer, cap: int) -> bytearray:
    # In steps, so the output never needs a second full-size copy (zlib's one-shot
    # decompress assembles its result from blocks).
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    out = bytearray()
    pending: bytes | memoryview = memoryview(body).cast("B")
    while len(out) <= cap and not inflater.eof:
        chunk = inflater.decompress(pending, min(_READ_CHUNK, cap + 1 - len(out)))
        pending = inflater.unconsumed_tail
        if not chunk and not pending:
            break
        out += chunk
    if not inflater.eof and len(out) <= cap:
        raise EOFError("compressed body is truncated")
    return out


__all__ = [
    "ACCEPT_HEADER",
    "PRODUCED",
    "VGI_ACCEPT_HEADER",
    "VGI_CONTENT_HEADER",
    "choose_response_coding",
    "decode",
    "encode",
    "encode_chunks",
    "parse_codings",
    "worth_compressing",
]
