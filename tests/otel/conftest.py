"""The OpenTelemetry tests need the SDK (``dev`` extra); without it they are not collected."""

from __future__ import annotations

import importlib.util


def _has_sdk() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.sdk") is not None
    except ModuleNotFoundError:
        return False


collect_ignore_glob = [] if _has_sdk() else ["test_*.py"]
