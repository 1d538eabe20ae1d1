"""A logging handler that keeps what it is given (tests read the records back)."""

from __future__ import annotations

import logging


class Keep(logging.Handler):
    """A plain handler: keeps the records it is given."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
