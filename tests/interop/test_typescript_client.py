"""Interop with the TypeScript client ``@query-farm/vgi-rpc`` 0.25.4 (npm), a second-generation peer.

``conformance/ts/drive.mjs`` (installed by ``scripts/ts-client.sh`` from its lock file)
finds the service by reflection (``vgi_rpc.Reflection.v1``), calls unary methods of
several types, iterates a producer, runs an exchange and checks that remote errors
arrive as errors. It prints one JSON line per check. These tests run it against our
conformance worker over every transport the client has: HTTP, pipe, unix and TCP.

Node and npm are required: without them these tests fail (they never skip). The
0.25.4 client cannot spawn a worker itself on Node (its ``subprocessConnect`` calls
``Bun.spawn``), so for the pipe the harness starts the worker and hands its stdin and
stdout to the client's ``pipeConnect``; it has no unix-socket client either, so for
unix the harness hands a ``node:net`` unix socket to ``pipeConnect``, exactly as the
client's own ``tcpConnect`` does with a TCP socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.interop

INSTALL = os.path.join(ROOT, "scripts", "ts-client.sh")
DRIVER = os.path.join(ROOT, "conformance", "ts", "drive.mjs")
OUR_WORKER = [sys.executable, os.path.join(ROOT, "conformance", "worker.py"), "--describe"]
REFERENCE_WORKER = (
    Path(os.environ.get("VGI_RPC_REFERENCE_VENV_052", os.path.join(ROOT, ".refvenv52")))
    / "bin"
    / "vgi-rpc-conformance"
)
TRANSPORTS = ("http", "pipe", "unix", "tcp")
# Every check the harness prints after "<transport>.", in order; all must pass.
CHECKS = (
    "connect",
    "reflection",
    "echo_string",
    "echo_int",
    "echo_int.negative",
    "echo_float",
    "echo_bool",
    "add_floats",
    "concatenate",
    "concatenate.omitted_default",
    "concatenate.explicit_default",
    "raise_value_error",
    "echo_string.after_error",
    "produce_n",
    "exchange_scale",
    "produce_error_on_init",
    "echo_string.after_streams",
)


@pytest.fixture(scope="module")
def ts_client() -> None:
    """Install the harness (``npm ci`` from the lock file) once; fail clearly without Node."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found on PATH: the TypeScript interop test needs "
            "Node >= 20 and npm (to install @query-farm/vgi-rpc from conformance/ts)"
        )
    proc = subprocess.run(
        [INSTALL], capture_output=True, text=True, timeout=600, cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/ts-client.sh failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )


@contextlib.contextmanager
def _worker(cmd: list[str], transport: str) -> Iterator[list[str]]:
    """Serve ``cmd`` over ``transport``; yield the harness arguments that reach it."""
    if transport == "pipe":
        # The harness starts the worker itself and talks over its stdin/stdout.
        yield ["--", *cmd]
        return
    directory = tempfile.mkdtemp(prefix="vgi-ts-")
    where = {
        "http": ["--http", "0"],
        "unix": ["--unix", os.path.join(directory, "worker.sock")],
        "tcp": ["--tcp", "127.0.0.1:0"],
    }[transport]
    with open(os.path.join(directory, "stderr"), "w+") as stderr:
        proc = subprocess.Popen(
            [*cmd, *where], stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline().strip()
            stderr.seek(0)
            assert first, f"worker printed no address; stderr:\n{stderr.read()[-3000:]}"
            kind, _, address = first.partition(":")
            if transport == "http":
                assert kind == "PORT", first
                yield ["--url", f"http://127.0.0.1:{address}"]
            elif transport == "unix":
                assert kind == "UNIX", first
                yield ["--path", address]
            else:
                assert kind == "TCP", first
                host, _, port = address.rpartition(":")
                yield ["--host", host, "--port", port]
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()
            shutil.rmtree(directory, ignore_errors=True)


def _drive(transport: str, args: list[str]) -> list[dict[str, object]]:
    """Run the harness; return its checks, failing on a crash or a missing check."""
    proc = subprocess.run(
        ["node", DRIVER, "--transport", transport, *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    checks = []
    for line in proc.stdout.splitlines():
        try:
            checks.append(json.loads(line))
        except ValueError:
            pytest.fail(f"harness printed a non-JSON line: {line!r}\nstderr:\n{proc.stderr}")
    names = [str(check["check"]) for check in checks]
    expected = [f"{transport}.{name}" for name in CHECKS]
    assert names == expected, (
        f"harness (exit {proc.returncode}) ran {names}, expected {expected}\nstderr:\n{proc.stderr}"
    )
    failed = [check for check in checks if check["ok"] is not True]
    assert not failed, "\n".join(json.dumps(check) for check in failed)
    assert proc.returncode == 0, proc.stderr
    return checks


@pytest.mark.timeout(300)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_typescript_client_drives_our_worker(ts_client: None, transport: str) -> None:
    with _worker(OUR_WORKER, transport) as args:
        if transport == "http":
            args = [*args, "--prefix", "/vgi"]
        checks = _drive(transport, args)
    reflection = checks[1]["detail"]
    assert isinstance(reflection, dict)
    assert reflection["protocol"] == "ConformanceService"
    assert "vgi_rpc.Reflection.v1" in reflection["hosted"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_harness_passes_against_the_reference_worker(ts_client: None, transport: str) -> None:
    """The same harness against the known-good reference 0.52.2 worker keeps the harness honest."""
    if not REFERENCE_WORKER.exists():
        reason = f"reference 0.52.2 peer not installed at {REFERENCE_WORKER.parent.parent} (run scripts/reference-venv-052.sh)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with _worker([str(REFERENCE_WORKER), "--describe"], transport) as args:
        if transport == "http":
            args = [*args, "--prefix", ""]  # the reference worker mounts its routes at the root
        _drive(transport, args)
