"""External storage: batches too large for the pipe go through a local directory.

The server uploads any result of at least 1 MiB to the directory (zstd
compressed) and sends a zero-row pointer batch naming its ``file://`` URL and
SHA-256; the client fetches it back, checks the checksum and decodes it. The
client does the same with its large requests. Swap the directory for
``S3Storage(bucket="my-bucket")`` to use S3 (presigned URLs any client can fetch).
"""

from __future__ import annotations

import os
import tempfile
import zlib
from typing import Protocol

from vgi_rpc import Compression, ExternalLocationConfig, FetchConfig, serve_pipe


class Archive(Protocol):
    """Stores and returns large blobs."""

    def checksum(self, data: bytes) -> int:
        """The CRC-32 of ``data`` (the request travels by pointer)."""
        ...

    def blob(self, size: int) -> bytes:
        """``size`` bytes (the result travels by pointer)."""
        ...


class ArchiveImpl:
    def checksum(self, data: bytes) -> int:
        return zlib.crc32(data)

    def blob(self, size: int) -> bytes:
        return bytes(range(256)) * (size // 256)


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        config = ExternalLocationConfig(
            storage=directory,  # a local directory; any pyarrow.fs filesystem works too
            externalize_threshold_bytes=1 << 20,  # 1 MiB
            compression=Compression(),  # zstd
            fetch_config=FetchConfig(chunk_size_bytes=4 << 20),  # fetched in 4 MiB chunks
        )
        with serve_pipe(Archive, ArchiveImpl(), external_location=config) as archive:
            data = archive.blob(size=32 << 20)
            print(f"received {len(data) >> 20} MiB by pointer")
            same = archive.checksum(data=data) == zlib.crc32(data)
            print(f"the server saw the same 32 MiB: {same}")
            print(f"small calls stay inline: {len(archive.blob(size=1024))} bytes")
        print(f"objects in the directory: {len(os.listdir(directory))}")


if __name__ == "__main__":
    main()
