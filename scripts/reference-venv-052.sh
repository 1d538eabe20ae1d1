#!/usr/bin/env bash
# Create .refvenv52: Python 3.13 with the reference implementation vgi-rpc 0.52.2
# (the second protocol generation), used only as a test peer by
# tests/interop/test_reference_052.py. The 0.42.3 peer lives in .refvenv
# (scripts/reference-venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VGI_RPC_REFERENCE_VENV_052:-.refvenv52}"
if [ -x "$VENV/bin/vgi-rpc-test" ] && [ -x "$VENV/bin/vgi-rpc-conformance" ] \
   && "$VENV/bin/vgi-rpc-test" --version 2>&1 | grep -q '0\.52\.2' \
   && "$VENV/bin/python" -c "import jsonschema" 2>/dev/null; then
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
PY313="$(find_python313)" || { echo "reference-venv-052: no Python 3.13 found (needed for the reference peer)" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PY313" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check 'vgi-rpc[http,cli]==0.52.2' backports.zstd jsonschema
echo "reference peer 0.52.2 ready in $VENV ($("$VENV/bin/vgi-rpc-test" --version 2>&1 | head -1))"
