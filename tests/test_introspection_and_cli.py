"""__describe__, introspect(), describe_rpc() and the vgi-rpc command, end to end."""

from __future__ import annotations

import io
import json
import sys

import pytest

from tests._services import Service, ServiceImpl
from tests.conftest import WORKER, worker_env
from vgi_rpc import RpcError, RpcServer, StderrMode, connect, describe_rpc, introspect, serve_pipe
from vgi_rpc.cli import main as cli_main
from vgi_rpc.rpc._describe import parse_describe_batch, protocol_hash

DESCRIBED_WORKER = " ".join([*WORKER, "service", "--describe"])


def test_describe_rpc_lists_signatures_kinds_and_docs() -> None:
    text = describe_rpc(Service)
    assert "add(a: double, b: double) -> double" in text
    assert "Add two numbers." in text
    assert "greet(name: string, punctuation: string = '!') -> string" in text
    assert "counted(n: int64) -> stream, header CountHeader" in text


def test_server_description_is_stable_and_hashed() -> None:
    server = RpcServer(Service, ServiceImpl(), enable_describe=True)
    batch, metadata = server.describe()
    description = parse_describe_batch(batch, metadata)
    assert description.protocol_name == "Service"
    assert description.describe_version == "4"
    assert description.protocol_hash == protocol_hash("Service", batch)
    assert list(description.methods) == sorted(description.methods)
    assert description.methods["counted"].header_schema is not None
    assert description.docs["add"] == "Add two numbers."
    # The Protocol says only Stream[StreamState]; the implementation's annotation tells the kind.
    assert describe_rpc(Service).count("running_sum() -> stream") == 1
    assert description.methods["running_sum"].is_exchange is True
    assert description.methods["countdown"].is_exchange is False
    assert description.methods["add"].is_exchange is None
    # another server of the same Protocol hashes identically (server_id is not hashed)
    _, other_md = RpcServer(Service, ServiceImpl(), enable_describe=True).describe()
    assert other_md[b"vgi_rpc.protocol_hash"] == metadata[b"vgi_rpc.protocol_hash"]
    assert other_md[b"vgi_rpc.server_id"] != metadata[b"vgi_rpc.server_id"]


def test_introspect_over_a_subprocess() -> None:
    with connect(
        Service, [*WORKER, "service", "--describe"], env=worker_env(), stderr=StderrMode.PIPE
    ) as svc:
        description = introspect(svc)
        assert "echo_order" in description.methods
        assert svc.add(a=1.0, b=1.0) == 2.0  # the connection keeps serving


def test_describe_is_refused_unless_enabled() -> None:
    with serve_pipe(Service, ServiceImpl()) as svc:
        with pytest.raises(RpcError) as info:
            introspect(svc)
        assert info.value.error_kind == "method_not_implemented"
        assert svc.add(a=2.0, b=2.0) == 4.0


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli_main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in worker_env().items():
        monkeypatch.setenv(key, value)


def test_cli_describe_table_and_json() -> None:
    code, text = _cli("describe", "--cmd", DESCRIBED_WORKER, "--format", "table")
    assert code == 0
    assert "add(a: double, b: double) -> double" in text
    assert "Add two numbers." in text
    code, text = _cli("describe", "--cmd", DESCRIBED_WORKER, "--format", "json")
    assert code == 0
    payload = json.loads(text)
    add = payload["methods"]["add"]
    assert add["request_json_schema"]["properties"] == {
        "a": {"type": "number"},
        "b": {"type": "number"},
    }
    assert add["response_json_schema"]["required"] == ["result"]
    assert add["doc"] == "Add two numbers."


def test_cli_calls_unary_and_producer_methods() -> None:
    table = ("-f", "table")
    assert _cli("call", "--cmd", DESCRIBED_WORKER, *table, "add", "a=1.5", "b=2") == (
        0,
        "result\n3.5\n",
    )
    code, text = _cli("call", "--cmd", DESCRIBED_WORKER, "countdown", "n=3", *table)
    assert code == 0
    assert text.split() == ["value", "3", "2", "1"]
    code, text = _cli(
        "call", "--cmd", DESCRIBED_WORKER, "echo_map", 'mapping={"a": [1, 2]}', "-f", "json"
    )
    assert code == 0
    assert json.loads(text) == {"result": {"a": [1, 2]}}


def test_cli_reports_bad_input_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("call", "--cmd", DESCRIBED_WORKER, "nope")[0] == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert _cli("call", "--cmd", DESCRIBED_WORKER, "add", "a=x", "b=1")[0] == 2
    assert "a='x': not a valid double" in capsys.readouterr().err
    assert _cli("call", "--cmd", DESCRIBED_WORKER, "add", "a=1")[0] == 2
    assert "add() needs b=..." in capsys.readouterr().err
    assert _cli("call", "--cmd", DESCRIBED_WORKER, "fail", "message=boom")[0] == 1
    error = json.loads(capsys.readouterr().err)["error"]
    assert (error["type"], error["message"]) == ("ValueError", "boom")
    plain = " ".join([*WORKER, "service"])
    assert _cli("describe", "--cmd", plain)[0] == 2
    assert "enable_describe=True" in capsys.readouterr().err


def test_console_script_entry_point_runs() -> None:
    import subprocess

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vgi_rpc.cli",
            "--format",
            "table",
            "call",
            "--cmd",
            DESCRIBED_WORKER,
            "greet",
            "name=cli",
        ],
        capture_output=True,
        text=True,
        env=worker_env(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "result\nhello cli!\n"
