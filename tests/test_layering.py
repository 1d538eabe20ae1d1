"""The package's shape, checked from its source: private stays private, and no import cycles.

A module may import the private modules (``_name``) of its own package and of
the packages above it, never those of a sibling package (``vgi_rpc.http``
uses ``vgi_rpc.rpc``'s public names only). The services use only public
names. Imports inside ``if TYPE_CHECKING:`` count: a cycle hidden there is
still a cycle.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "vgi_rpc"


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _package(module: str, path: pathlib.Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(path: pathlib.Path) -> list[str]:
    """Every vgi_rpc module a file imports (``from a import b`` names ``a.b`` when it is one)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [
                f"{node.module}.{alias.name}"
                for alias in node.names
                if f"{node.module}.{alias.name}" in MODULES
            ]
    return [name for name in names if name.split(".")[0] == "vgi_rpc"]


def _private_owner(name: str) -> str | None:
    """The package whose private module ``name`` reaches into, if it does."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def _violations() -> list[str]:
    found = []
    for module, path in MODULES.items():
        package = _package(module, path)
        for name in _imports(path):
            owner = _private_owner(name)
            if owner is None:
                continue
            allowed = package == owner or package.startswith(owner + ".")
            if package.startswith("vgi_rpc.services"):  # plain users of the public API
                allowed = allowed and owner.startswith("vgi_rpc.services")
            if not allowed:
                found.append(f"{module} imports {name}")
    return sorted(set(found))


def test_no_module_imports_another_packages_private_module() -> None:
    assert _violations() == []


def test_the_checker_sees_a_violation() -> None:
    # A sibling package's private module is refused; the package's own and its parents' are not.
    assert _private_owner("vgi_rpc.rpc._server") == "vgi_rpc.rpc"
    assert _private_owner("vgi_rpc.rpc") is None
    assert _private_owner("vgi_rpc._ipc") == "vgi_rpc"


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges = set()
        for name in _imports(path):
            while name not in MODULES and "." in name:
                name = name.rpartition(".")[0]
            if name in MODULES and name != module and not module.startswith(name + "."):
                edges.add(name)
        graph[module] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("package", ["vgi_rpc.rpc", "vgi_rpc.http", "vgi_rpc.transports"])
def test_no_import_cycles_between_the_modules_of_a_package(package: str) -> None:
    graph = {
        module: {edge for edge in edges if edge.startswith(package + "._")}
        for module, edges in _graph().items()
        if module.startswith(package + "._")
    }
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_one() -> None:
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_the_core_asks_channels_what_they_can_do_instead_of_probing() -> None:
    for path in sorted((ROOT / "rpc").glob("*.py")):
        assert "getattr(channel" not in path.read_text(), path.name


def test_a_unix_socket_declares_its_peers_user() -> None:
    import os
    import socket

    from vgi_rpc.rpc import capabilities_of
    from vgi_rpc.transports import SocketChannel

    left, right = socket.socketpair(socket.AF_UNIX)
    channel = SocketChannel(left)
    try:
        assert capabilities_of(channel).peer_uid == os.geteuid()
        assert capabilities_of(channel).shared_segment is None
        assert capabilities_of(object()).peer_uid is None  # declares nothing: moves bytes only
    finally:
        channel.close()
        right.close()
