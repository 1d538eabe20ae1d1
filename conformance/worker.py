"""Serve the conformance protocols over a pipe (default), a unix or TCP socket, or HTTP.

``python conformance/worker.py [--pipe | --unix PATH | --tcp [HOST:]PORT | --http PORT]``

Second-generation requests (they name their protocol) reach ConformanceService
2.0.0 or ``conformance.Secondary.v1``; first-generation requests (no protocol
key) are served ConformanceService 1.0.0. ``--describe`` also answers the
first generation's ``__describe__`` and hosts ``vgi_rpc.Reflection.v1``.
``--external-dir PATH`` or ``--external-s3 URL`` externalizes large results
(wire spec section 12) and resolves clients' pointers.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import urllib.parse
from typing import TYPE_CHECKING

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from conformance.impl import ConformanceImpl
from conformance.protocol import ConformanceService, ConformanceServiceV2
from conformance.secondary import Secondary, SecondaryImpl
from vgi_rpc import RpcServer, run_server, serve_tcp, serve_unix
from vgi_rpc.access_log import configure_access_log
from vgi_rpc.options import (
    add_limit_options,
    limits_from_options,
    parse_size,
    tracebacks_from_options,
)

if TYPE_CHECKING:
    from vgi_rpc.external import ExternalLocationConfig, S3Storage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="vgi_rpc conformance worker")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--pipe", action="store_true", help="serve on stdin/stdout (default)")
    where.add_argument("--unix", metavar="PATH", help="serve on a unix socket (prints UNIX:<path>)")
    where.add_argument(
        "--http",
        metavar="PORT",
        type=int,
        help="serve HTTP on 127.0.0.1:PORT at --prefix (0 picks a port; prints PORT:<n>)",
    )
    where.add_argument(
        "--tcp",
        metavar="[HOST:]PORT",
        help="serve on TCP, loopback by default (prints TCP:<host>:<port>)",
    )
    parser.add_argument(
        "--threaded", action="store_true", help="unix/tcp: one thread per connection"
    )
    parser.add_argument(
        "--max-connections", type=int, metavar="N", help="with --threaded: connection cap"
    )
    parser.add_argument(
        "--describe",
        action="store_true",
        help="answer __describe__ and host vgi_rpc.Reflection.v1",
    )
    parser.add_argument("--prefix", default="/vgi", help="--http: URL prefix (default /vgi)")
    parser.add_argument(
        "--max-response-bytes",
        type=int,
        metavar="N",
        help="--http: response body cap (producers continue past it, others fail)",
    )
    parser.add_argument(
        "--signing-key",
        default=os.environ.get("VGI_RPC_SIGNING_KEY"),
        help="--http: stream token key (default: $VGI_RPC_SIGNING_KEY, else random)",
    )
    add_limit_options(parser)
    _add_external_options(parser)
    parser.add_argument("--access-log", metavar="PATH", help="append JSON-lines access records")
    parser.add_argument("--access-log-debug", action="store_true", help="also log request_data")
    args = parser.parse_args(argv)
    if args.access_log:
        configure_access_log(args.access_log)
        if args.access_log_debug:
            logging.getLogger("vgi_rpc.access").setLevel(logging.DEBUG)
    limits = limits_from_options(args)
    impl = ConformanceImpl()
    external = _external_config(args)
    server = RpcServer(
        {ConformanceServiceV2: impl, Secondary: SecondaryImpl()},
        default_protocol=(ConformanceService, impl),
        external_location=external,
        enable_describe=args.describe,
        limits=limits,
        expose_tracebacks=tracebacks_from_options(args),
    )
    options = {"threaded": args.threaded, "max_connections": args.max_connections}
    if args.http is not None:
        from vgi_rpc.http import make_wsgi_app
        from vgi_rpc.http._serve import serve_http

        app = make_wsgi_app(
            server,
            prefix=args.prefix,
            signing_key=args.signing_key.encode() if args.signing_key else None,
            max_stream_response_bytes=args.max_response_bytes,
            max_externalized_response_bytes=args.max_externalized_response_bytes,
            upload_url_provider=_storage_of(external) if args.upload_urls else None,
        )
        serve_http(
            app,
            port=args.http,
            on_bound=lambda h, p: print(f"PORT:{p}", flush=True),
            max_request_bytes=limits.max_request_bytes,
        )
    elif args.unix:
        serve_unix(
            server, args.unix, on_bound=lambda path: print(f"UNIX:{path}", flush=True), **options
        )
    elif args.tcp:
        host, _, port = args.tcp.rpartition(":")
        serve_tcp(
            server,
            host or "127.0.0.1",
            int(port),
            on_bound=lambda h, p: print(f"TCP:{h}:{p}", flush=True),
            **options,
        )
    else:
        run_server(server)
    return 0


def _add_external_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("external storage (wire spec section 12)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--external-dir", metavar="PATH", help="externalize to a local directory")
    where.add_argument(
        "--external-s3",
        metavar="URL",
        help="externalize to S3: http(s)://endpoint/bucket/prefix or s3://bucket/prefix "
        "(credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
    )
    group.add_argument("--externalize-threshold", type=parse_size, default=1 << 20, metavar="SIZE")
    group.add_argument("--external-compression", choices=("zstd", "gzip"))
    group.add_argument(
        "--max-externalized-response-bytes",
        type=parse_size,
        metavar="SIZE",
        help="--http: cap on what one response may upload",
    )
    group.add_argument(
        "--upload-urls", action="store_true", help="--http with --external-s3: vend upload URLs"
    )


def _external_config(args: argparse.Namespace) -> ExternalLocationConfig | None:
    if not (args.external_dir or args.external_s3):
        return None
    from vgi_rpc.external import Compression, ExternalLocationConfig, S3Storage

    storage: object = args.external_dir
    if args.external_s3:
        where = urllib.parse.urlsplit(args.external_s3)
        bucket, _, prefix = where.path.lstrip("/").partition("/")
        if where.scheme == "s3":
            bucket, prefix = where.netloc, where.path.lstrip("/")
        endpoint = None if where.scheme == "s3" else f"{where.scheme}://{where.netloc}"
        storage = S3Storage(bucket, prefix, endpoint_url=endpoint)
    compression = Compression(args.external_compression) if args.external_compression else None
    return ExternalLocationConfig(
        storage=storage,  # type: ignore[arg-type]  # a path or an S3Storage
        externalize_threshold_bytes=args.externalize_threshold,
        compression=compression,
        url_validator=_http_or_https,  # a test worker: local stores speak plain http
    )


def _http_or_https(url: str) -> None:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("only http(s) URLs (or this worker's own storage)")


def _storage_of(config: ExternalLocationConfig | None) -> S3Storage:
    from vgi_rpc.external import S3Storage

    storage = config.storage if config is not None else None
    if not isinstance(storage, S3Storage):
        raise SystemExit("--upload-urls needs --external-s3")
    return storage


if __name__ == "__main__":
    sys.exit(main())
