"""``S3Storage`` and ``GCSStorage``: object stores through ``pyarrow.fs``, read back by presigned URL.

Objects are written with ``pyarrow.fs`` (S3FileSystem, GcsFileSystem) and
named by a presigned ``https://`` GET URL, so a reader needs no credentials
of its own (and the reference implementation's readers can fetch them).
Both also vend PUT/GET pairs to HTTP clients (``UploadUrlProvider``).
"""

from __future__ import annotations

import datetime
import os
import re
import urllib.parse
import uuid
from typing import TYPE_CHECKING

import pyarrow as pa

from vgi_rpc.external._presign import AWS, GOOG, Credentials, Scheme, presign
from vgi_rpc.external._storage import FileSystemStorage, UploadUrl

if TYPE_CHECKING:
    import pyarrow.fs as pafs

_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class _PresignedStorage(FileSystemStorage):
    """A bucket of an object store: ``pyarrow.fs`` writes, presigned URLs name the objects."""

    _scheme_names: Scheme = AWS
    _region = "auto"

    def __init__(self, bucket: str, prefix: str, presign_expiry_seconds: int) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"not a bucket name: {bucket!r}")
        if not 1 <= presign_expiry_seconds <= 604800:
            raise ValueError("presign_expiry_seconds must be 1 to 604800 (seven days)")
        self._filesystem = None  # made on first use: pyarrow initialises its cloud SDK then
        self._local = False
        self.bucket = bucket
        self.prefix = prefix.lstrip("/")
        self.presign_expiry_seconds = presign_expiry_seconds
        self.base_path = f"{bucket}/{self.prefix}".rstrip("/")

    @property
    def filesystem(self) -> pafs.FileSystem:
        """The ``pyarrow.fs`` filesystem, created on first use."""
        if self._filesystem is None:
            self._filesystem = self._make_filesystem()
        return self._filesystem

    def _make_filesystem(self) -> pafs.FileSystem:
        raise NotImplementedError

    def _credentials(self) -> Credentials:
        raise NotImplementedError

    def _endpoint_and_path(self, key: str) -> tuple[str, str]:
        """Where a key is reached: ``scheme://host[:port]`` and the path (unencoded)."""
        raise NotImplementedError

    def _key(self, path: str) -> str:
        return path[len(self.bucket) + 1 :]

    def _signed(self, method: str, key: str) -> str:
        endpoint, path = self._endpoint_and_path(key)
        return presign(
            method,
            endpoint,
            path,
            self._credentials(),
            region=self._region,
            expires=self.presign_expiry_seconds,
            scheme=self._scheme_names,
        )

    def url_of(self, path: str) -> str:
        """A presigned GET URL of the object at ``path`` (``bucket/key``)."""
        return self._signed("GET", self._key(path))

    def location_of(self, path: str) -> str:
        """The unsigned URL of ``path`` (diagnostics never show a signature)."""
        endpoint, where = self._endpoint_and_path(self._key(path))
        return f"{endpoint}{urllib.parse.quote(where)}"

    def base_url(self) -> str:
        """The unsigned URL every object of this storage starts with."""
        endpoint, path = self._endpoint_and_path(self.prefix)
        return f"{endpoint}{urllib.parse.quote(path)}"

    def path_of(self, url: str) -> str | None:
        """``None``: these objects are fetched over HTTP(S) like anyone else's."""
        return None

    def generate_upload_url(self, schema: pa.Schema) -> UploadUrl:
        """A presigned PUT URL and the GET URL of the same new object (``UploadUrlProvider``)."""
        key = f"{self.prefix}{uuid.uuid4().hex}.arrow"
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
            seconds=self.presign_expiry_seconds
        )
        return UploadUrl(self._signed("PUT", key), self._signed("GET", key), expires)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bucket={self.bucket!r}, prefix={self.prefix!r})"


def _split_endpoint(endpoint_url: str) -> tuple[str, str]:
    """``http://host:port`` -> (``http``, ``host:port``), as pyarrow's endpoint_override wants."""
    where = urllib.parse.urlsplit(endpoint_url)
    if where.scheme not in ("http", "https") or not where.netloc:
        raise ValueError(f"endpoint_url must be http(s)://host[:port], got {endpoint_url!r}")
    return where.scheme, where.netloc


