"""A pointer that cannot be honoured fails clearly, names its location, never hangs.

Each failure leaves the connection usable: the next call works.
"""

from __future__ import annotations

import os
import socket
import time
import zlib

import pyarrow as pa
import pytest

from tests.external._service import MiB, filler
from tests.external.conftest import counted_pipe, files
from vgi_rpc import (
    ExternalLocationConfig,
    ExternalStorageError,
    FetchConfig,
    FileSystemStorage,
    IpcValidation,
    ResourceLimits,
    RpcError,
    S3Storage,
)
from vgi_rpc._ipc import encode_stream
from vgi_rpc._ipc_reader import ReadPolicy
from vgi_rpc.external import ExternalRoute
from vgi_rpc.wire import keys as k


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Vanishing(FileSystemStorage):
    """Deletes every object right after naming it."""

    def upload(self, data: bytes, schema: pa.Schema, *, content_encoding: str | None = None) -> str:
        url = super().upload(data, schema, content_encoding=content_encoding)
        os.remove(self.path_of(url) or "")
        return url


class Corrupting(FileSystemStorage):
    """Flips one byte in the middle of every object it stores."""

    def upload(self, data: bytes, schema: pa.Schema, *, content_encoding: str | None = None) -> str:
        url = super().upload(data, schema, content_encoding=content_encoding)
        path = self.path_of(url) or ""
        with open(path, "r+b") as f:
            f.seek(len(data) // 2)
            byte = f.read(1)
            f.seek(len(data) // 2)
            f.write(bytes([byte[0] ^ 0xFF]))
        return url


class Pointing:
    """Stores nothing and names a URL on a port nobody listens on."""

    def __init__(self) -> None:
        self.url = f"http://127.0.0.1:{_closed_port()}/bucket/object.arrow?X-Amz-Signature=secret"

    def upload(self, data: bytes, schema: pa.Schema, *, content_encoding: str | None = None) -> str:
        return self.url


def _config(storage: object, **options: object) -> ExternalLocationConfig:
    return ExternalLocationConfig(
        storage=storage,  # type: ignore[arg-type]  # each test's storage
        externalize_threshold_bytes=MiB,
        retry_delay_seconds=0.05,
        **options,  # type: ignore[arg-type]  # keyword options of the config
    )


def test_a_missing_result_object_is_not_found_and_names_it(tmp_path: object) -> None:
    directory = str(tmp_path)
    server = _config(Vanishing.in_directory(directory))
    with counted_pipe(server, _config(directory)) as (blobs, _):
        with pytest.raises(ExternalStorageError) as caught:
            blobs.make(2 * MiB)
        assert blobs.small() == 42  # the response was read to its end: still in step
    assert caught.value.reason == "not_found"
    assert caught.value.location.startswith(f"file://{directory}/")
    assert caught.value.location in str(caught.value)
    assert "not found" in str(caught.value)


def test_a_missing_request_object_is_reported_by_the_server(tmp_path: object) -> None:
    directory = str(tmp_path)
    with counted_pipe(_config(directory), _config(Vanishing.in_directory(directory))) as (b, _):
        with pytest.raises(RpcError) as caught:
            b.size(filler(2 * MiB))
        assert b.small() == 42
    assert caught.value.error_type == "ExternalStorageError"
    assert "not found" in caught.value.error_message
    assert f"file://{directory}/" in caught.value.error_message
    assert caught.value.error_code == "NOT_FOUND"


def test_a_checksum_mismatch_is_refused_before_decoding(tmp_path: object) -> None:
    directory = str(tmp_path)
    with counted_pipe(_config(Corrupting.in_directory(directory)), _config(directory)) as (b, _):
        with pytest.raises(ExternalStorageError) as caught:
            b.make(2 * MiB)
        assert b.small() == 42
    assert caught.value.reason == "checksum_mismatch"
    assert "checksum mismatch" in str(caught.value)
    assert directory in caught.value.location


def test_an_unreachable_store_fails_after_bounded_retries() -> None:
    pointing = Pointing()
    client = _config(None, url_validator=lambda url: None, max_retries=2)
    started = time.monotonic()
    with counted_pipe(_config(pointing), client) as (blobs, _):
        with pytest.raises(ExternalStorageError) as caught:
            blobs.make(2 * MiB)
        assert blobs.small() == 42
    assert time.monotonic() - started < 10
    assert caught.value.reason == "unreachable"
    assert "after 3 attempt(s)" in str(caught.value)
    assert caught.value.location == pointing.url.split("?")[0]
    assert "secret" not in str(caught.value)  # a presigned query never reaches a message


def test_an_unreachable_store_on_upload_fails_the_call_not_the_server() -> None:
    down = S3Storage(
        "bucket",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        access_key="a",
        secret_key="b",
    )
    with counted_pipe(_config(down), None) as (blobs, _):
        with pytest.raises(RpcError) as caught:
            blobs.make(2 * MiB)
        assert blobs.small() == 42
    assert caught.value.error_type == "ExternalStorageError"
    assert "upload" in caught.value.error_message
    assert "/bucket/vgi-rpc/" in caught.value.error_message


def test_a_client_upload_failure_raises_before_anything_is_sent() -> None:
    down = S3Storage(
        "b", endpoint_url=f"http://127.0.0.1:{_closed_port()}", access_key="a", secret_key="b"
    )
    with counted_pipe(None, _config(down)) as (blobs, counter):
        with pytest.raises(ExternalStorageError) as caught:
            blobs.size(filler(2 * MiB))
        assert counter.written == 0
        assert blobs.small() == 42
    assert caught.value.reason == "upload_failed"


def test_a_url_outside_the_policy_is_refused_without_a_request() -> None:
    pointing = Pointing()  # plain http, not this reader's storage, no validator: refused
    with counted_pipe(_config(pointing), _config(None)) as (blobs, _):
        with pytest.raises(ExternalStorageError) as caught:
            blobs.make(2 * MiB)
        assert blobs.small() == 42
    assert caught.value.reason == "refused"
    assert "only 'https'" in str(caught.value)


def test_a_client_without_external_location_says_how_to_resolve_pointers(tmp_path: object) -> None:
    with counted_pipe(_config(str(tmp_path)), None) as (blobs, _):
        with pytest.raises(ExternalStorageError, match="external_location=ExternalLocationConfig"):
            blobs.make(2 * MiB)
        assert blobs.small() == 42


def test_a_server_without_external_location_refuses_pointers(tmp_path: object) -> None:
    with counted_pipe(None, _config(str(tmp_path))) as (blobs, _):
        with pytest.raises(RpcError) as caught:
            blobs.size(filler(2 * MiB))
        assert blobs.small() == 42
    assert caught.value.error_type == "ProtocolError"
    assert "no external_location" in caught.value.error_message


# -- the reader's bounds, on crafted payloads ---------------------------------

SCHEMA = pa.schema([("blob", pa.binary())])


def _route(directory: str, **fetch: int) -> ExternalRoute:
    config = ExternalLocationConfig(storage=directory, fetch_config=FetchConfig(**fetch))
    return ExternalRoute(config, ReadPolicy.make(IpcValidation.FULL, ResourceLimits()))


def _pointer(directory: str, payload: bytes, sha256: str | None = None) -> dict[bytes, bytes]:
    path = os.path.join(directory, "crafted.arrow")
    with open(path, "wb") as f:
        f.write(payload)
    metadata = {k.LOCATION_KEY: FileSystemStorage.in_directory(directory).url_of(path).encode()}
    if sha256 is not None:
        metadata[k.LOCATION_SHA256_KEY] = sha256.encode()
    return metadata


def _resolve(route: ExternalRoute, metadata: dict[bytes, bytes], schema: pa.Schema = SCHEMA) -> str:
    empty = pa.RecordBatch.from_pylist([], schema=schema)
    with pytest.raises(ExternalStorageError) as caught:
        route.resolve(empty, metadata)
    return f"{caught.value.reason}: {caught.value}"


def _stream(*batches: tuple[pa.RecordBatch, dict[bytes, bytes] | None]) -> bytes:
    return encode_stream(batches[0][0].schema, list(batches)).to_pybytes()


def test_an_object_over_max_fetch_bytes_is_refused_before_it_is_read(tmp_path: object) -> None:
    directory = str(tmp_path)
    route = _route(directory, max_fetch_bytes=MiB)
    batch = pa.RecordBatch.from_pydict({"blob": [b"x" * (2 * MiB)]}, schema=SCHEMA)
    assert _resolve(route, _pointer(directory, _stream((batch, None)))).startswith("too_large")


def test_a_decompression_bomb_stops_at_max_decoded_bytes(tmp_path: object) -> None:
    import zstandard

    directory = str(tmp_path)
    bomb = zstandard.ZstdCompressor().compress(b"\xff" * (16 * MiB))
    assert len(bomb) < 16 * 1024
    route = _route(directory, max_decoded_bytes=2 * MiB)
    assert "max_decoded_bytes" in _resolve(route, _pointer(directory, bomb))
    gzip_bomb = zlib.compress(b"\xff" * (16 * MiB), wbits=31)
    assert _resolve(route, _pointer(directory, gzip_bomb)).startswith("too_large")


def test_payloads_that_are_not_one_stream_of_one_data_batch_are_malformed(tmp_path: object) -> None:
    directory = str(tmp_path)
    route = _route(directory)
    one = pa.RecordBatch.from_pydict({"blob": [b"x"]}, schema=SCHEMA)
    empty = pa.RecordBatch.from_pylist([], schema=SCHEMA)
    other = pa.RecordBatch.from_pydict({"n": [1]})
    cases = {
        "not arrow": b"hello, not an IPC stream",
        "two data batches": _stream((one, None), (one, None)),
        "no data batch": _stream((empty, {k.LOG_LEVEL_KEY: b"INFO", k.LOG_MESSAGE_KEY: b"m"})),
        "another pointer": _stream((empty, {k.LOCATION_KEY: b"https://elsewhere/x"})),
        "another schema": _stream((other, None)),
    }
    for case, payload in cases.items():
        assert _resolve(route, _pointer(directory, payload)).startswith("malformed"), case
    assert files(directory) == ["crafted.arrow"]


def test_a_stream_output_that_cannot_be_fetched_ends_the_stream_in_step(tmp_path: object) -> None:
    directory = str(tmp_path)
    with counted_pipe(_config(Vanishing.in_directory(directory)), _config(directory)) as (b, _):
        stream = iter(b.produce(count=3, size=2 * MiB))
        with pytest.raises(ExternalStorageError) as caught:
            next(stream)
        assert b.small() == 42  # the stream was cancelled, the connection is in step
    assert caught.value.reason == "not_found"
