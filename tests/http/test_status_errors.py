"""HTTP refusals reach the caller as RpcError subclasses that say what happened (issue 12 item 6)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

import falcon
import pytest

from tests._services import Service, ServiceImpl
from vgi_rpc import (
    AuthContext,
    AuthenticationError,
    HttpError,
    HttpNotFoundError,
    PeerExitedError,
    RequestTooLargeError,
    RpcError,
    RpcServer,
    StderrMode,
    connect,
    http_connect,
    make_wsgi_app,
)
from vgi_rpc.http import HttpUnauthorizedError, serve_in_thread


def _only_good(req: falcon.Request) -> AuthContext:
    if req.get_header("Authorization") != "Bearer good":
        raise ValueError("Missing Bearer token")
    return AuthContext(domain="test", authenticated=True, principal="alice")


@contextlib.contextmanager
def _serve(**options: object) -> Iterator[str]:
    app = make_wsgi_app(RpcServer(Service, ServiceImpl()), signing_key=b"k" * 32, **options)  # type: ignore[arg-type]  # test options
    with serve_in_thread(app) as url:
        yield url


def test_a_401_is_an_authentication_error_with_the_servers_message() -> None:
    with (
        _serve(authenticate=_only_good) as url,
        http_connect(Service, url) as svc,
        pytest.raises(RpcError) as info,
    ):
        svc.noop()
    error = info.value
    assert type(error) is AuthenticationError
    assert isinstance(error, HttpUnauthorizedError)  # the class it was before
    assert isinstance(error, HttpError)
    assert isinstance(error, PermissionError)
    assert (error.error_type, error.error_message) == (
        "AuthenticationError",
        "Missing Bearer token",
    )
    assert (error.status, error.reason) == (401, "unauthorized")
    assert str(error) == "AuthenticationError: Missing Bearer token"


def test_a_request_over_max_request_bytes_is_request_too_large() -> None:
    with _serve(max_request_bytes=2000) as url, http_connect(Service, url) as svc:
        with pytest.raises(RpcError) as info:
            svc.greet(name="x" * 5000)
        assert svc.add(a=1.0, b=2.0) == 3.0  # the connection keeps working
    error = info.value
    assert type(error) is RequestTooLargeError
    assert isinstance(error, HttpError)
    assert error.error_type == "RequestTooLarge"
    assert error.status == 413
    assert error.error_message.startswith("request body of ")
    assert "exceeds max_request_bytes (2000)" in error.error_message


class _Unserved(Protocol):
    def nothing_here(self) -> int: ...


def test_a_route_that_does_not_exist_is_an_http_not_found() -> None:
    with (
        _serve() as url,
        http_connect(Service, url, prefix="/elsewhere") as svc,
        pytest.raises(RpcError) as info,
    ):
        svc.noop()
    error = info.value
    assert type(error) is HttpNotFoundError
    assert isinstance(error, LookupError)
    assert error.status == 404
    # the string other vgi-rpc clients report for a URL nothing answers
    assert error.error_type == "HttpError"
    assert error.error_message.startswith("HTTP 404: POST ")
    assert "/elsewhere/" in error.error_message


def test_an_unknown_method_on_a_served_prefix_is_the_servers_own_error() -> None:
    with _serve() as url, http_connect(_Unserved, url) as svc, pytest.raises(RpcError) as info:
        svc.nothing_here()
    assert not isinstance(info.value, HttpError)
    assert info.value.error_type == "MethodNotImplementedError"
    assert info.value.error_kind == "method_not_implemented"


def test_a_worker_that_dies_mid_call_is_an_rpc_error() -> None:
    from tests.conftest import WORKER, worker_env

    with (
        connect(Service, [*WORKER, "service"], env=worker_env(), stderr=StderrMode.PIPE) as svc,
        pytest.raises(RpcError) as info,
    ):
        svc.crash(code=7)
    error = info.value
    assert isinstance(error, PeerExitedError)
    assert error.returncode == 7
    assert error.error_type == "TransportError"
    assert "exit status 7" in error.error_message


def test_old_import_paths_name_the_same_classes() -> None:
    import vgi_rpc._errors as errors
    import vgi_rpc._http_errors as http_errors
    from vgi_rpc._flatbuf import FlatbufferError
    from vgi_rpc._ipc_reader import MessageTooLargeError
    from vgi_rpc.http import AuthFailure, HttpError, HttpUnauthorizedError, TokenError
    from vgi_rpc.http._auth import AuthFailure as AuthFailureThere
    from vgi_rpc.http._client import HttpError as HttpErrorThere
    from vgi_rpc.http._client import HttpUnauthorizedError as UnauthorizedThere
    from vgi_rpc.http._dispatch import ResponseTooLargeError
    from vgi_rpc.http._refusal import RequestRefusedError
    from vgi_rpc.http._seal import TokenError as TokenErrorThere

    assert AuthFailure is AuthFailureThere is http_errors.AuthFailure
    assert HttpError is HttpErrorThere is http_errors.HttpError
    assert HttpUnauthorizedError is UnauthorizedThere is http_errors.AuthenticationError
    assert TokenError is TokenErrorThere is http_errors.TokenError
    assert ResponseTooLargeError is http_errors.ResponseTooLargeError
    assert RequestRefusedError is http_errors.RequestRefusedError
    assert MessageTooLargeError is errors.MessageTooLargeError
    assert FlatbufferError is errors.FlatbufferError
    for cls in (TokenError, AuthFailure, ResponseTooLargeError, RequestRefusedError):
        assert issubclass(cls, errors.VgiRpcError), cls
    assert issubclass(TokenError, ValueError)  # what it was before the move
    assert issubclass(FlatbufferError, ValueError)


def test_every_exception_class_of_the_core_lives_in_the_errors_module() -> None:
    """Services keep their own domain errors; the CLI's usage error is the command's own.

    The HTTP branch of the tree lives in ``_http_errors`` (off a pipe worker's start-up path).
    """
    import ast
    import pathlib

    from tests.conftest import ROOT

    package = pathlib.Path(ROOT) / "vgi_rpc"
    allowed = {
        ("cli/_values.py", "UsageError"),
        ("external/_fetch.py", "_TransientError"),  # a private retry signal, never raised out
    }
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if relative in ("_errors.py", "_http_errors.py") or relative.startswith("services/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base) for base in node.bases]
                if any(b.endswith(("Error", "Exception", "Failure")) for b in bases):
                    found.append((relative, node.name))
    assert set(found) <= allowed, found
