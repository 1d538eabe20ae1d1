"""The ``vgi-rpc`` command as the reference takes it: options before or after the sub-command,
every transport, every format, and errors (issue 12 item 7)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pyarrow as pa
import pytest

from tests.conftest import ROOT
from vgi_rpc._logs import LOGGERS
from vgi_rpc.cli import main

WORKER = f"{sys.executable} {os.path.join(ROOT, 'conformance', 'worker.py')} --describe"


def _run(*argv: str, stdin: str | None = None, out: io.StringIO | None = None) -> tuple[int, str]:
    out = out or io.StringIO()
    code = main(list(argv), out=out, stdin=io.StringIO(stdin) if stdin is not None else None)
    return code, out.getvalue()


def _json_lines(text: str) -> list[object]:
    return [json.loads(line) for line in text.splitlines()]


@contextlib.contextmanager
def _worker(*options: str) -> Iterator[str]:
    """A conformance worker serving ``options`` (``--http 0`` / ``--unix PATH``); yields its first line."""
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "conformance", "worker.py"), "--describe", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with _worker("--http", "0") as first:
        assert first.startswith("PORT:"), first
        yield f"http://127.0.0.1:{first[5:]}"


@pytest.fixture(scope="module")
def unix() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="vgi-cli-") as directory:
        path = os.path.join(directory, "w.sock")
        with _worker("--unix", path) as first:
            assert first == f"UNIX:{path}", first
            yield path


# -- option order -------------------------------------------------------------


def test_options_before_and_after_the_sub_command_give_the_same_output(url: str) -> None:
    where = [
        ["--cmd", WORKER],
        ["--url", url, "--prefix", "/vgi"],
    ]
    for target in where:
        before = _run(*target, "--format", "json", "call", "add_floats", "a=1", "b=2")
        after = _run("call", "add_floats", "a=1", "b=2", *target, "--format", "json")
        mixed = _run("--format", "json", "call", *target, "add_floats", "a=1", "b=2")
        assert before == after == mixed == (0, '{"result": 3.0}\n'), target
    described = [_run(*t, "-f", "json", "describe")[1] for t in where]
    described += [_run("describe", *t, "-f", "json")[1] for t in where]
    names = {json.loads(text)["protocol_name"] for text in described}
    assert names == {"ConformanceService"}


def test_an_option_between_assignments_is_still_an_option(url: str) -> None:
    code, text = _run("--url", url, "call", "add_floats", "a=1", "-f", "table", "b=2")
    assert (code, text) == (0, "result\n3.0\n")


def test_a_sub_command_value_overrides_the_top_level_one(url: str) -> None:
    code, text = _run("-f", "table", "--url", url, "call", "add_floats", "a=1", "b=2", "-f", "json")
    assert (code, text) == (0, '{"result": 3.0}\n')


def test_the_unix_socket_transport(unix: str) -> None:
    assert _run("--unix", unix, "call", "echo_int", "value=7") == (0, '{"result": 7}\n')
    code, text = _run("call", "produce_n", "count=2", "--unix", unix)
    assert code == 0
    assert _json_lines(text) == [{"index": 0, "value": 0}, {"index": 1, "value": 10}]


def test_exactly_one_target_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("call", "x")[0] == 2
    assert "give one of --cmd, --unix or --url" in capsys.readouterr().err
    assert _run("--cmd", WORKER, "--url", "http://x", "describe")[0] == 2


# -- formats ------------------------------------------------------------------


def test_json_shapes_match_the_reference(url: str) -> None:
    target = ["--url", url]
    assert _run(*target, "call", "echo_string", "value=hi")[1] == '{"result": "hi"}\n'
    assert _run(*target, "call", "void_noop")[1] == "null\n"
    assert _run(*target, "call", "echo_dict", 'mapping={"a": 1}')[1] == '{"result": {"a": 1}}\n'
    code, text = _run(*target, "call", "produce_with_header", "count=2")
    assert code == 0
    assert _json_lines(text) == [
        {"__header__": {"total_expected": 2, "description": "producing 2 batches"}},
        {"index": 0, "value": 0},
        {"index": 1, "value": 10},
    ]


def test_auto_is_json_in_a_pipe_and_for_people_on_a_terminal(url: str) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert _run("--url", url, "call", "add_floats", "a=1", "b=2")[1] == '{"result": 3.0}\n'
    code, text = _run("--url", url, "call", "add_floats", "a=1", "b=2", out=Terminal())
    assert json.loads(text) == {"result": 3.0}
    assert text.startswith('{\n  "result"')  # indented for a person
    code, text = _run("--url", url, "describe", out=Terminal())
    assert code == 0
    assert text.startswith("ConformanceService (describe v4")  # a table on a terminal
    assert json.loads(_run("--url", url, "describe")[1])["protocol_name"] == "ConformanceService"


def test_table_format(url: str) -> None:
    code, text = _run("--url", url, "-f", "table", "call", "produce_with_header", "count=2")
    assert code == 0
    assert text == (
        "header:\n  total_expected: 2\n  description: producing 2 batches\n"
        "index  value\n0      0\n1      10\n"
    )
    assert _run("--url", url, "-f", "table", "call", "void_noop")[1] == "(no result)\n"


def test_arrow_format_to_a_file_and_to_binary_stdout(url: str, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "out.arrow")
    assert _run("--url", url, "-f", "arrow", "-o", path, "call", "produce_n", "count=3")[0] == 0
    with open(path, "rb") as handle:
        table = pa.ipc.open_stream(handle.read()).read_all()
    assert table.to_pydict() == {"index": [0, 1, 2], "value": [0, 10, 20]}

    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8")  # a stdout with a binary .buffer
    code = main(["--url", url, "-f", "arrow", "call", "add_floats", "a=1", "b=2"], out=out)
    assert code == 0
    result = pa.ipc.open_stream(raw.getvalue()).read_all()
    assert result.to_pydict() == {"result": [3.0]}
    # a header travels as its own IPC stream before the data
    assert (
        _run("--url", url, "-f", "arrow", "-o", path, "call", "produce_with_header", "count=1")[0]
        == 0
    )
    with open(path, "rb") as handle:
        source = pa.BufferReader(handle.read())
    header = pa.ipc.open_stream(source).read_all()
    data = pa.ipc.open_stream(source).read_all()
    assert header.column("total_expected").to_pylist() == [1]
    assert data.to_pydict() == {"index": [0], "value": [0]}


def test_arrow_without_a_binary_destination_is_a_usage_error(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("--url", url, "-f", "arrow", "call", "void_noop")[0] == 2
    assert "--format arrow needs --output FILE" in capsys.readouterr().err


def test_output_file_for_text_formats(url: str, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "out.json")
    code, text = _run("--url", url, "-o", path, "call", "produce_n", "count=2")
    assert (code, text) == (0, "")
    with open(path, encoding="utf-8") as handle:
        assert _json_lines(handle.read()) == [{"index": 0, "value": 0}, {"index": 1, "value": 10}]


# -- parameters and streams ---------------------------------------------------


def test_json_parameters(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run("--url", url, "call", "with_defaults", "--json", '{"required": 3}')
    assert (code, json.loads(text)) == (
        0,
        {"result": "required=3, optional_str=default, optional_int=42"},
    )
    code, text = _run("--url", url, "call", "echo_date", "-j", '{"value": "2024-02-29"}')
    assert (code, text) == (0, '{"result": "2024-02-29"}\n')
    assert _run("--url", url, "call", "add_floats", "a=1", "--json", '{"b": 2}')[0] == 2
    assert "not both" in capsys.readouterr().err
    assert _run("--url", url, "call", "add_floats", "--json", "[1]")[0] == 2
    assert "JSON object" in capsys.readouterr().err


def test_exchange_from_stdin_and_from_an_input_file(url: str, tmp_path: object) -> None:
    rows = '{"value": 1}\n{"value": 2.5}\n'
    for target in (["--cmd", WORKER], ["--url", url]):
        code, text = _run(*target, "call", "exchange_scale", "factor=2", stdin=rows)
        assert (code, _json_lines(text)) == (0, [{"value": 2.0}, {"value": 5.0}]), target
    path = os.path.join(str(tmp_path), "in.arrow")
    with (
        pa.OSFile(path, "wb") as sink,
        pa.ipc.new_stream(sink, pa.schema([("value", pa.float64())])) as w,
    ):
        w.write_batch(pa.record_batch({"value": [1.0, 2.0]}))
        w.write_batch(pa.record_batch({"value": [3.0]}))
    code, text = _run("--cmd", WORKER, "call", "exchange_scale", "factor=3", "--input", path)
    assert (code, _json_lines(text)) == (0, [{"value": 3.0}, {"value": 6.0}, {"value": 9.0}])


def test_verbose_shows_the_servers_log_messages(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("--url", url, "call", "echo_with_info_log", "value=x")[0] == 0
    assert "[INFO]" not in capsys.readouterr().err
    code, text = _run("--url", url, "-v", "call", "echo_with_info_log", "value=x")
    assert (code, text) == (0, '{"result": "x"}\n')
    assert "[INFO] info: x" in capsys.readouterr().err


def test_debug_turns_on_the_wire_loggers(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger("vgi_rpc")
    handlers, level = list(root.handlers), root.level
    try:
        assert _run("--url", url, "--debug", "call", "void_noop")[0] == 0
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)  # setLevel, not .level: it also clears the loggers' level caches
    err = capsys.readouterr().err
    assert "vgi_rpc.wire.http" in err
    assert "/vgi/void_noop -> 200" in err


# -- errors -------------------------------------------------------------------


def test_a_server_error_prints_its_type_and_message_and_exits_1(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for target in (["--cmd", WORKER], ["--url", url]):
        code, text = _run(*target, "call", "raise_value_error", "message=boom")
        assert (code, text) == (1, "")
        error = json.loads(capsys.readouterr().err)["error"]
        assert (error["type"], error["message"]) == ("ValueError", "boom")
        # a worker's traceback comes along; an anonymous HTTP caller gets none
        assert ("traceback" in error) is (target[0] == "--cmd")
        code, _ = _run(*target, "-f", "table", "call", "raise_runtime_error", "message=bad")
        assert code == 1
        assert capsys.readouterr().err == "vgi-rpc: RuntimeError: bad\n"


def test_an_unreachable_server_and_a_wrong_prefix_exit_1(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("--url", url, "--prefix", "/nope", "call", "void_noop")[0] == 1
    error = json.loads(capsys.readouterr().err)["error"]
    assert error["type"] == "HttpError"
    assert error["message"].startswith("HTTP 404")
    assert _run("--url", "http://127.0.0.1:9", "describe")[0] == 1
    assert "TransportError" in capsys.readouterr().err


def test_usage_errors_exit_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--url", url, "call", "nope")[0] == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert _run("--url", url, "call", "add_floats", "a=x", "b=1")[0] == 2
    assert "a='x': not a valid double" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        _run("--url", url, "call", "add_floats", "a=1", "--bogus")
    assert info.value.code == 2


# -- loggers ------------------------------------------------------------------


def test_loggers_lists_every_logger_name() -> None:
    code, text = _run("loggers")
    assert code == 0
    listed = json.loads(text)
    names = [entry["name"] for entry in listed]
    assert names == [name for name, _, _ in LOGGERS]
    for wire in ("request", "response", "batch", "stream", "transport", "http"):
        assert f"vgi_rpc.wire.{wire}" in names
    assert {"vgi_rpc", "vgi_rpc.access", "vgi_rpc.pool", "vgi_rpc.http"} <= set(names)
    assert all(entry["description"] and entry["scenario"] for entry in listed)
    code, text = _run("-f", "table", "loggers")
    assert text.splitlines()[0].split() == ["name", "description", "scenario"]
    assert "vgi_rpc.wire.http" in text


def test_the_console_script_takes_the_reference_order() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vgi_rpc.cli", "--cmd", WORKER, "--format", "json", "describe"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    add = document["methods"]["add_floats"]
    assert (add["method_type"], add["has_return"]) == ("unary", True)
    assert add["params_schema"] == "a: double not null\nb: double not null"
