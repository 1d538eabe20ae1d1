"""``vgi-rpc serve`` on waitress, and ``vgi-rpc describe|call --url`` against it."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests._services import Service, ServiceImpl
from tests.conftest import ROOT, serve_wsgi, worker_env
from vgi_rpc import RpcServer
from vgi_rpc.cli import main as cli
from vgi_rpc.http import http_connect, make_wsgi_app

VGI_RPC = [sys.executable, "-c", "import sys; from vgi_rpc.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    with _serve_cli() as url:
        yield url


@contextlib.contextmanager
def _serve_cli(*options: str) -> Iterator[str]:
    env = {**worker_env(), "VGI_RPC_SIGNING_KEY": "cli test key"}
    proc = subprocess.Popen(
        [
            *VGI_RPC,
            "serve",
            "examples.http_service:Inventory",
            "examples.http_service:InventoryImpl",
            "--port",
            "0",
            "--describe",
            *options,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    assert first.startswith("serving Inventory on http://127.0.0.1:"), first
    try:
        yield first.removeprefix("serving Inventory on ").removesuffix("/vgi")
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
        # The key came from the environment, so no "random key" warning was logged.
        assert "no signing_key given" not in stderr


def test_serve_without_the_page() -> None:
    with _serve_cli("--no-page") as url:
        page = httpx.get(url + "/vgi/", headers={"Accept": "text/html"})
        assert page.status_code in (404, 405)
        assert httpx.post(
            url + "/vgi/page-call/Inventory/count", json={"sku": "fig"}
        ).status_code in (
            404,
            405,
        )
        out = io.StringIO()
        assert cli(["call", "--url", url, "--format", "json", "count", "sku=fig"], out) == 0
        assert "7" in out.getvalue()


def test_describe_over_url(served: str) -> None:
    out = io.StringIO()
    assert cli(["describe", "--url", served, "--format", "table"], out) == 0
    assert "count(sku: string) -> int64" in out.getvalue()
    assert "listing" in out.getvalue()


def test_call_over_url(served: str) -> None:
    out = io.StringIO()
    assert cli(["call", "--url", served, "--format", "json", "count", "sku=fig"], out) == 0
    assert "7" in out.getvalue()


def test_serve_answers_a_browser_with_the_service_page(served: str) -> None:
    page = httpx.get(served + "/vgi/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "data-method='count'" in page.text
    answer = httpx.post(served + "/vgi/page-call/Inventory/count", json={"sku": "fig"})
    assert answer.json()["result"] == 7


def test_a_producer_over_url_prints_every_batch(served: str) -> None:
    # Imported by name: mypy checks examples/ as top-level files, not as a package.
    inventory = importlib.import_module("examples.http_service").Inventory
    with http_connect(inventory, served) as svc:
        expected = [b.batch.to_pylist() for b in svc.listing(page_size=2)]
    assert len(expected) > 1  # the listing needs several turns, so tokens travel
    out = io.StringIO()
    assert cli(["call", "--url", served, "-f", "json", "listing", "page_size=2"], out) == 0
    rows = [row for batch in expected for row in batch]  # one JSON object per row
    assert [json.loads(line) for line in out.getvalue().splitlines()] == rows


def test_a_producer_with_a_header_over_url() -> None:
    app = make_wsgi_app(RpcServer(Service, ServiceImpl(), enable_describe=True))
    with serve_wsgi(app) as url:
        out = io.StringIO()
        assert cli(["call", "--url", url, "-f", "json", "counted", "n=3"], out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [{"__header__": {"total": 3}}, {"value": 3}, {"value": 2}, {"value": 1}]


def test_an_exchange_over_url_reads_json_lines_from_stdin(served: str) -> None:
    out = io.StringIO()
    rows = io.StringIO('{"price": 10}\n\n{"price": 2.5}\n')
    assert cli(["call", "--url", served, "with_tax", "rate=0.1"], out, rows) == 0
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"price": 11.0},
        {"price": 2.75},
    ]


def test_serve_refuses_a_bad_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["serve", "examples.http_service:Nope", "examples.http_service:InventoryImpl"]) == 2
    assert "has no attribute 'Nope'" in capsys.readouterr().err


def test_the_example_module_serves_under_gunicorn_style_import() -> None:
    env = {**worker_env(), "VGI_RPC_SIGNING_KEY": "k"}
    code = "import examples.http_service as m; print(type(m.app).__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "App"


def test_serve_http_takes_an_rpc_server_as_the_reference_does() -> None:
    """``serve_http(server)`` serves ``make_wsgi_app(server)``, with its /vgi prefix."""
    script = (
        "from tests._services import Service, ServiceImpl\n"
        "from vgi_rpc import RpcServer\n"
        "from vgi_rpc.http import serve_http\n"
        "serve_http(RpcServer(Service, ServiceImpl()), port=0,\n"
        "           on_bound=lambda host, port: print(port, flush=True))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with http_connect(Service, f"http://127.0.0.1:{port}") as svc:
            assert svc.echo_bytes(data=b"abc") == b"abc"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
