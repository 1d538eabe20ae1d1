"""External storage against the reference implementation (vgi-rpc 0.42.3), both ways.

Pipes are measured by a relay (``_relay.py``) between the two processes: a
64 MiB batch that went by pointer leaves the pipe under 1 MiB. The
reference runs in its own virtualenv; the scripts it runs are below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance.protocol import ConformanceService
from tests.conftest import ROOT
from tests.external._service import MiB, filler
from tests.external.conftest import ACCESS, S3Server
from tests.interop.test_reference import REFERENCE_RUNNER, REFERENCE_VENV, _run, _statuses
from vgi_rpc import Compression, ExternalLocationConfig, StderrMode, connect

pytestmark = pytest.mark.interop

BIG = 64 * MiB
RELAY = [sys.executable, os.path.join(ROOT, "tests", "external", "_relay.py")]
OUR_WORKER = [sys.executable, os.path.join(ROOT, "conformance", "worker.py")]

# The reference conformance worker, configured with external storage: a local
# directory (file:// URLs) or its S3Storage (presigned URLs) on the test's S3 server.
REFERENCE_WORKER = textwrap.dedent(
    """
    import pathlib, sys, uuid
    from vgi_rpc.conformance._impl import ConformanceServiceImpl
    from vgi_rpc.conformance._protocol import ConformanceService
    from vgi_rpc.external import Compression, ExternalLocationConfig
    from vgi_rpc.rpc import RpcServer, serve_stdio

    kind, where, coding = sys.argv[1:4]

    class Directory:
        def __init__(self, root):
            self.root = pathlib.Path(root)
        def upload(self, data, schema, *, content_encoding=None):
            path = self.root / f"{uuid.uuid4().hex}.arrow"
            path.write_bytes(data)
            return path.as_uri()

    if kind == "dir":
        storage = Directory(where)
    else:
        from vgi_rpc.s3 import S3Storage
        endpoint, bucket = where.rsplit("/", 1)
        storage = S3Storage(bucket=bucket, endpoint_url=endpoint, region_name="us-east-1")
    config = ExternalLocationConfig(
        storage=storage,
        externalize_threshold_bytes=1 << 20,
        compression=Compression() if coding == "zstd" else None,
        url_validator=None,  # the test's S3 server speaks plain http
    )
    try:
        serve_stdio(RpcServer(ConformanceService, ConformanceServiceImpl(), external_location=config))
    finally:
        config.fetch_config.close()  # else its fetch pool stalls interpreter exit for seconds
    """
)

# The reference client against our worker over a pipe: a 64 MiB result and a
# producer stream of large batches, both fetched back through its resolver.
REFERENCE_PIPE_CLIENT = textwrap.dedent(
    """
    import json, sys
    from vgi_rpc.conformance._protocol import ConformanceService
    from vgi_rpc.external import ExternalLocationConfig
    from vgi_rpc.rpc import connect

    size = int(sys.argv[1])
    config = ExternalLocationConfig(url_validator=None)
    with connect(ConformanceService, sys.argv[2:], external_location=config) as proxy:
        result = proxy.oversized_unary(target_bytes=size)
        rows = [b.batch.num_rows for b in proxy.produce_oversized_batch(rows_per_batch=200_000)]
        print(json.dumps({"size": len(result), "zeros": result.count(0), "rows": rows}))
    config.fetch_config.close()
    """
)

# The reference HTTP client against our HTTP worker: its 64 MiB requests are
# refused inline (413), so it asks our server for upload URLs (spec section 10),
# PUTs the request there and sends a pointer; the result comes back by pointer.
REFERENCE_HTTP_CLIENT = textwrap.dedent(
    """
    import hashlib, json, sys
    import httpx2
    from vgi_rpc.conformance._protocol import ConformanceService
    from vgi_rpc.external import ExternalLocationConfig
    from vgi_rpc.http import http_connect

    url, size = sys.argv[1], int(sys.argv[2])
    bodies = []
    def count(request):
        if request.url.path.startswith("/vgi/"):
            bodies.append((request.url.path, len(request.content)))
    data = bytes(range(256)) * (size // 256)
    client = httpx2.Client(base_url=url, event_hooks={"request": [count]}, timeout=120)
    config = ExternalLocationConfig(url_validator=None)
    with http_connect(ConformanceService, client=client, prefix="/vgi", external_location=config) as proxy:
        ok = proxy.echo_bytes(data=data) == data
    print(json.dumps({"ok": ok, "bodies": bodies}))
    config.fetch_config.close()
    client.close()
    """
)


def _reference_python() -> Path:
    python = REFERENCE_VENV / "bin" / "python"
    if not python.exists():
        if os.environ.get("CI"):
            pytest.fail(f"reference peer missing at {REFERENCE_VENV}")
        pytest.skip(f"reference peer not installed at {REFERENCE_VENV}")
    return python


def _script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _env() -> dict[str, str]:
    return {**os.environ, **ACCESS, "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.mark.parametrize("coding", ["plain", "zstd"])
def test_our_client_fetches_the_reference_workers_pointers_from_a_directory(
    tmp_path: Path, coding: str
) -> None:
    worker = _script(tmp_path, "ref_worker.py", REFERENCE_WORKER)
    store = tmp_path / "store"
    store.mkdir()
    counts = str(tmp_path / "counts.json")
    cmd = [*RELAY, counts, "--", str(_reference_python()), worker, "dir", str(store), coding]

    def in_store(url: str) -> None:  # the reference names file:// URLs in its directory
        if not url.startswith(store.as_uri() + "/"):
            raise ValueError("outside the reference's directory")

    config = ExternalLocationConfig(url_validator=in_store)
    with connect(ConformanceService, cmd, external_location=config, stderr=StderrMode.PIPE) as p:
        assert p.oversized_unary(target_bytes=BIG) == bytes(BIG)
        assert p.echo_string(value="in step") == "in step"
    with open(counts) as f:
        moved = json.load(f)
    assert moved["from_worker"] < MiB, moved
    (stored,) = store.iterdir()
    assert (stored.read_bytes()[:4] == b"\x28\xb5\x2f\xfd") == (coding == "zstd")


@pytest.mark.parametrize("coding", ["plain", "zstd"])
def test_our_client_and_the_reference_worker_trade_64_mib_through_s3(
    tmp_path: Path, s3: S3Server, coding: str
) -> None:
    worker = _script(tmp_path, "ref_worker.py", REFERENCE_WORKER)
    counts = str(tmp_path / "counts.json")
    python = str(_reference_python())
    cmd = [*RELAY, counts, "--", python, worker, "s3", f"{s3.endpoint}/{s3.bucket}", coding]
    # The reference's default prefix: its URLs are in our storage, so we fetch them.
    storage = s3.storage("vgi-rpc/")
    config = ExternalLocationConfig(
        storage=storage,
        externalize_threshold_bytes=MiB,
        compression=Compression() if coding == "zstd" else None,
    )
    data = filler(BIG, seed=7)
    before = len(s3.keys("vgi-rpc/"))
    with connect(
        ConformanceService, cmd, external_location=config, env=_env(), stderr=StderrMode.PIPE
    ) as proxy:
        assert proxy.echo_bytes(data=data) == data  # a 64 MiB request and a 64 MiB result
    with open(counts) as f:
        moved = json.load(f)
    assert moved["to_worker"] < MiB, moved
    assert moved["from_worker"] < MiB, moved
    assert len(s3.keys("vgi-rpc/")) == before + 2


@pytest.mark.parametrize("coding", ["plain", "zstd"])
def test_the_reference_client_fetches_our_workers_pointers_from_s3(
    tmp_path: Path, s3: S3Server, coding: str
) -> None:
    client = _script(tmp_path, "ref_client.py", REFERENCE_PIPE_CLIENT)
    counts = str(tmp_path / "counts.json")
    worker = [*OUR_WORKER, "--external-s3", f"{s3.endpoint}/{s3.bucket}/ours-{coding}/"]
    if coding == "zstd":
        worker += ["--external-compression", "zstd"]
    proc = subprocess.run(
        [str(_reference_python()), client, str(BIG), *RELAY, counts, "--", *worker],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout)
    assert answer == {"size": BIG, "zeros": BIG, "rows": [200_000]}
    with open(counts) as f:
        moved = json.load(f)
    assert moved["from_worker"] < MiB, moved
    keys = s3.keys(f"ours-{coding}/")
    assert len(keys) == 2
    assert all(key.endswith(".zst") == (coding == "zstd") for key in keys)


def test_the_reference_http_client_uploads_requests_through_our_vended_urls(
    tmp_path: Path, s3: S3Server
) -> None:
    from tests.interop.test_http_reference import _http_worker

    client = _script(tmp_path, "ref_http_client.py", REFERENCE_HTTP_CLIENT)
    worker = [
        *OUR_WORKER,
        "--external-s3",
        f"{s3.endpoint}/{s3.bucket}/vended/",
        "--upload-urls",
        "--max-request-bytes",
        "4MiB",
        "--external-compression",
        "zstd",
    ]
    previous = {name: os.environ.get(name) for name in ACCESS}
    os.environ.update(ACCESS)  # the worker signs its URLs with the test server's key
    try:
        with _http_worker(worker) as url:
            proc = subprocess.run(
                [str(_reference_python()), client, url, str(BIG)],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout)
    assert answer["ok"]
    calls = [(path, size) for path, size in answer["bodies"] if path != "/vgi/health"]
    # refused inline (413), then asked for an upload URL, then sent the pointer
    assert [path for path, _ in calls] == [
        "/vgi/echo_bytes",
        "/vgi/__upload_url__/init",
        "/vgi/echo_bytes",
    ], calls
    assert calls[-1][1] < 4096  # the 64 MiB request went to the store
    assert len(s3.keys("vended/")) == 2  # the uploaded request, our result


def test_the_reference_runners_external_cap_tests_pass_against_our_worker(tmp_path: Path) -> None:
    from tests.interop.test_http_reference import _http_worker

    _reference_python()
    worker = [
        *OUR_WORKER,
        "--external-dir",
        str(tmp_path),
        "--externalize-threshold",
        "32KiB",
        "--max-externalized-response-bytes",
        "65536",
    ]
    with _http_worker(worker) as url:
        report = _run(
            [
                str(REFERENCE_RUNNER),
                "--url",
                url,
                "--prefix",
                "/vgi",
                "--format",
                "json",
                "--filter",
                "http_response_cap.*",
            ]
        )
    statuses = _statuses(report)
    assert statuses["http_response_cap.producer_external_strict_fail"] == "pass"
    assert statuses["http_response_cap.externalized_strict_fail"] == "pass"
    assert not any(s == "fail" for s in statuses.values()), statuses
    assert list(tmp_path.iterdir()) == []  # both refused before uploading
