"""HTTP server for the HTTP benchmark: ``python _http_worker.py`` prints ``PORT:<n>``.

Serves :class:`HttpBench` at ``/vgi`` with whichever ``vgi_rpc`` the running
interpreter has, on waitress (4 threads) bound to 127.0.0.1. Both sides use
the same waitress call, so only the vgi-rpc layers differ.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _http_service import HttpBench, HttpBenchImpl
from waitress.server import create_server

from vgi_rpc import RpcServer
from vgi_rpc.http import make_wsgi_app

KEY = b"benchmark key shared by nobody else"


def main() -> None:
    # ``token_key`` is the reference's name; ours accepts it as an alias of signing_key.
    app = make_wsgi_app(RpcServer(HttpBench, HttpBenchImpl()), prefix="/vgi", token_key=KEY)
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    print(f"PORT:{server.effective_port}", flush=True)
    server.run()


if __name__ == "__main__":
    main()
