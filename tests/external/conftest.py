"""Fixtures of the external-storage tests: a local S3 server (moto), storages, a counting pipe."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest

from tests.external._service import Blobs, BlobsImpl
from vgi_rpc import ExternalLocationConfig, RpcServer, S3Storage, TransportError
from vgi_rpc.rpc import RpcConnection, make_proxy
from vgi_rpc.transports import make_pipe_pair

_BUFFER = "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"
ACCESS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass
class S3Server:
    """A moto S3 server on 127.0.0.1 with one bucket."""

    endpoint: str
    bucket: str

    def storage(self, prefix: str | None = None) -> S3Storage:
        """A storage under a fresh prefix of the bucket."""
        return S3Storage(
            self.bucket,
            prefix if prefix is not None else f"{uuid.uuid4().hex[:8]}/",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            access_key="testing",
            secret_key="testing",
        )

    def keys(self, prefix: str) -> list[str]:
        """The object keys under ``prefix``."""
        answer = httpx.get(f"{self.endpoint}/{self.bucket}?list-type=2&prefix={prefix}")
        return [part.split("</Key>")[0] for part in answer.text.split("<Key>")[1:]]


@pytest.fixture(scope="package")
def s3() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    # Objects up to 256 MiB stay in memory (moto spools larger ones to disk): 2x faster.
    previous = os.environ.get(_BUFFER)
    os.environ[_BUFFER] = str(256 * 1024 * 1024)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        assert httpx.put(f"{endpoint}/vgi-test").status_code == 200
        yield S3Server(endpoint, "vgi-test")
    finally:
        server.stop()
        if previous is None:
            os.environ.pop(_BUFFER, None)
        else:
            os.environ[_BUFFER] = previous


class _CountingRaw(io.RawIOBase):
    def __init__(self, inner: io.BufferedReader, counter: Counter) -> None:
        super().__init__()
        self._inner = inner
        self._counter = counter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._inner.readinto1(buffer)
        self._counter.read += n
        return n


@dataclass
class Counter:
    """Bytes the client wrote to and read from its pipe."""

    written: int = 0
    read: int = 0

    @property
    def total(self) -> int:
        return self.written + self.read


class CountingChannel:
    """A client channel that counts every byte crossing it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.counter = Counter()
        raw = _CountingRaw(inner.reader, self.counter)
        self._reader = cast(io.BufferedReader, io.BufferedReader(raw, 1 << 16))

    @property
    def reader(self) -> io.BufferedReader:
        return self._reader

    def write_chunks(self, chunks: Sequence[Any]) -> None:
        self.counter.written += sum(memoryview(c).nbytes for c in chunks)
        self._inner.write_chunks(chunks)

    def peer_failure(self, detail: str) -> TransportError:
        return TransportError(detail)

    def close(self) -> None:
        self._inner.close()


@contextlib.contextmanager
def counted_pipe(
    server_config: ExternalLocationConfig | None,
    client_config: ExternalLocationConfig | None,
    **client: Any,
) -> Iterator[tuple[Blobs, Counter]]:
    """The Blobs service on a thread, its client's pipe counted."""
    server = RpcServer(Blobs, BlobsImpl(), external_location=server_config)
    client_side, server_side = make_pipe_pair()
    thread = threading.Thread(target=server.serve, args=(server_side,), daemon=True)
    thread.start()
    channel = CountingChannel(client_side)
    connection = RpcConnection(Blobs, channel, external_location=client_config, **client)
    try:
        yield make_proxy(Blobs, connection), channel.counter
    finally:
        connection.close()
        thread.join(timeout=10)
        server_side.close()


def files(directory: str) -> list[str]:
    """The objects in a local storage directory."""
    return sorted(name for name in os.listdir(directory) if not name.endswith(".partial"))
