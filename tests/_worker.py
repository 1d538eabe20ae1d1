"""Test worker: ``python -m tests._worker [SERVICE]`` serves a test service on stdin/stdout."""

from __future__ import annotations

import sys

from tests._services import SERVICES
from vgi_rpc import run_server


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "service"
    protocol, impl = SERVICES[name]
    run_server(protocol, impl())


if __name__ == "__main__":
    main()
