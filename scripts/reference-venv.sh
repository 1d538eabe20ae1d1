#!/usr/bin/env bash
# Create a Python 3.13 virtualenv holding a reference implementation of vgi-rpc,
# used only as a test peer by the interop tests and the benchmarks:
#   scripts/reference-venv.sh                  -> .refvenv   with vgi-rpc 0.42.3 (first generation)
#   scripts/reference-venv.sh 0.52.2 .refvenv52 -> the second generation
# $VGI_RPC_REFERENCE_VENV overrides the folder of the default (0.42.3) peer.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${1:-0.42.3}"
VENV="${2:-${VGI_RPC_REFERENCE_VENV:-.refvenv}}"
if [ -x "$VENV/bin/vgi-rpc-test" ] && [ -x "$VENV/bin/vgi-rpc-conformance" ] \
   && "$VENV/bin/vgi-rpc-test" --version 2>&1 | grep -qF "$VERSION" \
   && "$VENV/bin/python" -c "import jsonschema, aiohttp, tenacity, boto3" 2>/dev/null; then
  exit 0
fi
find_python313() {
  if command -v python3.13 >/dev/null 2>&1 && python3.13 -c 'import sys' >/dev/null 2>&1; then
    command -v python3.13; return 0
  fi
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do
    if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}
PY313="$(find_python313)" || { echo "reference-venv: no Python 3.13 found (needed for the reference peer)" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PY313" -m venv "$VENV"
# external + s3: the peer resolves and writes external-storage pointers (aiohttp, boto3).
"$VENV/bin/pip" install -q --disable-pip-version-check "vgi-rpc[http,cli,external,s3]==$VERSION" backports.zstd jsonschema
echo "reference peer $VERSION ready in $VENV ($("$VENV/bin/vgi-rpc-test" --version 2>&1 | head -1))"
