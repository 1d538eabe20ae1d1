"""Stateless streams across processes: gunicorn with 3 workers and one shared key."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from tests._http_app import Pids
from tests.conftest import ROOT, worker_env
from vgi_rpc.http import http_connect

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def _gunicorn(log: Path, app: str, *options: str) -> Iterator[str]:
    env = {**worker_env(), "VGI_RPC_SIGNING_KEY": "one key for every worker"}
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [gunicorn, "-w", "3", "-b", "127.0.0.1:0", *options, "--chdir", ROOT, app],
            env=env,
            stderr=sink,
        )
    try:
        port = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = log.read_text()
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
            if found and text.count("Booting worker") >= 3:
                port = int(found.group(1))
                break
            assert proc.poll() is None, f"gunicorn exited:\n{text}"
            time.sleep(0.1)
        assert port is not None, f"gunicorn did not start 3 workers:\n{log.read_text()}"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def gunicorn_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("gunicorn") / "stderr.log"
    # Workers are replaced every few requests, so turns must land on new processes.
    with _gunicorn(log, "tests._http_app:make_app()", "--max-requests", "7") as url:
        yield url


def test_an_exchange_of_50_turns_spans_workers(gunicorn_url: str) -> None:
    # A new connection per request lets the kernel hand each turn to any worker.
    client = httpx.Client(headers={"Connection": "close"}, timeout=60)
    with client, http_connect(Pids, gunicorn_url, client=client) as svc:
        session = svc.exchange_pids()
        rows = [
            session.exchange(pa.RecordBatch.from_pydict({})).batch.to_pylist()[0] for _ in range(50)
        ]
    assert [row["turn"] for row in rows] == list(range(1, 51))
    assert len({row["pid"] for row in rows}) >= 2


def test_a_producer_continues_across_workers(gunicorn_url: str) -> None:
    client = httpx.Client(headers={"Connection": "close"}, timeout=60)
    with client, http_connect(Pids, gunicorn_url, client=client) as svc:
        rows = [row for batch in svc.produce_pids(n=300) for row in batch.batch.to_pylist()]
    assert [row["turn"] for row in rows] == list(range(1, 301))
    assert len({row["pid"] for row in rows}) >= 2


def test_large_bodies_round_trip_through_gunicorns_file_wrapper(tmp_path: Path) -> None:
    payload = os.urandom(12 << 20)
    app = "tests._http_app:make_app(max_response_bytes=None)"
    with _gunicorn(tmp_path / "stderr.log", app) as url, http_connect(Pids, url) as pids:
        for _ in range(3):
            assert pids.echo(data=payload) == payload
