"""Command-line options for resource limits, shared by every vgi_rpc server command.

``vgi-rpc serve``, the conformance worker and the services' ``serve``
commands take the same flags::

    parser = argparse.ArgumentParser()
    add_limit_options(parser)
    args = parser.parse_args()
    server = RpcServer(Proto, Impl(), limits=limits_from_options(args))
"""

from __future__ import annotations

import argparse
import re

from vgi_rpc._limits import DEFAULT_LIMITS, ResourceLimits

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"256MiB"``, ``"2G"``, ``"65536"`` -> bytes.

    Raises:
        argparse.ArgumentTypeError: The text is not a size.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 65536, 256MiB, 2G)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """Add the limit flags (``--max-request-bytes`` ...) and ``--expose-tracebacks``."""
    d = DEFAULT_LIMITS
    group = parser.add_argument_group("resource limits (see vgi_rpc.ResourceLimits)")
    group.add_argument(
        "--max-request-bytes",
        type=parse_size,
        metavar="SIZE",
        help=f"HTTP: largest request body, compressed or decoded (default {d.max_request_bytes})",
    )
    group.add_argument(
        "--max-message-bytes",
        type=parse_size,
        metavar="SIZE",
        help=f"largest IPC message read from a client (default {d.max_message_bytes})",
    )
    group.add_argument(
        "--max-columns",
        type=int,
        metavar="N",
        help=f"most fields in one request schema (default {d.max_columns})",
    )
    group.add_argument(
        "--max-nesting-depth",
        type=int,
        metavar="N",
        help=f"deepest field nesting in one schema (default {d.max_nesting_depth})",
    )
    group.add_argument(
        "--schema-cache-bytes",
        type=parse_size,
        metavar="SIZE",
        help=f"memory for parsed request schemas (default {d.schema_cache_bytes})",
    )
    group.add_argument(
        "--expose-tracebacks",
        choices=("auto", "yes", "no"),
        default="auto",
        help="send implementation tracebacks to callers (auto: not to anonymous HTTP callers)",
    )


def limits_from_options(args: argparse.Namespace) -> ResourceLimits:
    """The ``ResourceLimits`` the options of ``add_limit_options`` ask for."""
    given = {
        name: getattr(args, name)
        for name in (
            "max_request_bytes",
            "max_message_bytes",
            "max_columns",
            "max_nesting_depth",
            "schema_cache_bytes",
        )
        if getattr(args, name, None) is not None
    }
    return ResourceLimits(**given)


def tracebacks_from_options(args: argparse.Namespace) -> bool | None:
    """``expose_tracebacks`` for ``RpcServer`` from ``--expose-tracebacks``."""
    return {"auto": None, "yes": True, "no": False}[getattr(args, "expose_tracebacks", "auto")]


__all__ = ["add_limit_options", "limits_from_options", "parse_size", "tracebacks_from_options"]