class S3Storage(_PresignedStorage):
    """An S3 (or S3-compatible) bucket, read back through presigned URLs (AWS SigV4).

    Credentials come from the arguments, else ``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``; they are needed to sign.

    Args:
        bucket: The bucket.
        prefix: Key prefix of every object (expire it with a lifecycle rule).
        presign_expiry_seconds: How long a presigned URL stays valid.
        region_name: The bucket's region (default ``AWS_REGION``, else ``us-east-1``).
        endpoint_url: An S3-compatible endpoint (MinIO, a local test server), path-style
            (default ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``, as boto3 reads them).
        access_key: Access key id.
        secret_key: Secret access key.
        session_token: Session token of temporary credentials.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "vgi-rpc/",
        presign_expiry_seconds: int = 3600,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
    ) -> None:
        super().__init__(bucket, prefix, presign_expiry_seconds)
        self.region_name = (
            region_name
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
        self._region = self.region_name
        endpoint_url = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        if self.endpoint_url is not None:
            _split_endpoint(self.endpoint_url)
        self._access_key = access_key or os.environ.get("AWS_ACCESS_KEY_ID")
        self._secret_key = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
        self._session_token = session_token or os.environ.get("AWS_SESSION_TOKEN")

    def _make_filesystem(self) -> pafs.FileSystem:
        import pyarrow.fs as pafs

        options: dict[str, object] = {"region": self.region_name}
        if self._access_key and self._secret_key:
            options.update(access_key=self._access_key, secret_key=self._secret_key)
            if self._session_token:
                options["session_token"] = self._session_token
        if self.endpoint_url is not None:
            scheme, netloc = _split_endpoint(self.endpoint_url)
            options.update(endpoint_override=netloc, scheme=scheme)
        return pafs.S3FileSystem(**options)  # type: ignore[arg-type]  # keyword options vary by key

    def _credentials(self) -> Credentials:
        if not (self._access_key and self._secret_key):
            raise ValueError(
                "S3Storage signs its URLs and needs a key pair: pass access_key and "
                "secret_key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        return Credentials(self._access_key, self._secret_key, self._session_token)

    def _endpoint_and_path(self, key: str) -> tuple[str, str]:
        if self.endpoint_url is not None:
            return self.endpoint_url, f"/{self.bucket}/{key}"
        if _DNS_BUCKET.match(self.bucket):  # virtual-hosted style, as AWS prefers
            return f"https://{self.bucket}.s3.{self.region_name}.amazonaws.com", f"/{key}"
        return f"https://s3.{self.region_name}.amazonaws.com", f"/{self.bucket}/{key}"


class GCSStorage(_PresignedStorage):
    """A Google Cloud Storage bucket, read back through URLs signed with an HMAC key (V4).

    Objects are written with ``pyarrow.fs.GcsFileSystem`` (application
    default credentials); URLs are signed with the HMAC key of a service
    account (``hmac_key_id`` / ``hmac_secret``, or ``GCS_HMAC_KEY_ID`` /
    ``GCS_HMAC_SECRET``).

    Args:
        bucket: The bucket.
        prefix: Object name prefix (expire it with a lifecycle rule).
        presign_expiry_seconds: How long a signed URL stays valid.
        project: The project (for bucket operations).
        hmac_key_id: Access id of the HMAC key.
        hmac_secret: Secret of the HMAC key.
        endpoint_url: Another endpoint than ``https://storage.googleapis.com`` (an emulator).
    """

    _scheme_names = GOOG

    def __init__(
        self,
        bucket: str,
        prefix: str = "vgi-rpc/",
        presign_expiry_seconds: int = 3600,
        project: str | None = None,
        *,
        hmac_key_id: str | None = None,
        hmac_secret: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        super().__init__(bucket, prefix, presign_expiry_seconds)
        self.project = project
        self.endpoint_url = (endpoint_url or "https://storage.googleapis.com").rstrip("/")
        _split_endpoint(self.endpoint_url)
        self._hmac_key_id = hmac_key_id or os.environ.get("GCS_HMAC_KEY_ID")
        self._hmac_secret = hmac_secret or os.environ.get("GCS_HMAC_SECRET")

    def _make_filesystem(self) -> pafs.FileSystem:
        import pyarrow.fs as pafs

        options: dict[str, object] = {}
        if self.project is not None:
            options["project_id"] = self.project
        if self.endpoint_url != "https://storage.googleapis.com":
            scheme, netloc = _split_endpoint(self.endpoint_url)
            options.update(endpoint_override=netloc, scheme=scheme)
        return pafs.GcsFileSystem(**options)  # type: ignore[arg-type]  # keyword options vary by key

    def _credentials(self) -> Credentials:
        if not (self._hmac_key_id and self._hmac_secret):
            raise ValueError(
                "GCSStorage signs its URLs with an HMAC key: pass hmac_key_id and hmac_secret, "
                "or set GCS_HMAC_KEY_ID and GCS_HMAC_SECRET"
            )
        return Credentials(self._hmac_key_id, self._hmac_secret)

    def _endpoint_and_path(self, key: str) -> tuple[str, str]:
        return self.endpoint_url, f"/{self.bucket}/{key}"


__all__ = ["GCSStorage", "S3Storage"]
