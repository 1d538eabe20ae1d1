"""Storages: what ``storage=`` accepts, object naming, and presigned URLs (checked against botocore)."""

from __future__ import annotations

import datetime
import os
import urllib.parse
from unittest import mock

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from tests.external.conftest import S3Server
from vgi_rpc import (
    Compression,
    ExternalLocationConfig,
    ExternalStorage,
    FileSystemStorage,
    GCSStorage,
    S3Storage,
    UploadUrlProvider,
)
from vgi_rpc.external._presign import GOOG, Credentials, presign
from vgi_rpc.external._urls import redact, within

NOW = datetime.datetime(2026, 11, 26, 7, 8, 9, tzinfo=datetime.UTC)


def _botocore_url(
    method: str, bucket: str, key: str, endpoint: str | None, token: str | None
) -> str:
    import botocore.session  # type: ignore[import-untyped]  # no stubs; a test peer only
    from botocore.config import Config  # type: ignore[import-untyped]

    session = botocore.session.get_session()
    client = session.create_client(
        "s3",
        region_name="eu-west-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=token,
        endpoint_url=endpoint,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint else "virtual"},
        ),
    )
    action = "get_object" if method == "GET" else "put_object"
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        url: str = client.generate_presigned_url(
            action, Params={"Bucket": bucket, "Key": key}, ExpiresIn=900
        )
    return url


@pytest.mark.parametrize("token", [None, "session/token+="])
@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:9000"])
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_presigned_s3_urls_match_botocore_byte_for_byte(
    method: str, endpoint: str | None, token: str | None
) -> None:
    key = "vgi rpc/obj~1.arrow"
    if endpoint:
        where, path = endpoint, f"/my-bucket/{key}"
    else:
        where, path = "https://my-bucket.s3.eu-west-1.amazonaws.com", f"/{key}"
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    ours = presign(method, where, path, credentials, region="eu-west-1", expires=900, now=NOW)
    assert ours == _botocore_url(method, "my-bucket", key, endpoint, token)


def test_gcs_hmac_urls_use_the_goog4_names() -> None:
    url = presign(
        "GET",
        "https://storage.googleapis.com",
        "/b/k.arrow",
        Credentials("GOOGID", "secret"),
        region="auto",
        expires=60,
        scheme=GOOG,
        now=NOW,
    )
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query["X-Goog-Algorithm"] == "GOOG4-HMAC-SHA256"
    assert query["X-Goog-Credential"] == "GOOGID/20261126/auto/storage/goog4_request"
    assert len(query["X-Goog-Signature"]) == 64
    storage = GCSStorage("b", hmac_key_id="GOOGID", hmac_secret="secret")
    assert storage.owns(storage.url_of("b/vgi-rpc/x.arrow"))
    with pytest.raises(ValueError, match="HMAC"):
        GCSStorage("b").url_of("b/vgi-rpc/x.arrow")


def test_s3_storage_names_objects_by_presigned_url_and_vends_upload_pairs() -> None:
    storage = S3Storage("bkt", "p/", access_key="AK", secret_key="SK", region_name="us-east-2")
    url = storage.url_of("bkt/p/x.arrow")
    assert url.startswith("https://bkt.s3.us-east-2.amazonaws.com/p/x.arrow?X-Amz-Algorithm=")
    assert storage.owns(url)
    assert not storage.owns("https://bkt.s3.us-east-2.amazonaws.com/q/x")
    given: object = storage  # both protocols are checked at run time
    assert isinstance(given, ExternalStorage)
    assert isinstance(given, UploadUrlProvider)
    pair = storage.generate_upload_url(pa.schema([]))
    assert "X-Amz-Signature" in pair.upload_url
    assert pair.upload_url != pair.download_url
    assert (
        urllib.parse.urlsplit(pair.upload_url).path == urllib.parse.urlsplit(pair.download_url).path
    )
    assert pair.expires_at > datetime.datetime.now(datetime.UTC)
    with mock.patch.dict(os.environ, {}, clear=True), pytest.raises(ValueError, match="key pair"):
        S3Storage("bkt").url_of("bkt/vgi-rpc/x.arrow")


def test_storage_accepts_a_directory_a_filesystem_or_a_pair(tmp_path: object) -> None:
    directory = str(tmp_path)
    local = pafs.LocalFileSystem()
    for given in (
        directory,
        (local, directory),
        pafs.SubTreeFileSystem(directory, local),
        FileSystemStorage.in_directory(directory),
    ):
        storage = ExternalLocationConfig(storage=given).storage
        assert isinstance(storage, FileSystemStorage)
        assert storage.base_path == directory
    with pytest.raises(TypeError, match="storage must be"):
        ExternalLocationConfig(storage=42)  # type: ignore[arg-type]  # refused on purpose
    with pytest.raises(ValueError, match="zstd levels"):
        Compression(level=40)


def test_a_filesystem_storage_writes_complete_objects_only(tmp_path: object) -> None:
    storage = FileSystemStorage.in_directory(str(tmp_path))
    url = storage.upload(b"abc", pa.schema([]), content_encoding="zstd")
    assert url.startswith("file://")
    assert url.endswith(".arrow.zst")
    with open(storage.path_of(url) or "", "rb") as f:
        assert f.read() == b"abc"  # stored as given, not compressed again
    assert os.listdir(str(tmp_path)) == [os.path.basename(storage.path_of(url) or "")]


def test_any_pyarrow_filesystem_works_for_readers_that_share_it(s3: S3Server) -> None:
    host = s3.endpoint.removeprefix("http://")
    fs = pafs.S3FileSystem(
        access_key="testing", secret_key="testing", endpoint_override=host, scheme="http"
    )
    storage = FileSystemStorage(fs, f"{s3.bucket}/shared")
    url = storage.upload(b"payload", pa.schema([]))
    assert url.startswith(f"s3://{s3.bucket}/shared/")
    assert storage.owns(url)
    path = storage.path_of(url) or ""
    with fs.open_input_file(path) as f:
        assert f.read() == b"payload"


def test_diagnostics_never_show_a_query_and_paths_cannot_escape() -> None:
    assert (
        redact("https://u:p@h.example:8443/b/k?X-Amz-Signature=s#f") == "https://h.example:8443/b/k"
    )
    assert within("file:///srv/x/a.arrow", "file:///srv/x/")
    assert not within("file:///srv/x/../y/a.arrow", "file:///srv/x/")
    assert not within("file:///srv/xy/a.arrow", "file:///srv/x/")
    assert not within("http://other:1/srv/x/a", "http://host:1/srv/x/")
