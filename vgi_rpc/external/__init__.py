"""External storage for oversized batches (wire spec section 12).

A writer uploads every data batch of at least ``externalize_threshold_bytes``
to storage and sends a zero-row *pointer batch* naming its URL and SHA-256; a
reader fetches it back (in parallel chunks), verifies and decodes it::

    config = ExternalLocationConfig(storage=S3Storage(bucket="my-bucket"), compression=Compression())
    server = RpcServer(MyService, MyServiceImpl(), external_location=config)
    with connect(MyService, cmd, external_location=config) as proxy: ...

Imported only by programs that configure it.
"""

from vgi_rpc.external._cloud import GCSStorage, S3Storage
from vgi_rpc.external._config import Compression, ExternalLocationConfig, FetchConfig, StorageLike
from vgi_rpc.external._payload import Payload, is_pointer
from vgi_rpc.external._route import ExternalBudget, ExternalRoute, Uploader
from vgi_rpc.external._storage import (
    ExternalStorage,
    FileSystemStorage,
    UploadUrl,
    UploadUrlProvider,
)
from vgi_rpc.external._urls import https_only_validator, redact

__all__ = [
    "Compression",
    "ExternalBudget",
    "ExternalLocationConfig",
    "ExternalRoute",
    "ExternalStorage",
    "FetchConfig",
    "FileSystemStorage",
    "GCSStorage",
    "Payload",
    "S3Storage",
    "StorageLike",
    "UploadUrl",
    "UploadUrlProvider",
    "Uploader",
    "https_only_validator",
    "is_pointer",
    "redact",
]
