#!/usr/bin/env bash
# Create .refvenv52: the reference vgi-rpc 0.52.2 (second protocol generation), a test peer
# for tests/interop/test_reference_052.py and the TypeScript-client test.
set -euo pipefail
exec "$(dirname "$0")/reference-venv.sh" 0.52.2 "${VGI_RPC_REFERENCE_VENV_052:-.refvenv52}"
