"""Serve the ConformanceService: ``python conformance/worker.py [--pipe]``.

Transports beyond the pipe arrive with their issues; the command line is
already shaped for them.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from conformance.impl import ConformanceImpl
from conformance.protocol import ConformanceService
from vgi_rpc import RpcServer, run_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="vgi_rpc conformance worker")
    parser.add_argument(
        "--pipe", action="store_true", default=True, help="serve on stdin/stdout (default)"
    )
    parser.add_argument("--describe", action="store_true", help="answer __describe__")
    args = parser.parse_args(argv)
    server = RpcServer(ConformanceService, ConformanceImpl(), enable_describe=args.describe)
    run_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
