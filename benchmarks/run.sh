#!/usr/bin/env bash
# Usage: bash benchmarks/run.sh [BENCHMARK ...] [-- ARGS FOR EACH BENCHMARK]
#   bash benchmarks/run.sh unary
#   bash benchmarks/run.sh streams
#   bash benchmarks/run.sh transfer   # 64 MiB and 1 GiB echoes over pipe, shm, unix, tcp, http
#   bash benchmarks/run.sh http_bench # unary latency and exchange round trips over HTTP
#   bash benchmarks/run.sh startup    # import time and spawn + call + close
#   bash benchmarks/run.sh             # all of them
# Each benchmark runs against both references, vgi-rpc 0.42.3 and 0.52.2 (set
# VGI_BENCH_REFS=0.42.3 for one); results go to benchmarks/results/NAME-VERSION.json,
# and plot.py then draws benchmarks/ratios.png and prints the combined table.
# Sets up benchmarks/.venv-ours, .venv-ref and .venv-ref52 first (see setup.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ALL=(unary streams transfer http_bench startup)
declare -A REF_VENV=([0.42.3]="$HERE/.venv-ref" [0.52.2]="$HERE/.venv-ref52")
IFS=',' read -r -a REFS <<<"${VGI_BENCH_REFS:-0.42.3,0.52.2}"

names=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
    names+=("$1")
    shift
done
[[ "${1:-}" == "--" ]] && shift
[[ ${#names[@]} -eq 0 ]] && names=("${ALL[@]}")

bash "$HERE/setup.sh"

# The drivers only need the standard library; run them with our 3.13 venv's interpreter.
PY=("$HERE/.venv-ours/bin/python" -E -s)
for name in "${names[@]}"; do
    script="$HERE/$name.py"
    if [[ ! -f "$script" ]]; then
        echo "run.sh: unknown benchmark '$name' (known: ${ALL[*]})" >&2
        exit 2
    fi
    if [[ "$name" == startup ]]; then  # compares with both references in one run itself
        "${PY[@]}" "$script" --ref-python "${REF_VENV[0.42.3]}/bin/python" \
            --ref52-python "${REF_VENV[0.52.2]}/bin/python" "$@"
        continue
    fi
    for version in "${REFS[@]}"; do
        echo "=== $name vs vgi-rpc $version ==="
        "${PY[@]}" "$script" --ref-python "${REF_VENV[$version]}/bin/python" \
            --json "$HERE/results/$name-$version.json" "$@"
    done
done
"$HERE/.venv-plot/bin/python" -E -s "$HERE/plot.py"
