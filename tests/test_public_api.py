"""The public surface: exports, layering, module size."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import vgi_rpc
from tests.conftest import ROOT

PACKAGE = os.path.join(ROOT, "vgi_rpc")


def test_all_names_exist_and_are_sorted() -> None:
    assert list(vgi_rpc.__all__) == sorted(vgi_rpc.__all__)
    for name in vgi_rpc.__all__:
        assert hasattr(vgi_rpc, name), name


def test_seed_api_names_are_exported() -> None:
    for name in [
        "serve_pipe",
        "connect",
        "run_server",
        "RpcServer",
        "RpcError",
        "Stream",
        "StreamState",
        "ProducerState",
        "ExchangeState",
        "OutputCollector",
        "AnnotatedBatch",
        "CallContext",
        "AuthContext",
        "Level",
        "Message",
        "ArrowType",
        "ArrowSerializableDataclass",
        "IpcValidation",
        "StderrMode",
        "make_pipe_pair",
        "rpc_methods",
    ]:
        assert name in vgi_rpc.__all__, name


def test_importing_the_core_does_not_import_http_or_otel() -> None:
    code = "import sys, vgi_rpc; print(sorted(m for m in ('falcon', 'httpx', 'waitress', 'opentelemetry') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def _modules() -> list[str]:
    return [
        os.path.join(d, f) for d, _, files in os.walk(PACKAGE) for f in files if f.endswith(".py")
    ]


def test_no_module_exceeds_800_lines() -> None:
    long = {p: n for p in _modules() if (n := len(Path(p).read_text().splitlines())) > 800}
    assert not long, long


def _imports(path: str) -> set[str]:
    tree = ast.parse(Path(path).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_layers_only_import_downwards() -> None:
    forbidden = {
        "wire": ("vgi_rpc.rpc", "vgi_rpc.transports", "falcon", "httpx"),
        "rpc": ("vgi_rpc.transports", "falcon", "httpx", "opentelemetry"),
        "transports": ("vgi_rpc._methods", "vgi_rpc._arrow_types", "vgi_rpc._dataclasses"),
    }
    for sub, banned in forbidden.items():
        for path in _modules():
            if f"{os.sep}{sub}{os.sep}" not in path:
                continue
            bad = [m for m in _imports(path) if m.startswith(banned)]
            assert not bad, (path, bad)
    for path in _modules():
        name = os.path.basename(path)
        if name in ("_ipc.py", "_ipc_reader.py", "_arrow_types.py", "_errors.py", "_logs.py"):
            assert not [
                m
                for m in _imports(path)
                if m.startswith(("vgi_rpc.rpc", "vgi_rpc.transports", "vgi_rpc.wire"))
            ], path


def _lazy_tables(init: Path) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(names imported under ``if TYPE_CHECKING:``, names in the ``lazy_module`` table)."""
    tree = ast.parse(init.read_text())
    static: set[tuple[str, str]] = set()
    lazy: set[tuple[str, str]] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for sub in node.body:
                assert isinstance(sub, ast.ImportFrom)
                assert sub.module
                static.update((sub.module, a.name) for a in sub.names)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            table = ast.literal_eval(node.value.args[1])
            lazy.update((module, name) for module, names in table.items() for name in names)
    return static, lazy


def test_type_checkers_see_every_lazily_imported_name() -> None:
    # A name missing from the TYPE_CHECKING imports would be typed ``object`` (the
    # module ``__getattr__``), silently: both lists must agree, and cover ``__all__``.
    import vgi_rpc.rpc
    import vgi_rpc.transports
    import vgi_rpc.wire

    for package in (vgi_rpc, vgi_rpc.rpc, vgi_rpc.transports, vgi_rpc.wire):
        assert package.__file__ is not None
        static, lazy = _lazy_tables(Path(package.__file__))
        assert static == lazy, package.__name__
        assert {name for _, name in lazy} >= set(package.__all__), package.__name__
        for name in package.__all__:
            if "http" not in name:  # the http extra is covered by the tests under tests/http
                assert getattr(package, name) is not None


def test_a_function_named_like_its_module_stays_the_function() -> None:
    # ``vgi_rpc.introspect`` is a module and the function it defines; importing the
    # module first must not leave the module where the function belongs.
    code = (
        "import vgi_rpc.introspect, vgi_rpc\n"
        "from vgi_rpc import introspect\n"
        "assert callable(introspect) and introspect is vgi_rpc.introspect, introspect\n"
        "assert introspect.__module__ == 'vgi_rpc.introspect'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
