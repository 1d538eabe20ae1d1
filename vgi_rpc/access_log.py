"""JSON-lines output for the ``vgi_rpc.access`` records (one object per call)."""

from __future__ import annotations

import json
import logging
from typing import TextIO

from vgi_rpc._logs import ACCESS_LOGGER


class JsonAccessFormatter(logging.Formatter):
    """Formats an access record as one JSON object: level, logger, message and the call's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` (records without call fields are rendered with the basics only)."""
        fields = getattr(record, "vgi_rpc", {})
        payload = {
            "timestamp": fields.get("timestamp"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **{k: v for k, v in fields.items() if k != "timestamp"},
        }
        return json.dumps(payload, default=str)


def configure_access_log(target: str | TextIO) -> logging.Handler:
    """Write access records as JSON lines to a file path or an open text stream; returns the handler."""
    handler: logging.Handler = (
        logging.FileHandler(target) if isinstance(target, str) else logging.StreamHandler(target)
    )
    handler.setFormatter(JsonAccessFormatter())
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


__all__ = ["JsonAccessFormatter", "configure_access_log"]
