#!/usr/bin/env bash
# Usage: bash benchmarks/run.sh [BENCHMARK ...] [-- ARGS FOR EACH BENCHMARK]
#   bash benchmarks/run.sh unary
#   bash benchmarks/run.sh streams
#   bash benchmarks/run.sh transfer   # 64 MiB and 1 GiB echoes over pipe, shm, unix, tcp
#   bash benchmarks/run.sh http_bench # unary latency and exchange round trips over HTTP
#   bash benchmarks/run.sh             # every benchmark (unary, streams, transfer, http_bench)
# Sets up benchmarks/.venv-ours and benchmarks/.venv-ref first (see setup.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ALL=(unary streams transfer http_bench)

names=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
    names+=("$1")
    shift
done
[[ "${1:-}" == "--" ]] && shift
[[ ${#names[@]} -eq 0 ]] && names=("${ALL[@]}")

bash "$HERE/setup.sh"

# The driver only needs the standard library; run it with our 3.13 venv's interpreter.
for name in "${names[@]}"; do
    script="$HERE/$name.py"
    if [[ ! -f "$script" ]]; then
        echo "run.sh: unknown benchmark '$name' (known: ${ALL[*]})" >&2
        exit 2
    fi
    "$HERE/.venv-ours/bin/python" -E -s "$script" "$@"
done
