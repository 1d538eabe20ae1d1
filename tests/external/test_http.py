"""External storage over HTTP: pointers in responses and requests, upload URLs, the response cap."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow as pa
import pytest

from tests.external._service import BLOB, Blobs, BlobsImpl, MiB, filler
from tests.external.conftest import S3Server, files
from vgi_rpc import (
    AnnotatedBatch,
    Compression,
    ExternalLocationConfig,
    ExternalStorageError,
    RpcError,
    RpcServer,
)
from vgi_rpc.http import http_connect, make_wsgi_app, serve_in_thread
from vgi_rpc.wire import keys as k


class Traffic:
    """Body bytes of every HTTP request and response an httpx client sent and got."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.client = httpx.Client(
            timeout=60, event_hooks={"request": [self._request], "response": [self._response]}
        )

    def _request(self, request: httpx.Request) -> None:
        self.sent += len(request.content)

    def _response(self, response: httpx.Response) -> None:
        response.read()
        self.received += len(response.content)


@contextlib.contextmanager
def _serve(server_config: ExternalLocationConfig | None, **app: Any) -> Iterator[str]:
    server = RpcServer(Blobs, BlobsImpl(), external_location=server_config)
    wsgi = make_wsgi_app(server, signing_key=b"k" * 32, **app)
    with serve_in_thread(wsgi) as url:
        yield url


def _config(storage: object, **options: Any) -> ExternalLocationConfig:
    return ExternalLocationConfig(
        storage=storage,  # type: ignore[arg-type]  # each test's storage
        externalize_threshold_bytes=MiB,
        compression=Compression(),
        **options,
    )


def _any_http(url: str) -> None:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("only the local test store")


def test_requests_and_results_go_by_pointer_over_http(tmp_path: object) -> None:
    directory = str(tmp_path)
    traffic = Traffic()
    data = filler(16 * MiB)
    with (
        _serve(_config(directory)) as url,
        traffic.client,  # closed before the server stops
        http_connect(Blobs, url, client=traffic.client, external_location=_config(directory)) as b,
    ):
        assert b.echo(data) == data
    assert traffic.sent + traffic.received < MiB
    assert len(files(directory)) == 2


def test_http_streams_by_pointer_keep_their_cursor_inside_the_payload(tmp_path: object) -> None:
    directory = str(tmp_path)
    config = _config(directory)
    with _serve(config) as url, http_connect(Blobs, url, external_location=config) as blobs:
        produced = [b.batch.column("blob")[0].as_py() for b in blobs.produce(count=3, size=2 * MiB)]
        assert produced == [filler(2 * MiB, seed=i) for i in range(3)]
        with blobs.relay() as session:
            for turn in range(1, 4):  # each turn needs the cursor that rode inside the last payload
                blob = filler(2 * MiB, seed=10 + turn)
                sent = pa.RecordBatch.from_pydict({"blob": [blob]}, schema=BLOB)
                out = session.exchange(AnnotatedBatch(sent, {b"tag": b"x"}))
                assert out.batch.column("blob")[0].as_py() == blob[::-1]
                md = out.custom_metadata or {}
                assert md[b"turn"] == str(turn).encode()
                assert md[b"tag"] == b"x"
                assert k.LOCATION_SOURCE_KEY in md
                assert k.STREAM_STATE_KEY not in md
    assert len(files(directory)) == 3 + 3 + 3


def test_clients_without_storage_upload_through_urls_the_server_vends(s3: S3Server) -> None:
    storage = s3.storage()
    server = _config(storage)
    client = ExternalLocationConfig(externalize_threshold_bytes=MiB, url_validator=_any_http)
    traffic = Traffic()
    data = filler(8 * MiB, seed=5)
    with _serve(server, upload_url_provider=storage, max_upload_bytes=32 * MiB) as url:
        caps = httpx.head(f"{url}/vgi/health").headers
        assert caps["VGI-Upload-URL-Support"] == "true"
        assert caps["VGI-Max-Upload-Bytes"] == str(32 * MiB)
        with (
            traffic.client,
            http_connect(Blobs, url, client=traffic.client, external_location=client) as blobs,
        ):
            assert blobs.size(data) == len(data)
            assert blobs.echo(data) == data
        assert traffic.sent < MiB  # the request bodies were pointers; the PUTs went to the store
    assert len(s3.keys(storage.prefix)) == 3  # two uploads through vended URLs, one result


def test_the_upload_url_endpoint_answers_as_the_spec_says(s3: S3Server) -> None:
    from vgi_rpc._ipc import encode_stream
    from vgi_rpc.wire import request_metadata

    storage = s3.storage()
    params = pa.RecordBatch.from_pydict({"count": [3]}, schema=pa.schema([("count", pa.int64())]))
    body = encode_stream(params.schema, [(params, request_metadata("__upload_url__"))])
    with _serve(_config(storage), upload_url_provider=storage) as url:
        answer = httpx.post(
            f"{url}/vgi/__upload_url__/init",
            content=body.to_pybytes(),
            headers={"Content-Type": "application/vnd.apache.arrow.stream"},
        )
    assert answer.status_code == 200
    table = pa.ipc.open_stream(answer.content).read_all()
    assert table.schema.names == ["upload_url", "download_url", "expires_at"]
    assert table.schema.field("expires_at").type == pa.timestamp("us", tz="UTC")
    assert table.num_rows == 3
    now = datetime.datetime.now(datetime.UTC)
    for row in table.to_pylist():
        assert row["expires_at"] > now
        assert httpx.put(str(row["upload_url"]), content=b"hello").status_code == 200
        assert httpx.get(str(row["download_url"])).content == b"hello"


def test_uploads_over_max_upload_bytes_are_refused_by_the_client(s3: S3Server) -> None:
    storage = s3.storage()
    client = ExternalLocationConfig(externalize_threshold_bytes=MiB, url_validator=_any_http)
    with (
        _serve(_config(storage), upload_url_provider=storage, max_upload_bytes=2 * MiB) as url,
        http_connect(Blobs, url, external_location=client) as blobs,
    ):
        with pytest.raises(ExternalStorageError, match="max_upload_bytes") as caught:
            blobs.size(bytes(range(256)) * (12 * 4096))  # 3 MiB that zstd cannot shrink
        assert caught.value.reason == "too_large"
        assert blobs.small() == 42


def test_externalized_responses_stop_at_max_externalized_response_bytes(tmp_path: object) -> None:
    directory = str(tmp_path)
    config = _config(directory)
    with (
        _serve(config, max_externalized_response_bytes=3 * MiB) as url,
        http_connect(Blobs, url, external_location=config) as blobs,
    ):
        caps = httpx.head(f"{url}/vgi/health").headers
        assert caps["VGI-Externalization-Enabled"] == "true"
        assert caps["VGI-Max-Externalized-Response-Bytes"] == str(3 * MiB)
        assert len(blobs.make(2 * MiB)) == 2 * MiB  # within the cap
        for call in (
            lambda: blobs.make(4 * MiB),
            lambda: list(blobs.produce(count=1, size=4 * MiB)),
        ):
            with pytest.raises(RpcError, match="max_externalized_response_bytes") as caught:
                call()
            assert caught.value.error_kind == "response_too_large"
    assert len(files(directory)) == 1  # refused before uploading


def test_upload_urls_need_a_server_that_can_fetch_them(s3: S3Server) -> None:
    with pytest.raises(ValueError, match="external_location"):
        make_wsgi_app(RpcServer(Blobs, BlobsImpl()), upload_url_provider=s3.storage())
