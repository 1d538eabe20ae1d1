"""Fuzz the vgi_rpc server with mutated real requests over the pipe and HTTP paths.

    python scripts/fuzz.py --target pipe|http|all --inputs N --seed S [--save-dir DIR]
                           [--http-inputs N] [--bombs] [--timeout SECS] [--max-rss-mib M]

Prints a summary per target (inputs, inputs/s, crashes, hangs, exceptions, 5xx,
dropped connections, oversized replies, memory, peak RSS) and every finding with
its seed and input index (``--replay-index`` regenerates one input). Exits 1 on
any finding. Inputs are a function of (seed, index) only, so a run of 1,000,000
reproduces input by input: ``--inputs 1000000 --save-dir findings/``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fuzz_common import Finding, Summary

MiB = 1 << 20


def run_bombs() -> Summary:
    """The zstd bomb and the 512 MiB body (sized and chunked) against a default worker.

    A finding when the worker's peak RSS reaches twice the cap, it dies, or it answers
    anything but 413/400 (``None``: it closed the connection, which is allowed).
    """
    from fuzz_http import bomb

    summary = Summary("bombs")
    for kind in ("zstd", "gzip", "plain", "chunked"):
        result = bomb(kind)
        peak, cap = int(str(result["peak"])), int(str(result["cap"]))
        summary.inputs += 1
        summary.peak_rss = max(summary.peak_rss, peak)
        print(
            f"bomb {kind}: status {result['status']}, peak RSS {peak / MiB:.0f} MiB "
            f"(baseline {int(str(result['baseline'])) / MiB:.0f} MiB, resident after "
            f"{int(str(result['resident'])) / MiB:.0f} MiB), cap {cap / MiB:.0f} MiB"
            f"{'' if result['advertised'] else ' (not advertised: assumed default)'}, "
            f"alive {result['alive']}; {str(result['detail'])[:160]}"
        )
        if peak >= 2 * cap or not result["alive"] or result["status"] not in (400, 413, None):
            summary.findings.append(Finding("bomb", "http", 0, -1, kind, "", repr(result)))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the chosen targets; exit status 1 on any finding."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("pipe", "http", "all"), default="all")
    parser.add_argument("--inputs", type=int, default=20_000, help="inputs per target")
    parser.add_argument("--http-inputs", type=int, help="HTTP inputs with --target all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save-dir", help="write every finding's input here")
    parser.add_argument("--timeout", type=float, help="seconds per input (pipe 5, http 10)")
    parser.add_argument("--max-rss-mib", type=int, default=1024, help="target RSS bound")
    parser.add_argument("--bombs", action="store_true", help="also run the two HTTP bombs")
    parser.add_argument("--quiet", action="store_true", help="do not print findings as found")
    parser.add_argument(
        "--replay-index", type=int, help="print what input INDEX of --seed is, and exit"
    )
    args = parser.parse_args(argv)
    # The fuzzer's own memory stays bounded whatever it generates.
    resource.setrlimit(resource.RLIMIT_AS, (16 << 30, 16 << 30))
    if args.replay_index is not None:
        return _replay(args)
    summaries: list[Summary] = []
    if args.target in ("pipe", "all"):
        from fuzz_pipe import fuzz_pipe

        summaries.append(
            fuzz_pipe(
                args.inputs,
                args.seed,
                save_dir=args.save_dir,
                timeout=args.timeout or 5.0,
                max_rss=args.max_rss_mib * MiB,
                log=not args.quiet,
            )
        )
        print(summaries[-1].report(), flush=True)
    if args.target in ("http", "all"):
        from fuzz_http import fuzz_http

        n = (
            args.http_inputs
            if args.http_inputs is not None and args.target == "all"
            else args.inputs
        )
        summaries.append(
            fuzz_http(
                n,
                args.seed,
                save_dir=args.save_dir,
                timeout=args.timeout or 10.0,
                max_rss=args.max_rss_mib * MiB,
                log=not args.quiet,
            )
        )
        print(summaries[-1].report(), flush=True)
    if args.bombs:
        summaries.append(run_bombs())
        print(summaries[-1].report(), flush=True)
    total = sum(len(s.findings) for s in summaries)
    print(f"findings: {total}")
    return 1 if total else 0


def _replay(args: argparse.Namespace) -> int:
    """Regenerate one pipe input (to inspect or save it) without running it."""
    from fuzz_pipe import replay_input

    item, data, shm, how = replay_input(args.seed, args.replay_index)
    print(
        f"pipe input {args.replay_index} of seed {args.seed}: item {item.name!r} ({item.kind}), {how}"
    )
    print(f"{len(data)} bytes; shm {len(shm)} bytes; first bytes {data[:128].hex()}")
    if args.save_dir:
        os.makedirs(args.save_dir, exist_ok=True)
        stem = os.path.join(args.save_dir, f"replay-seed{args.seed}-{args.replay_index}")
        with open(stem + ".bin", "wb") as f:
            f.write(data)
        if shm:
            with open(stem + ".shm", "wb") as f:
                f.write(shm)
        print(f"saved {stem}.bin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
