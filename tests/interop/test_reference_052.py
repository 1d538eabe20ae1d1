"""Interop with the second protocol generation: the reference vgi-rpc 0.52.2 runner against our worker.

The 0.52.2 peer lives in its own Python 3.13 virtualenv (``scripts/reference-venv-052.sh``
makes ``.refvenv52``); it is a test peer, never imported. Outside CI a missing
peer skips these tests with that reason; under CI (``CI`` set) it fails them.

Every test of the runner must pass (none is excluded), on every transport.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Protocol

import pytest

from conformance.protocol import ConformanceService, ConformanceServiceV2
from conformance.types import ConformanceHeader
from tests.conftest import ROOT
from tests.interop.test_http_reference import _http_worker
from tests.interop.test_reference import REFERENCE_VENV as REFERENCE_VENV_042
from tests.interop.test_reference import _failures, _run, _socket_worker, _statuses
from vgi_rpc import RpcError, Stream, StreamState, connect
from vgi_rpc.rpc._client import connection_of

pytestmark = pytest.mark.interop

REFERENCE_VENV = Path(
    os.environ.get("VGI_RPC_REFERENCE_VENV_052", os.path.join(ROOT, ".refvenv52"))
)
REFERENCE_PYTHON = REFERENCE_VENV / "bin" / "python"
REFERENCE_RUNNER = REFERENCE_VENV / "bin" / "vgi-rpc-test"
REFERENCE_WORKER = REFERENCE_VENV / "bin" / "vgi-rpc-conformance"
WORKER = [sys.executable, os.path.join(ROOT, "conformance", "worker.py")]
OUR_WORKER = " ".join(WORKER)

# HTTP-only tests, skipped by the runner on pipe, shm, unix and tcp.
HTTP_ONLY = "http_response_cap."
# Skipped on HTTP by the reference suite against its own worker too: the 2 GiB
# payload is a byte-stream test, and this worker has no external storage.
HTTP_SKIPS = {
    "large_payload.echo_binary_over_int32_max",
    "http_response_cap.producer_external_strict_fail",
    "http_response_cap.externalized_strict_fail",
}
CAP_TESTS = {
    "http_response_cap.unary_strict_fail",
    "http_response_cap.exchange_strict_fail",
    "http_response_cap.producer_lockstep",
    "http_response_cap.producer_strict_fail",
}


@pytest.fixture(scope="module", autouse=True)
def _reference_052_peer() -> None:
    if REFERENCE_RUNNER.exists() and REFERENCE_WORKER.exists():
        return
    reason = (
        f"reference 0.52.2 peer not installed at {REFERENCE_VENV} "
        "(run scripts/reference-venv-052.sh)"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _runner(*target: str, timeout: str = "600", only: str | None = None) -> dict[str, object]:
    selection = ["--filter", only] if only else []
    return _run(
        [str(REFERENCE_RUNNER), *target, "--format", "json", "--timeout", timeout, *selection]
    )


def _check_byte_stream_report(report: dict[str, object]) -> None:
    """What a full run over pipe, shm, unix or tcp must show."""
    statuses = _statuses(report)
    assert not _failures(report), _failures(report)
    skipped = sorted(name for name, s in statuses.items() if s == "skip")
    assert all(name.startswith(HTTP_ONLY) for name in skipped), skipped
    assert statuses["large_payload.echo_binary_over_int32_max"] == "pass"
    assert statuses["protocol_version.matched_dispatch_succeeds"] == "pass"
    assert sum(s == "pass" for s in statuses.values()) >= 106


def _assert_passes(report: dict[str, object], name: str) -> None:
    statuses = _statuses(report)
    assert statuses.get(name) == "pass", _failures(report) or statuses


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_reference_052_runner_passes_over_the_pipe() -> None:
    _check_byte_stream_report(_runner("--cmd", OUR_WORKER))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_reference_052_runner_passes_over_shared_memory() -> None:
    _check_byte_stream_report(_runner("--cmd", OUR_WORKER, "--shm", str(64 * 1024 * 1024)))


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_reference_052_runner_passes_over_sockets(kind: str, tmp_path: Path) -> None:
    with _socket_worker(WORKER, kind, tmp_path) as address:
        report = _runner(f"--{kind}", address)
    _check_byte_stream_report(report)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_reference_052_runner_passes_over_http() -> None:
    with _http_worker(WORKER) as url:
        report = _runner("--url", url, "--prefix", "/vgi", timeout="60")
    statuses = _statuses(report)
    assert not _failures(report), _failures(report)
    skipped = {name for name, s in statuses.items() if s == "skip"}
    assert skipped <= HTTP_SKIPS | CAP_TESTS, skipped
    assert sum(s == "pass" for s in statuses.values()) >= 105


@pytest.mark.timeout(300)
def test_reference_052_cap_tests_against_our_capped_http_worker() -> None:
    with _http_worker([*WORKER, "--max-response-bytes", "65536"]) as url:
        report = _runner("--url", url, "--prefix", "/vgi", only="http_response_cap.*")
    statuses = _statuses(report)
    passed = {name for name, s in statuses.items() if s == "pass"}
    assert passed == CAP_TESTS, statuses


def _in_reference_python(script: str, *args: str, cwd: Path) -> str:
    """Run ``script`` with the 0.52.2 peer's interpreter (outside ROOT, so it imports its own vgi_rpc)."""
    proc = subprocess.run(
        [str(REFERENCE_PYTHON), "-P", "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


_LIST_PROTOCOLS = """
import json, sys
from vgi_rpc.introspect import list_protocols
from vgi_rpc.rpc._transport import SubprocessTransport
transport = SubprocessTransport(sys.argv[1:])
print(json.dumps([[p.name, p.version, p.hash] for p in list_protocols(transport)]))
transport.close()
"""


@pytest.mark.timeout(300)
def test_reflection_lists_what_the_reference_worker_lists(tmp_path: Path) -> None:
    """Same protocols, versions and protocol hashes as the 0.52.2 worker, read off both at run time."""
    ours = json.loads(_in_reference_python(_LIST_PROTOCOLS, *WORKER, "--describe", cwd=tmp_path))
    theirs = json.loads(
        _in_reference_python(_LIST_PROTOCOLS, str(REFERENCE_WORKER), "--describe", cwd=tmp_path)
    )
    assert ours == theirs
    assert [p[0] for p in ours][:2] == ["ConformanceService", "conformance.Secondary.v1"]


_DESCRIBE_SUITE = """
import sys
from vgi_rpc.conformance._runner import run_describe_conformance
from vgi_rpc.introspect import introspect
from vgi_rpc.rpc._transport import SubprocessTransport
transport = SubprocessTransport(sys.argv[1:])
suite = run_describe_conformance(introspect(transport))
transport.close()
for r in suite.results:
    print(("PASS " if r.passed else "FAIL ") + r.name + ("" if r.passed else ": " + str(r.error)))
"""


@pytest.mark.timeout(300)
def test_reference_describe_checks_pass_on_our_reflection(tmp_path: Path) -> None:
    out = _in_reference_python(_DESCRIBE_SUITE, *WORKER, "--describe", cwd=tmp_path)
    lines = out.splitlines()
    assert len(lines) >= 26, out
    assert all(line.startswith("PASS ") for line in lines), out


_SECONDARY = """
import contextlib, json, sys
from vgi_rpc.conformance import ConformanceService
from vgi_rpc.conformance.secondary import Secondary
from vgi_rpc.http import http_connect
from vgi_rpc.rpc import RpcConnection, RpcError
from vgi_rpc.rpc._transport import SubprocessTransport

def connect(protocol):
    if sys.argv[1] == "http":
        return http_connect(protocol, sys.argv[2], prefix="/vgi")
    return RpcConnection(protocol, SubprocessTransport(sys.argv[2:]))

out = {}
with connect(Secondary) as secondary:
    out["secondary_echo"] = secondary.echo_string(value="x")
    for code, kind, delay in (("NOT_FOUND", "missing", 7.0), ("NOT_A_CODE", "", 0.0)):
        try:
            secondary.fail(code=code, kind=kind, retry_delay_seconds=delay)
        except RpcError as exc:
            out[code] = [exc.error_code, exc.error_kind, exc.error_details]
with connect(ConformanceService) as primary:
    out["primary_echo"] = primary.echo_string(value="x")
print(json.dumps(out))
"""


def _secondary_probe(tmp_path: Path, transport: str) -> dict[str, list[object] | str]:
    if transport == "http":
        with _http_worker(WORKER) as url:
            out = _in_reference_python(_SECONDARY, "http", url, cwd=tmp_path)
    else:
        out = _in_reference_python(_SECONDARY, "pipe", *WORKER, cwd=tmp_path)
    result = json.loads(out)
    assert isinstance(result, dict)
    return result


@pytest.mark.timeout(300)
@pytest.mark.parametrize("transport", ["pipe", "http"])
def test_secondary_protocol_is_routed_by_protocol_and_method(
    tmp_path: Path, transport: str
) -> None:
    result = _secondary_probe(tmp_path, transport)
    # echo_string exists in both protocols: the pair, not the name, picks the method
    assert result["secondary_echo"] == "secondary:x"
    assert result["primary_echo"] == "x"
    assert result["NOT_FOUND"][:2] == ["NOT_FOUND", "missing"]
    assert result["NOT_A_CODE"][:2] == ["INVALID_ARGUMENT", "invalid_code"]


@pytest.mark.timeout(300)
def test_secondary_error_details_reach_the_reference_client(tmp_path: Path) -> None:
    from conformance.secondary import fail_details

    result = _secondary_probe(tmp_path, "pipe")
    assert result["NOT_FOUND"][2] == fail_details(7.0)


OUR_RUNNER = [
    sys.executable,
    os.path.join(ROOT, "conformance", "run.py"),
    "--protocol-version",
    "2",
]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_our_runner_passes_against_the_reference_052_worker() -> None:
    report = _run([*OUR_RUNNER, "--cmd", str(REFERENCE_WORKER), "--format", "json"])
    assert not _failures(report), _failures(report)
    assert sum(s == "pass" for s in _statuses(report).values()) >= 128
    assert report["_exit"] == 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_our_runner_passes_over_http_against_the_reference_052_worker() -> None:
    # The 0.52.2 worker serves at the root and takes only protocol-qualified paths:
    # our client finds that out from its first answer.
    with _http_worker([str(REFERENCE_WORKER)]) as url:
        report = _run([*OUR_RUNNER, "--url", url, "--format", "json"])
    statuses = _statuses(report)
    assert not _failures(report), _failures(report)
    assert sum(s == "pass" for s in statuses.values()) >= 127
    assert report["_exit"] == 0


class Renamed(Protocol):
    """Methods of the conformance service under a name no worker hosts."""

    def echo_string(self, value: str) -> str: ...
    def produce_n(self, count: int) -> Stream[StreamState]: ...
    def produce_with_header(self, count: int) -> Stream[StreamState, ConformanceHeader]: ...


@pytest.mark.timeout(120)
@pytest.mark.parametrize("first", ["unary", "producer", "header"])
def test_a_protocol_the_reference_does_not_host_is_refused_and_the_connection_stays_in_step(
    first: str,
) -> None:
    """0.52.2 insists on the routing key, so the first-generation retry is refused too:
    the caller sees the original refusal, and routing stays on for the next call."""
    with connect(Renamed, [str(REFERENCE_WORKER)]) as renamed:
        calls: dict[str, Callable[[], object]] = {
            "unary": lambda: renamed.echo_string(value="x"),
            "producer": lambda: list(renamed.produce_n(count=2)),
            "header": lambda: list(renamed.produce_with_header(count=2)),
        }
        with pytest.raises(RpcError) as refused:
            calls[first]()
        assert refused.value.error_kind == "protocol_not_supported"
        assert "Renamed" in str(refused.value)
        assert connection_of(renamed).routing == "Renamed"
        with pytest.raises(RpcError) as again:
            renamed.echo_string(value="y")
        assert again.value.error_kind == "protocol_not_supported"


class MissingV1(ConformanceService, Protocol):
    protocol_name: ClassVar[str] = "ConformanceService"

    def produce_missing(self, count: int) -> Stream[StreamState]: ...
    def produce_missing_with_header(self, count: int) -> Stream[StreamState, ConformanceHeader]: ...


class MissingV2(ConformanceServiceV2, Protocol):
    protocol_name: ClassVar[str] = "ConformanceService"

    def produce_missing(self, count: int) -> Stream[StreamState]: ...
    def produce_missing_with_header(self, count: int) -> Stream[StreamState, ConformanceHeader]: ...


@pytest.mark.timeout(120)
@pytest.mark.parametrize("header", [False, True], ids=["plain", "header"])
@pytest.mark.parametrize("worker", ["ours", "0.42.3", "0.52.2"])
def test_a_stream_method_the_worker_lacks_leaves_the_connection_in_step(
    worker: str, header: bool
) -> None:
    """The worker cannot know the call was a stream, so it takes the input the client
    already sent for a request and answers it; the client reads that answer too."""
    protocol: type[MissingV1] = MissingV2 if worker == "0.52.2" else MissingV1
    cmd = {
        "ours": WORKER,
        "0.42.3": [str(REFERENCE_VENV_042 / "bin" / "vgi-rpc-conformance")],
        "0.52.2": [str(REFERENCE_WORKER)],
    }[worker]
    with connect(protocol, cmd) as proxy:
        missing = proxy.produce_missing_with_header if header else proxy.produce_missing
        for _ in range(2):
            with pytest.raises(RpcError) as refused:
                list(missing(count=1))
            assert refused.value.error_kind == "method_not_implemented"
            assert proxy.echo_string(value="still in step") == "still in step"
            assert [b.batch.num_rows for b in proxy.produce_n(count=2)] == [1, 1]
