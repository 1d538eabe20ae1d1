"""A Protocol's method table is read without ``compile()`` when its annotations are plain names.

``_plain_hints`` must agree with ``typing.get_type_hints`` whenever it answers, and
leave everything else to it.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated, Any, Protocol, get_type_hints

import pyarrow as pa
import pytest

from tests.conftest import ROOT, worker_env
from vgi_rpc import ArrowType
from vgi_rpc._methods import _plain_hints


class Local:
    pass


class Shapes(Protocol):
    def names(self, a: float, b: bytes, c: Local, d: pa.Schema) -> None: ...
    def typing_any(self, a: Any) -> int: ...
    def generic(self, a: list[int], b: dict[str, float]) -> list[str]: ...
    def union(self, a: int | None) -> str | None: ...
    def annotated(self, a: Annotated[int, ArrowType(pa.int32())]) -> None: ...
    def unannotated(self, a, b: int):  # type: ignore[no-untyped-def]  # on purpose
        ...


def _outside(a: Missing) -> None:  # type: ignore[name-defined]  # noqa: F821  # unresolvable on purpose
    ...


def real_annotations(a: int, b: pa.Schema) -> bytes:  # as without the __future__ import
    return b""


real_annotations.__annotations__ = {"a": int, "b": pa.Schema, "return": bytes}


@pytest.mark.parametrize(
    "func",
    [
        Shapes.names,
        Shapes.typing_any,
        Shapes.generic,
        Shapes.union,
        Shapes.annotated,
        Shapes.unannotated,
        real_annotations,
    ],
    ids=lambda f: f.__name__,
)
def test_plain_hints_agree_with_get_type_hints(func: Any) -> None:
    expected = get_type_hints(func, include_extras=True)
    found = _plain_hints(func)
    if found is not None:
        assert found == expected
        assert all(found[k] is expected[k] for k in expected)
    if func is Shapes.names or func is real_annotations:
        assert found is not None  # the plain case is the point
    if func in (Shapes.generic, Shapes.union, Shapes.annotated):
        assert found is None


def test_an_unresolvable_name_is_left_to_get_type_hints() -> None:
    assert _plain_hints(_outside) is None
    with pytest.raises(NameError):
        get_type_hints(_outside)


SERVE_WITHOUT_COMPILE = """
import builtins
calls = []
real = builtins.compile
# str sources only: the import system compiles stale modules from bytes
builtins.compile = lambda *a, **k: (isinstance(a[0], str) and calls.append(a[0]), real(*a, **k))[1]
from tests._startup_worker import Calc, CalcImpl
from vgi_rpc import RpcServer
RpcServer(Calc, CalcImpl())
assert calls == [], calls
"""


def test_hosting_a_plain_protocol_compiles_nothing() -> None:
    # a process's first compile() builds the ast node types: ~3 ms of a worker's start-up
    subprocess.run(
        [sys.executable, "-c", SERVE_WITHOUT_COMPILE], check=True, cwd=ROOT, env=worker_env()
    )
