"""Test worker: ``python -m tests._worker [SERVICE]`` serves a test service on stdin/stdout."""

from __future__ import annotations

import sys

from tests._services import SERVICES
from vgi_rpc import run_server


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    protocol, impl = SERVICES[args[0] if args else "service"]
    run_server(protocol, impl(), enable_describe="--describe" in sys.argv)


if __name__ == "__main__":
    main()
