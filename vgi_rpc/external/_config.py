"""``ExternalLocationConfig``: where oversized batches go, how they are compressed and fetched back."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Literal, Union

from vgi_rpc.external._storage import ExternalStorage, FileSystemStorage
from vgi_rpc.external._urls import UrlValidator

if TYPE_CHECKING:
    import pyarrow.fs as pafs

MiB = 1 << 20

# What ``storage=`` accepts: a storage object, a local directory, a pyarrow
# filesystem (its root, or a SubTreeFileSystem), or a (filesystem, base path) pair.
StorageLike = Union[
    ExternalStorage,
    str,
    "os.PathLike[str]",
    "pafs.FileSystem",
    "tuple[pafs.FileSystem, str]",
]


@dataclasses.dataclass(frozen=True)
class Compression:
    """Compress externalized payloads (the object is sent with ``Content-Encoding``).

    Attributes:
        algorithm: ``"zstd"`` (default) or ``"gzip"``.
        level: Codec level (zstd 1-22, gzip 1-9).
    """

    algorithm: Literal["zstd", "gzip"] = "zstd"
    level: int = 3

    def __post_init__(self) -> None:
        if self.algorithm not in ("zstd", "gzip"):
            raise ValueError(
                f"Compression.algorithm must be 'zstd' or 'gzip', got {self.algorithm!r}"
            )
        top = 22 if self.algorithm == "zstd" else 9
        if not 1 <= self.level <= top:
            raise ValueError(f"{self.algorithm} levels are 1 to {top}, got {self.level}")


@dataclasses.dataclass(frozen=True)
class FetchConfig:
    """How a reader fetches an external location.

    Attributes:
        parallel_threshold_bytes: Objects up to this size are fetched with one
            request; the rest of a larger one follows in chunks.
        chunk_size_bytes: Size of each further ranged request, fetched in parallel.
        max_parallel_requests: Ranged requests in flight at once.
        timeout_seconds: Deadline of one fetch (each request, and all of them).
        max_fetch_bytes: Largest object (as stored, before decompression),
            checked before anything is allocated.
        max_decoded_bytes: Largest payload after decompression, enforced while
            it is decompressed.
    """

    parallel_threshold_bytes: int = 8 * MiB
    chunk_size_bytes: int = 8 * MiB
    max_parallel_requests: int = 8
    timeout_seconds: float = 60.0
    max_fetch_bytes: int = 256 * MiB
    max_decoded_bytes: int = 1024 * MiB

    def __post_init__(self) -> None:
        names = ("parallel_threshold_bytes", "chunk_size_bytes", "max_parallel_requests")
        for name in (*names, "max_fetch_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"FetchConfig.{name} must be positive")
        if self.max_decoded_bytes < 1 or self.timeout_seconds <= 0:
            raise ValueError("FetchConfig.max_decoded_bytes and timeout_seconds must be positive")


@dataclasses.dataclass(frozen=True)
class ExternalLocationConfig:
    """External storage for batches too large to send inline (wire spec section 12).

    Give it to ``RpcServer(external_location=...)`` and to the client
    (``connect``, ``serve_pipe``, ``http_connect``, ``WorkerPool.connect``).
    A writer with ``storage`` uploads every data batch of at least
    ``externalize_threshold_bytes`` (its Arrow buffer size) and sends a
    zero-row pointer batch instead; a reader fetches pointers back, checks
    their SHA-256 and decodes them under the usual limits.

    Attributes:
        storage: Where to upload: an ``ExternalStorage`` (``S3Storage``,
            ``GCSStorage``, your own), a local directory, a ``pyarrow.fs``
            filesystem or a ``(filesystem, base_path)`` pair. ``None``: only
            resolve pointers, never write any (an HTTP client may still upload
            through URLs the server vends).
        externalize_threshold_bytes: Smallest batch (Arrow buffer bytes) externalized.
        compression: Compress payloads (``Compression()``: zstd), or ``None``.
        fetch_config: How pointers are fetched.
        url_validator: Called with every URL to fetch that is not in ``storage``;
            raise ``ValueError`` to refuse it. Without one only ``https://`` URLs
            (and those of ``storage``) are fetched.
        max_retries: Further attempts after a fetch fails on the network or a 5xx.
        retry_delay_seconds: Pause between attempts.
    """

    storage: StorageLike | None = None
    externalize_threshold_bytes: int = 1 * MiB
    compression: Compression | None = None
    fetch_config: FetchConfig = dataclasses.field(default_factory=FetchConfig)
    url_validator: UrlValidator | None = None
    max_retries: int = 2
    retry_delay_seconds: float = 0.5

    def __post_init__(self) -> None:
        if self.storage is not None:
            object.__setattr__(self, "storage", as_storage(self.storage))
        if self.externalize_threshold_bytes < 0:
            raise ValueError("externalize_threshold_bytes must be >= 0")
        if not 0 <= self.max_retries <= 10 or self.retry_delay_seconds < 0:
            raise ValueError("max_retries must be 0 to 10 and retry_delay_seconds >= 0")

    @property
    def writer(self) -> ExternalStorage | None:
        """The storage uploads go to (``storage``, normalised)."""
        storage = self.storage
        assert storage is None or isinstance(storage, ExternalStorage)
        return storage


def as_storage(value: object) -> ExternalStorage:
    """Normalise what ``storage=`` accepts to an ``ExternalStorage``.

    Raises:
        TypeError: ``value`` is none of the accepted kinds.
    """
    if isinstance(value, str | os.PathLike):
        return FileSystemStorage.in_directory(value)
    if isinstance(value, ExternalStorage):
        return value
    import pyarrow.fs as pafs

    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], pafs.FileSystem):
        return FileSystemStorage(value[0], str(value[1]))
    if isinstance(value, pafs.SubTreeFileSystem):
        return FileSystemStorage(value.base_fs, value.base_path)
    if isinstance(value, pafs.FileSystem):
        return FileSystemStorage(value, "")
    raise TypeError(
        "storage must be an ExternalStorage (S3Storage, GCSStorage, ...), a directory, a "
        f"pyarrow.fs filesystem or a (filesystem, base_path) pair; got {type(value).__name__}"
    )


__all__ = ["Compression", "ExternalLocationConfig", "FetchConfig", "StorageLike", "as_storage"]
