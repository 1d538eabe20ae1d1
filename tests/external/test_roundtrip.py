"""Oversized batches travel by pointer: 64 MiB each way over a pipe that carries almost nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pyarrow as pa
import pytest

from tests.conftest import ROOT
from tests.external._service import BLOB, MiB, filler
from tests.external.conftest import S3Server, counted_pipe, files
from vgi_rpc import (
    AnnotatedBatch,
    Compression,
    ExternalLocationConfig,
    FetchConfig,
    FileSystemStorage,
    Message,
)
from vgi_rpc.wire import keys as k

BIG = 64 * MiB
CODINGS = [None, Compression()]


def _config(storage: object, compression: Compression | None) -> ExternalLocationConfig:
    return ExternalLocationConfig(
        storage=storage,  # type: ignore[arg-type]  # a directory or an S3Storage
        externalize_threshold_bytes=1 * MiB,
        compression=compression,
        fetch_config=FetchConfig(chunk_size_bytes=8 * MiB),
    )


@pytest.mark.parametrize("compression", CODINGS, ids=["plain", "zstd"])
def test_64_mib_request_and_result_by_pointer_in_a_local_directory(
    tmp_path: object, compression: Compression | None
) -> None:
    directory = str(tmp_path)
    config = _config(directory, compression)
    data = filler(BIG)
    with counted_pipe(config, config) as (blobs, counter):
        assert blobs.echo(data) == data
    assert counter.total < 1 * MiB, counter  # the pipe carried two pointers, not 128 MiB
    stored = files(directory)
    assert len(stored) == 2  # the request and the result
    suffix = ".arrow.zst" if compression else ".arrow"
    assert all(name.endswith(suffix) for name in stored)
    sizes = [os.path.getsize(os.path.join(directory, name)) for name in stored]
    assert all((size < BIG // 4) if compression else (size > BIG) for size in sizes), sizes


def test_64_mib_request_and_result_by_pointer_in_s3(s3: S3Server) -> None:
    # Uncompressed S3 traffic is covered against the reference (test_interop).
    compression = Compression()
    storage = s3.storage()
    config = _config(storage, compression)
    data = filler(BIG, seed=3)
    with counted_pipe(config, config) as (blobs, counter):
        assert blobs.size(data) == BIG  # a 64 MiB request
        assert blobs.make(BIG) == filler(BIG)  # a 64 MiB result
    assert counter.total < 1 * MiB, counter
    keys = s3.keys(storage.prefix)
    assert len(keys) == 2
    assert all(key.endswith(".arrow.zst") for key in keys)


def test_the_pointer_on_the_wire_is_what_the_spec_lays_out(tmp_path: object) -> None:
    from tests._hostile import RecordingChannel, request
    from tests.external._service import Blobs, BlobsImpl
    from vgi_rpc import RpcServer

    directory = str(tmp_path)
    server = RpcServer(Blobs, BlobsImpl(), external_location=_config(directory, None))
    channel = RecordingChannel(request("logged", {"size": [2 * MiB]}))
    server.serve(channel)  # type: ignore[arg-type]  # a recording channel
    reader = pa.ipc.open_stream(bytes(channel.written))
    assert reader.schema.names == ["result"]
    assert reader.schema.field(0).type == pa.binary()
    batches = [reader.read_next_batch_with_custom_metadata() for _ in range(1)]
    with pytest.raises(StopIteration):
        reader.read_next_batch()
    pointer, metadata = batches[0]
    assert pointer.num_rows == 0  # logs and data went into the object: one zero-row pointer
    assert set(metadata.keys()) == {k.LOCATION_KEY, k.LOCATION_SHA256_KEY}
    url = metadata[k.LOCATION_KEY].decode()
    (name,) = files(directory)
    assert url == FileSystemStorage.in_directory(directory).url_of(os.path.join(directory, name))
    with open(os.path.join(directory, name), "rb") as f:
        payload = f.read()
    assert hashlib.sha256(payload).hexdigest() == metadata[k.LOCATION_SHA256_KEY].decode()
    inside = pa.ipc.open_stream(payload)
    kinds = []
    for _ in range(3):
        batch, md = inside.read_next_batch_with_custom_metadata()
        kinds.append((batch.num_rows, md.get(k.LOG_LEVEL_KEY) if md else None))
    assert kinds == [(0, b"INFO"), (0, b"WARN"), (1, None)]  # the turn's logs, then its data


def test_logs_inside_a_payload_reach_on_log_before_the_result(tmp_path: object) -> None:
    config = _config(str(tmp_path), Compression())
    seen: list[str] = []
    with counted_pipe(config, config, on_log=lambda m: seen.append(m.message)) as (blobs, _):
        assert len(blobs.logged(2 * MiB)) == 2 * MiB
        assert blobs.small() == 42  # the connection is in step
    assert seen == ["before the result", "also before the result"]


def test_stream_outputs_and_inputs_by_pointer_keep_their_metadata(s3: S3Server) -> None:
    storage = s3.storage()
    config = _config(storage, Compression())
    seen: list[Message] = []
    with counted_pipe(config, config, on_log=seen.append) as (blobs, counter):
        produced = list(blobs.produce(count=3, size=2 * MiB))
        with blobs.relay() as session:
            for turn in range(1, 4):
                blob = filler(2 * MiB, seed=turn)
                sent = pa.RecordBatch.from_pydict({"blob": [blob]}, schema=BLOB)
                out = session.exchange(AnnotatedBatch(sent, {b"tag": b"t%d" % turn}))
                assert out.batch.column("blob")[0].as_py() == blob[::-1]
                md = out.custom_metadata or {}
                assert md[b"turn"] == str(turn).encode()
                assert md[b"tag"] == b"t%d" % turn
                # the reader stamps where the batch came from (spec section 3)
                assert md[k.LOCATION_SOURCE_KEY].startswith(storage.base_url().encode())
                assert float(md[k.LOCATION_FETCH_MS_KEY]) >= 0
                assert k.LOCATION_KEY not in md
    assert [p.batch.column("blob")[0].as_py() for p in produced] == [
        filler(2 * MiB, seed=i) for i in range(3)
    ]
    assert [m.message for m in seen] == [
        "batch 0",
        "batch 1",
        "batch 2",
        "turn 1",
        "turn 2",
        "turn 3",
    ]
    assert counter.total < 1 * MiB
    assert len(s3.keys(storage.prefix)) == 9  # 3 produced, 3 inputs, 3 outputs


def test_batches_under_the_threshold_stay_inline(tmp_path: object) -> None:
    directory = str(tmp_path)
    config = _config(directory, None)
    with counted_pipe(config, config) as (blobs, counter):
        assert blobs.echo(b"x" * 1000) == b"x" * 1000
        assert list(blobs.produce(count=2, size=1000))[1].batch.num_rows == 1
    assert files(directory) == []
    assert counter.total < 64 * 1024


def test_a_subprocess_worker_and_a_pool_worker_use_external_storage(tmp_path: object) -> None:
    from conformance.protocol import ConformanceService
    from vgi_rpc import StderrMode, WorkerPool, connect

    directory = str(tmp_path)
    worker = [
        sys.executable,
        os.path.join(ROOT, "conformance", "worker.py"),
        "--external-dir",
        directory,
    ]
    config = ExternalLocationConfig(storage=directory, compression=Compression())
    data = filler(3 * MiB)
    with connect(
        ConformanceService, worker, external_location=config, stderr=StderrMode.PIPE
    ) as proxy:
        assert proxy.echo_bytes(data=data) == data
    assert len(files(directory)) == 2
    with (
        WorkerPool() as pool,
        pool.connect(ConformanceService, worker, external_location=config) as proxy,
    ):
        assert proxy.echo_bytes(data=data) == data
    assert len(files(directory)) == 4


def test_a_worker_without_external_storage_never_imports_it() -> None:
    code = (
        "import sys\n"
        "from tests.external._service import Blobs, BlobsImpl\n"
        "from vgi_rpc import serve_pipe\n"
        "with serve_pipe(Blobs, BlobsImpl()) as b:\n"
        "    assert b.size(b'x' * 3_000_000) == 3_000_000\n"
        "print(sorted(m for m in ('vgi_rpc.external', 'pyarrow.fs', 'pyarrow._s3fs', 'httpx') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_socket_clients_take_external_location_too(tmp_path: object) -> None:
    import tempfile
    import threading

    from tests.external._service import Blobs, BlobsImpl
    from vgi_rpc import RpcServer, unix_connect, unix_server

    directory = str(tmp_path)
    config = _config(directory, Compression())
    server = RpcServer(Blobs, BlobsImpl(), external_location=config)
    socket_dir = tempfile.mkdtemp(prefix="vgi-ext-")
    listening = unix_server(server, os.path.join(socket_dir, "s.sock"), threaded=True)
    thread = threading.Thread(target=listening.serve_forever, daemon=True)
    thread.start()
    try:
        with unix_connect(Blobs, listening.address, external_location=config) as blobs:
            data = filler(3 * MiB)
            assert blobs.echo(data) == data
    finally:
        listening.close()
        thread.join(timeout=10)
        os.rmdir(socket_dir)
    assert len(files(directory)) == 2


def test_gzip_payloads_for_readers_without_zstd(tmp_path: object) -> None:
    directory = str(tmp_path)
    config = _config(directory, Compression("gzip", 6))
    data = filler(3 * MiB)
    with counted_pipe(config, config) as (blobs, counter):
        assert blobs.echo(data) == data
    assert counter.total < MiB
    stored = files(directory)
    assert len(stored) == 2
    assert all(name.endswith(".arrow.gz") for name in stored)
