"""Failures of the HTTP layer that map to a status code (wire spec section 13).

The class lives in the one exception tree (``vgi_rpc._errors``); this module keeps its old path.
"""

from __future__ import annotations

from vgi_rpc._http_errors import RequestRefusedError

__all__ = ["RequestRefusedError"]
