"""Subprocess server for the unary benchmark: ``python _unary_worker.py``.

Serves :class:`Bench` on stdin/stdout with whichever ``vgi_rpc`` the running
interpreter has installed.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _unary_service import Bench, BenchImpl

from vgi_rpc import run_server


def main() -> None:
    run_server(Bench, BenchImpl())


if __name__ == "__main__":
    main()
