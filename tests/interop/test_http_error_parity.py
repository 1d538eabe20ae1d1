"""The reference client (0.42.3) and ours report the same error_type for HTTP refusals."""

from __future__ import annotations

import json
import subprocess
import tempfile
import textwrap
from collections.abc import Callable
from typing import Any

import falcon

from tests._services import Service, ServiceImpl
from tests.interop.test_reference import REFERENCE_VENV, _reference_peer  # noqa: F401  # autouse
from vgi_rpc import AuthContext, RpcError, RpcServer, http_connect, make_wsgi_app
from vgi_rpc.http import serve_in_thread

_REFERENCE_CLIENT = textwrap.dedent(
    """
    import json, sys
    from typing import Protocol
    from vgi_rpc.http import http_connect
    from vgi_rpc.rpc import RpcError

    class Service(Protocol):
        def noop(self) -> None: ...
        def greet(self, name: str, punctuation: str = "!") -> str: ...

    url = sys.argv[1]
    cases = {
        "401": ("/vgi", "noop", {}),
        "413": ("/vgi", "greet", {"name": "x" * 5000, "punctuation": "!"}),
        "404": ("/elsewhere", "noop", {}),
    }
    out = {}
    for case, (prefix, method, kwargs) in cases.items():
        try:
            with http_connect(Service, url, prefix=prefix) as svc:
                getattr(svc, method)(**kwargs)
            out[case] = None
        except RpcError as exc:
            out[case] = [exc.error_type, exc.error_message]
    print(json.dumps(out))
    """
)


def _auth(req: falcon.Request) -> AuthContext:
    if req.path.endswith("/noop") and req.get_header("Authorization") is None:
        raise ValueError("Missing Bearer token")
    return AuthContext.anonymous()


def _ours(url: str) -> dict[str, list[str]]:
    out = {}
    calls: list[tuple[str, str, Callable[[Any], object]]] = [
        ("401", "/vgi", lambda svc: svc.noop()),
        ("413", "/vgi", lambda svc: svc.greet(name="x" * 5000)),
        ("404", "/elsewhere", lambda svc: svc.noop()),
    ]
    for case, prefix, call in calls:
        try:
            with http_connect(Service, url, prefix=prefix) as svc:
                call(svc)
        except RpcError as exc:
            out[case] = [exc.error_type, exc.error_message]
    return out


def test_error_types_match_the_reference_client() -> None:
    app = make_wsgi_app(
        RpcServer(Service, ServiceImpl()),
        signing_key=b"k" * 32,
        authenticate=_auth,
        max_request_bytes=2000,
    )
    with serve_in_thread(app) as url:
        proc = subprocess.run(
            [str(REFERENCE_VENV / "bin" / "python"), "-c", _REFERENCE_CLIENT, url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tempfile.gettempdir(),  # not the repo root, whose vgi_rpc is ours
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        reference = json.loads(proc.stdout)
        ours = _ours(url)
    assert {case: value[0] for case, value in reference.items()} == {
        "401": "AuthenticationError",
        "413": "RequestTooLarge",
        "404": "HttpError",
    }
    assert {case: value[0] for case, value in ours.items()} == {
        case: value[0] for case, value in reference.items()
    }
    assert reference["401"][1] == ours["401"][1] == "Missing Bearer token"
    assert reference["404"][1].startswith("HTTP 404")
    assert ours["404"][1].startswith("HTTP 404")
    assert "max_request_bytes (2000)" in ours["413"][1]  # ours carries the server's words
