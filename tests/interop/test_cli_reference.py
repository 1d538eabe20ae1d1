"""Our ``vgi-rpc`` prints what the reference command (0.42.3) prints, for the same command line."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT
from tests.interop.test_http_reference import _http_worker
from tests.interop.test_reference import REFERENCE_VENV, _reference_peer  # noqa: F401  # autouse
from vgi_rpc.cli import main

REFERENCE = [str(REFERENCE_VENV / "bin" / "vgi-rpc")]
WORKER = [sys.executable, os.path.join(ROOT, "conformance", "worker.py"), "--describe"]

CALLS: list[tuple[list[str], str | None]] = [
    (["call", "echo_string", "value=hi"], None),
    (["call", "add_floats", "a=1.5", "b=2"], None),
    (["call", "void_noop"], None),
    (["call", "echo_dict", 'mapping={"a": 1, "b": 2}'], None),
    (["call", "echo_list", 'values=["a", "b"]'], None),
    (["call", "with_defaults", "required=3", "optional_str=x", "optional_int=1"], None),
    (["call", "add_floats", "--json", '{"a": 1.5, "b": 2.5}'], None),
    (["call", "produce_n", "count=3"], None),
    (["call", "produce_with_header", "count=2"], None),
    (["call", "exchange_scale", "factor=2"], '{"value": 1.5}\n{"value": 4.0}\n'),
]


@pytest.fixture(scope="module")
def target() -> Iterator[list[str]]:
    with _http_worker(WORKER) as url:
        yield ["--url", url, "--prefix", "/vgi"]


def _ours(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
    """Our command, in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv, out=out, stdin=io.StringIO(stdin or ""))
    return code, out.getvalue(), err.getvalue()


def _run(command: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    # No stdin at all for producers: the reference takes any piped stdin as exchange input.
    return subprocess.run(
        command,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tempfile.gettempdir(),  # the reference must not import our vgi_rpc from the repo root
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )


@pytest.mark.parametrize(("argv", "stdin"), CALLS, ids=[" ".join(c[0][:2]) for c in CALLS])
def test_call_output_is_the_references(
    target: list[str], argv: list[str], stdin: str | None
) -> None:
    code, out, err = _ours([*target, "--format", "json", *argv], stdin)
    theirs = _run([*REFERENCE, *target, "--format", "json", *argv], stdin)
    assert theirs.returncode == 0, theirs.stderr[-2000:]
    assert code == 0, err[-2000:]
    assert [json.loads(line) for line in out.splitlines()] == [
        json.loads(line) for line in theirs.stdout.splitlines()
    ]


def test_errors_are_reported_alike(target: list[str]) -> None:
    argv = [*target, "--format", "json", "call", "raise_runtime_error", "message=boom"]
    (code, out, err), theirs = _ours(argv, None), _run([*REFERENCE, *argv], None)
    assert code == theirs.returncode == 1
    assert out == theirs.stdout == ""
    mine, reference = json.loads(err)["error"], json.loads(theirs.stderr)["error"]
    assert mine["type"] == reference["type"] == "RuntimeError"
    assert "boom" in mine["message"]
    assert "boom" in reference["message"]


def test_describe_json_has_every_key_of_the_references(target: list[str]) -> None:
    ours = json.loads(_ours([*target, "--format", "json", "describe"], None)[1])
    theirs = json.loads(_run([*REFERENCE, *target, "--format", "json", "describe"], None).stdout)
    theirs.pop("capabilities", None)  # the reference adds its HTTP capability headers here
    for key, value in theirs.items():
        if key == "methods":
            continue
        assert ours[key] == value if key != "server_id" else ours[key], key
    assert set(ours["methods"]) == set(theirs["methods"])
    for name, method in theirs["methods"].items():
        assert {k: ours["methods"][name][k] for k in method} == method, name
