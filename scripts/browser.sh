#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver for the service page's browser test
# (tests/http/test_page_browser.py), when either is missing. Needs root and apt-get;
# without them it says so and, under CI, fails (the browser test must not be skipped there).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium chromium-driver >/dev/null
  exit 0
fi
echo "browser: chromium and chromium-driver are missing and cannot be installed here (needs root and apt-get); the service page's browser test will be skipped" >&2
if [ -n "${CI:-}" ]; then
  exit 1
fi
