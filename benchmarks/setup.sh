#!/usr/bin/env bash
# Create (or refresh) the two Python 3.13 virtualenvs the benchmarks compare:
#   benchmarks/.venv-ours  our package, installed editable from this repository
#   benchmarks/.venv-ref   the reference implementation, vgi-rpc 0.42.3 from PyPI
#   benchmarks/.venv-ref52 the second protocol generation, vgi-rpc 0.52.2 from PyPI
#   benchmarks/.venv-plot  matplotlib, for plot.py (kept out of .venv-ours: see below)
# Idempotent: a venv that already has the right package is left alone.
#
# Environment:
#   PYTHON313            interpreter to build the venvs from (default: python3.13 on PATH,
#                        then ~/.pyenv/versions/3.13*/bin/python3.13)
#   VGI_BENCH_REF_VENV   an existing venv that already holds vgi-rpc 0.42.3; when set,
#                        .venv-ref becomes a symlink to it instead of a fresh install
#   VGI_BENCH_REF52_VENV the same for .venv-ref52 and vgi-rpc 0.52.2
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OURS="$HERE/.venv-ours"
REF="$HERE/.venv-ref"

is_py313() {
    "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1
}

find_python() {
    local p
    for p in "${PYTHON313:-}" "$(command -v python3.13 || true)" "$HOME"/.pyenv/versions/3.13*/bin/python3.13; do
        if [[ -n "$p" ]] && is_py313 "$p"; then
            echo "$p"
            return
        fi
    done
    echo "setup.sh: no working python3.13 found (set PYTHON313=/path/to/python3.13)" >&2
    exit 1
}

# venv_ok VENV EXPECTED_MODULE_PATH_FRAGMENT EXPECTED_VERSION
venv_ok() {
    local venv="$1" fragment="$2" version="$3"
    [[ -x "$venv/bin/python" ]] || return 1
    "$venv/bin/python" -E -s -P - "$fragment" "$version" <<'PY' >/dev/null 2>&1
import sys
from importlib import metadata
import vgi_rpc
fragment, version = sys.argv[1], sys.argv[2]
assert sys.version_info[:2] == (3, 13), sys.version
assert fragment in (vgi_rpc.__file__ or ""), vgi_rpc.__file__
assert metadata.version("vgi_rpc") == version, metadata.version("vgi_rpc")
PY
}

PY313="$(find_python)"

# --- ours -----------------------------------------------------------------
OURS_VERSION="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -n1)"
# The HTTP benchmark needs the http extra (falcon, waitress, httpx, zstandard, cryptography).
has_http() { "$1/bin/python" -E -s -c 'import falcon, waitress, httpx, zstandard, cryptography' >/dev/null 2>&1; }
# A path entry (editable_mode=compat), not setuptools' import-hook finder: the finder is
# imported by every interpreter at start-up (~10 ms), which a wheel install never pays.
no_finder() { ! compgen -G "$1/lib/python3*/site-packages/__editable___vgi_rpc_*finder.py" >/dev/null; }
if venv_ok "$OURS" "$REPO/vgi_rpc" "$OURS_VERSION" && has_http "$OURS" && no_finder "$OURS"; then
    echo "setup.sh: $OURS is up to date"
else
    echo "setup.sh: creating $OURS (editable install of $REPO)"
    rm -rf "$OURS"
    "$PY313" -m venv "$OURS"
    "$OURS/bin/python" -m pip install --quiet --disable-pip-version-check \
        --config-settings editable_mode=compat -e "$REPO[http]"
    venv_ok "$OURS" "$REPO/vgi_rpc" "$OURS_VERSION" || {
        echo "setup.sh: $OURS does not import our vgi_rpc" >&2
        exit 1
    }
fi

# --- references --------------------------------------------------------
# setup_ref VENV VERSION LINK_TO
setup_ref() {
    local venv="$1" version="$2" link="$3"
    if venv_ok "$venv" "site-packages/vgi_rpc" "$version"; then
        echo "setup.sh: $venv is up to date"
    elif [[ -n "$link" ]] && venv_ok "$link" "site-packages/vgi_rpc" "$version"; then
        echo "setup.sh: linking $venv -> $link"
        rm -rf "$venv"
        ln -s "$link" "$venv"
    else
        echo "setup.sh: creating $venv (vgi-rpc $version from PyPI)"
        rm -rf "$venv"
        "$PY313" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "vgi-rpc[http,cli]==$version" backports.zstd
        venv_ok "$venv" "site-packages/vgi_rpc" "$version" || {
            echo "setup.sh: $venv does not import vgi-rpc $version" >&2
            exit 1
        }
    fi
}
setup_ref "$REF" 0.42.3 "${VGI_BENCH_REF_VENV:-}"
setup_ref "$HERE/.venv-ref52" 0.52.2 "${VGI_BENCH_REF52_VENV:-}"

# --- the plot ----------------------------------------------------------------
# Its own venv: matplotlib pulls in numpy, and pyarrow imports numpy at start-up when it
# can, which would add ~50 ms to every start-up figure of .venv-ours.
PLOT="$HERE/.venv-plot"
if ! "$PLOT/bin/python" -E -s -c 'import matplotlib' >/dev/null 2>&1; then
    echo "setup.sh: creating $PLOT (matplotlib, for plot.py)"
    rm -rf "$PLOT"
    "$PY313" -m venv "$PLOT"
    "$PLOT/bin/python" -m pip install --quiet --disable-pip-version-check matplotlib
fi
