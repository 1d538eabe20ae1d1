"""Every signature of seed 002's reference section, checked with ``inspect.signature``.

For each documented parameter: it exists, has the documented kind and
default, and the documented parameters come in the documented order. Our
functions may take more parameters than the seed shows, as long as every
call the seed allows still binds the same way: an extra is optional, and a
positional one comes after the documented positional ones.

The ``external_location`` parameters arrive with external storage (another
branch); until it merges, their cases fail here, on purpose.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

import vgi_rpc
from vgi_rpc import (
    AnnotatedBatch,
    IpcValidation,
    OutputCollector,
    RpcServer,
    StderrMode,
    Stream,
    WorkerPool,
    connect,
    http_connect,
    make_wsgi_app,
    serve_pipe,
)

P = inspect.Parameter
POS = P.POSITIONAL_OR_KEYWORD
KW = P.KEYWORD_ONLY
VAR_KW = P.VAR_KEYWORD
REQUIRED = P.empty

# (name, kind, default) per documented parameter, in the seed's order.
Doc = list[tuple[str, Any, object]]
SEED: dict[str, tuple[Callable[..., object], Doc]] = {
    "RpcServer": (
        RpcServer,
        [
            ("protocol", POS, REQUIRED),
            ("implementation", POS, REQUIRED),
            ("external_location", KW, None),
            ("server_id", KW, None),
            ("enable_describe", KW, False),
            ("ipc_validation", KW, IpcValidation.FULL),
        ],
    ),
    "connect": (
        connect,
        [
            ("protocol", POS, REQUIRED),
            ("cmd", POS, REQUIRED),
            ("on_log", KW, None),
            ("external_location", KW, None),
            ("stderr", KW, StderrMode.INHERIT),
            ("ipc_validation", KW, IpcValidation.FULL),
        ],
    ),
    "serve_pipe": (
        serve_pipe,
        [
            ("protocol", POS, REQUIRED),
            ("implementation", POS, REQUIRED),
            ("on_log", KW, None),
            ("external_location", KW, None),
            ("ipc_validation", KW, None),
        ],
    ),
    "http_connect": (
        http_connect,
        [
            ("protocol", POS, REQUIRED),
            ("base_url", POS, REQUIRED),
            ("prefix", KW, "/vgi"),
            ("on_log", KW, None),
            ("external_location", KW, None),
            ("ipc_validation", KW, IpcValidation.FULL),
        ],
    ),
    "make_wsgi_app": (
        make_wsgi_app,
        [
            ("server", POS, REQUIRED),
            ("prefix", KW, "/vgi"),
            ("signing_key", KW, None),
            ("max_stream_response_bytes", KW, None),
            ("max_request_bytes", KW, None),
            ("authenticate", KW, None),
            ("cors_origins", KW, None),
            ("upload_url_provider", KW, None),
            ("max_upload_bytes", KW, None),
        ],
    ),
    "Stream": (
        Stream,
        [
            ("output_schema", POS, REQUIRED),
            ("state", POS, REQUIRED),
            ("input_schema", POS, pa.schema([])),  # _EMPTY_SCHEMA
        ],
    ),
    "AnnotatedBatch": (
        AnnotatedBatch,
        [("batch", POS, REQUIRED), ("custom_metadata", POS, None)],
    ),
    "AnnotatedBatch.from_pydict": (AnnotatedBatch.from_pydict, [("data", POS, REQUIRED)]),
    "WorkerPool": (
        WorkerPool,
        [
            ("max_idle", POS, 4),
            ("idle_timeout", POS, 60.0),
            ("stderr", POS, StderrMode.INHERIT),
            ("stderr_logger", POS, None),
            ("shm_size", POS, None),
        ],
    ),
    "pool.connect": (
        WorkerPool.connect,
        [
            ("protocol", POS, REQUIRED),
            ("cmd", POS, REQUIRED),
            ("on_log", KW, None),
            ("external_location", KW, None),
            ("ipc_validation", KW, IpcValidation.FULL),
        ],
    ),
    "out.emit": (OutputCollector.emit, [("batch", POS, REQUIRED)]),
    "out.emit_pydict": (OutputCollector.emit_pydict, [("data", POS, REQUIRED)]),
    "out.emit_arrays": (OutputCollector.emit_arrays, [("arrays", POS, REQUIRED)]),
    "out.client_log": (
        OutputCollector.client_log,
        [("level", POS, REQUIRED), ("message", POS, REQUIRED), ("extra", VAR_KW, REQUIRED)],
    ),
    "out.finish": (OutputCollector.finish, []),
}

PARAMETERS = [(name, documented) for name, (_, docs) in SEED.items() for documented in docs]


def _parameters(name: str) -> dict[str, inspect.Parameter]:
    """The parameters as a caller sees them (an unbound method's ``self`` left out)."""
    found = dict(inspect.signature(SEED[name][0]).parameters)
    found.pop("self", None)
    return found


@pytest.mark.parametrize(
    ("name", "documented"), PARAMETERS, ids=[f"{n}.{d[0]}" for n, d in PARAMETERS]
)
def test_each_documented_parameter(name: str, documented: tuple[str, Any, object]) -> None:
    parameter, kind, default = documented
    found = _parameters(name).get(parameter)
    assert found is not None, f"{name}() has no parameter {parameter!r}"
    assert found.kind == kind, (
        f"{name}({parameter}): {found.kind.description}, not {kind.description}"
    )
    if name == "RpcServer" and parameter == "implementation":
        # Ours defaults to None so that RpcServer({A: a, B: b}) can host several
        # protocols; every call the seed shows passes it and binds the same.
        assert found.default is None
        return
    assert found.default == default, f"{name}({parameter}): default {found.default!r}"


@pytest.mark.parametrize("name", list(SEED))
def test_documented_parameters_keep_their_order(name: str) -> None:
    actual = [p for p in _parameters(name) if p in {d[0] for d in SEED[name][1]}]
    documented = [d[0] for d in SEED[name][1] if d[0] in actual]
    assert actual == documented


@pytest.mark.parametrize("name", list(SEED))
def test_extra_parameters_never_change_a_documented_call(name: str) -> None:
    documented = {d[0] for d in SEED[name][1]}
    params = list(_parameters(name).values())
    last_positional = max(
        (i for i, p in enumerate(params) if p.name in documented and p.kind is POS), default=-1
    )
    for i, p in enumerate(params):
        if p.name in documented or p.kind in (P.VAR_POSITIONAL, P.VAR_KEYWORD):
            continue
        assert p.default is not P.empty, f"{name}(): extra parameter {p.name!r} is required"
        if p.kind is POS:
            assert i > last_positional, f"{name}(): extra {p.name!r} shifts a documented position"
        else:
            assert p.kind is KW, f"{name}(): extra {p.name!r} is {p.kind.description}"


def test_the_remaining_reference_names() -> None:
    """``pool.metrics``, ``idle_count``, ``active_count``, ``close`` as the seed lists them."""
    with WorkerPool() as pool:
        metrics = pool.metrics
        assert isinstance(metrics, vgi_rpc.PoolMetrics)
        fields = (
            "borrows",
            "spawns",
            "reuses",
            "returns",
            "discards",
            "evictions",
            "idle",
            "active",
        )
        assert all(getattr(metrics, f) == 0 for f in fields)
        assert (pool.idle_count, pool.active_count) == (0, 0)
        assert list(inspect.signature(pool.close).parameters) == []
    for prop in ("metrics", "idle_count", "active_count"):
        assert isinstance(inspect.getattr_static(WorkerPool, prop), property), prop
    assert isinstance(inspect.getattr_static(AnnotatedBatch, "from_pydict"), classmethod)
