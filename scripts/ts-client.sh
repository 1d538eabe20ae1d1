#!/usr/bin/env bash
# Install the TypeScript-client harness (conformance/ts: @query-farm/vgi-rpc pinned by its
# package-lock.json, a test peer only) with `npm ci`, when node_modules is missing or older
# than the lock file. With arguments, then run the harness with them:
#   scripts/ts-client.sh --transport tcp --host 127.0.0.1 --port 4000
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=conformance/ts
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "ts-client: '$tool' not found; the TypeScript interop harness needs Node >= 20 and npm" >&2
    exit 1
  }
done
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "ts-client: Node $(node --version) is too old; the harness needs Node >= 20" >&2
  exit 1
fi
# npm ci writes node_modules/.package-lock.json last, so it stamps a complete install.
if [ ! -f "$DIR/node_modules/.package-lock.json" ] || [ "$DIR/package-lock.json" -nt "$DIR/node_modules/.package-lock.json" ]; then
  npm ci --prefix "$DIR" --no-audit --no-fund --loglevel=error >&2
  touch "$DIR/node_modules/.package-lock.json"
fi
if [ "$#" -gt 0 ]; then
  exec node "$DIR/drive.mjs" "$@"
fi
