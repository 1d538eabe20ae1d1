"""Where externalized batches are written: the ``ExternalStorage`` interface and a ``pyarrow.fs`` store.

``FileSystemStorage`` writes each payload as one object under a base path of
any ``pyarrow.fs`` filesystem (a local directory by default) and names it
with a URL; ``S3Storage`` and ``GCSStorage`` (``_cloud``) are the same store
with presigned ``https://`` URLs that any client can fetch. Objects are never
deleted by vgi_rpc: expire them with a lifecycle rule of the store.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pyarrow as pa

from vgi_rpc._errors import ExternalStorageError
from vgi_rpc.external._urls import redact, within

if TYPE_CHECKING:
    import pyarrow.fs as pafs


@runtime_checkable
class ExternalStorage(Protocol):
    """Anything that stores a payload and returns a URL to fetch it from.

    ``upload`` may be called from several threads at once.
    """

    def upload(self, data: bytes, schema: pa.Schema, *, content_encoding: str | None = None) -> str:
        """Store ``data`` (an Arrow IPC stream, coded with ``content_encoding``); return its URL."""
        ...


@dataclasses.dataclass(frozen=True)
class UploadUrl:
    """A pair of presigned URLs for one new object: PUT to the first, GET from the second."""

    upload_url: str
    download_url: str
    expires_at: datetime.datetime


@runtime_checkable
class UploadUrlProvider(Protocol):
    """Vends upload URLs to HTTP clients (``make_wsgi_app(upload_url_provider=...)``)."""

    def generate_upload_url(self, schema: pa.Schema) -> UploadUrl:
        """A fresh PUT/GET URL pair for one object."""
        ...


class FileSystemStorage:
    """Payloads as objects under ``base_path`` of a ``pyarrow.fs`` filesystem.

    ``FileSystemStorage.in_directory("/var/spool/vgi")`` (or just the path,
    as ``ExternalLocationConfig(storage=...)``) writes ``file://`` URLs; any
    other filesystem writes ``<type>://<path>`` URLs (``s3://bucket/key``),
    which only a reader configured with the same storage can open. Use
    ``S3Storage`` or ``GCSStorage`` for URLs any client can fetch.

    Args:
        filesystem: Where to write.
        base_path: The folder (or ``bucket/prefix``) objects go under.
    """

    def __init__(self, filesystem: pafs.FileSystem, base_path: str = "") -> None:
        import pyarrow.fs as pafs

        self._filesystem: pafs.FileSystem | None = filesystem
        self._local = isinstance(filesystem, pafs.LocalFileSystem)
        base = base_path.rstrip("/")
        if self._local:
            base = str(pathlib.Path(base or ".").resolve())
            filesystem.create_dir(base, recursive=True)
        elif not base:
            raise ValueError("FileSystemStorage needs a base path (a folder, or bucket/prefix)")
        self.base_path = base

    @classmethod
    def in_directory(cls, directory: str | os.PathLike[str]) -> FileSystemStorage:
        """A local directory (created if missing)."""
        import pyarrow.fs as pafs

        return cls(pafs.LocalFileSystem(), os.fspath(directory))

    @property
    def filesystem(self) -> pafs.FileSystem:
        """The ``pyarrow.fs`` filesystem objects are written to."""
        assert self._filesystem is not None
        return self._filesystem

    @property
    def local(self) -> bool:
        """Whether objects live in a local directory (``file://`` URLs)."""
        return self._local

    # -- naming -------------------------------------------------------------

    def _scheme(self) -> str:
        name = self.filesystem.type_name
        return {"local": "file", "gcs": "gs"}.get(name, name)

    def url_of(self, path: str) -> str:
        """The URL a reader fetches ``path`` from."""
        if self._local:
            return pathlib.Path(path).as_uri()
        return f"{self._scheme()}://{urllib.parse.quote(path)}"

    def location_of(self, path: str) -> str:
        """``path`` as diagnostics name it (never a signed URL)."""
        return redact(self.url_of(path))

    def base_url(self) -> str:
        """The URL every object of this storage starts with."""
        if self._local:
            return pathlib.Path(self.base_path).as_uri().rstrip("/") + "/"
        return f"{self._scheme()}://{urllib.parse.quote(self.base_path)}/"

    def owns(self, url: str) -> bool:
        """Whether ``url`` names an object of this storage (always fetchable by its readers)."""
        return within(url, self.base_url())

    def path_of(self, url: str) -> str | None:
        """The filesystem path of one of this storage's URLs, to read through ``filesystem``."""
        if not self.owns(url):
            return None
        parts = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(parts.path)
        return path if self._local else f"{parts.netloc}{path}"

    # -- writing ------------------------------------------------------------

    def _new_path(self, content_encoding: str | None) -> str:
        suffix = {"zstd": ".arrow.zst", "gzip": ".arrow.gz"}.get(content_encoding or "", ".arrow")
        return f"{self.base_path}/{uuid.uuid4().hex}{suffix}"

    def upload(self, data: bytes, schema: pa.Schema, *, content_encoding: str | None = None) -> str:
        """Write ``data`` as a new object and return its URL.

        Raises:
            ExternalStorageError: The store refused the write, cannot be reached,
                or the URL cannot be made (no credentials to sign with).
        """
        path = self._new_path(content_encoding)
        metadata = {"Content-Type": "application/vnd.apache.arrow.stream"}
        if content_encoding:
            metadata["Content-Encoding"] = content_encoding
        # Locally the object appears under its name only once complete.
        staging = f"{path}.partial" if self._local else path
        try:
            url = self.url_of(path)  # first: a URL that cannot be made leaves no object behind
            with self.filesystem.open_output_stream(
                staging, compression=None, metadata=metadata
            ) as out:
                out.write(data)
            if staging != path:
                self.filesystem.move(staging, path)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise ExternalStorageError(
                f"upload of {len(data)} bytes failed: {type(exc).__name__}: {exc}",
                location=self.location_of(path),
                reason="upload_failed",
            ) from exc
        return url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.filesystem.type_name}, {self.base_path!r})"


__all__ = ["ExternalStorage", "FileSystemStorage", "UploadUrl", "UploadUrlProvider"]
