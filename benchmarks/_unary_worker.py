"""Subprocess server for the unary benchmark: ``python _unary_worker.py [--http]``.

Serves :class:`Bench` on stdin/stdout (or over HTTP with the package's own
``serve_http``) with whichever ``vgi_rpc`` the running interpreter has installed.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _unary_service import Bench, BenchImpl

from vgi_rpc import RpcServer, run_server


def main() -> None:
    if sys.argv[1:] == ["--http"]:
        # Only the HTTP variant needs the harness helpers (and the client side they import):
        # the start-up benchmark times this file's pipe variant.
        from _child_common import serve_http_worker

        serve_http_worker(RpcServer(Bench, BenchImpl()))
        return
    run_server(Bench, BenchImpl())


if __name__ == "__main__":
    main()
