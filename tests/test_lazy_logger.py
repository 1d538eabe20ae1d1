"""``LazyLogger``: the framework's loggers import ``logging`` only once a record could be emitted.

Whatever the application does with ``logging``, before or after ``import vgi_rpc``,
the records, levels and handlers are the real loggers'.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from tests.conftest import ROOT, worker_env
from vgi_rpc._logs import DEBUG, ERROR, INFO, WARNING, LazyLogger, lazy_logger, real_logger


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=worker_env(),
    )


def test_levels_match_logging() -> None:
    assert (DEBUG, INFO, WARNING, ERROR) == (
        logging.DEBUG,
        logging.INFO,
        logging.WARNING,
        logging.ERROR,
    )


def test_without_logging_debug_is_off_and_warnings_reach_stderr() -> None:
    code = """
import sys
from vgi_rpc._logs import lazy_logger
log = lazy_logger("vgi_rpc.test.lazy")
assert not log.isEnabledFor(10) and not log.isEnabledFor(20) and log.isEnabledFor(30)
log.debug("quiet %s", 1)
log.info("quiet too")
assert "logging" not in sys.modules
log.warning("loud %s", 2)  # logging's last resort handler, as an unconfigured logger
assert "logging" in sys.modules
"""
    proc = _run(code)
    assert proc.stderr == "loud 2\n"


def test_logging_configured_after_import_is_honoured() -> None:
    code = """
from vgi_rpc._logs import lazy_logger
log = lazy_logger("vgi_rpc.test.late")
assert not log.isEnabledFor(10)
import logging
logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(filename)s:%(funcName)s %(message)s")
def caller():
    log.debug("seen %d", 3)
caller()
"""
    proc = _run(code)
    assert proc.stderr == "vgi_rpc.test.late DEBUG <string>:caller seen 3\n"


def test_records_carry_the_callers_location(caplog: pytest.LogCaptureFixture) -> None:
    log = LazyLogger("vgi_rpc.test.where")  # logging is imported here: it resolves at once
    caplog.set_level(logging.DEBUG, logger="vgi_rpc.test.where")
    log.debug("a")
    log.info("b")
    log.warning("c")
    assert [(r.levelno, r.funcName, r.filename) for r in caplog.records] == [
        (logging.DEBUG, "test_records_carry_the_callers_location", "test_lazy_logger.py"),
        (logging.INFO, "test_records_carry_the_callers_location", "test_lazy_logger.py"),
        (logging.WARNING, "test_records_carry_the_callers_location", "test_lazy_logger.py"),
    ]


def test_first_use_before_resolution_keeps_the_callers_location(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = LazyLogger("vgi_rpc.test.first")
    assert log._real is None
    caplog.set_level(logging.DEBUG, logger="vgi_rpc.test.first")
    log.debug("x")  # the lazy path: resolves, then logs one frame up
    assert log.debug == logging.getLogger("vgi_rpc.test.first").debug  # resolved
    assert [(r.funcName, r.filename) for r in caplog.records] == [
        ("test_first_use_before_resolution_keeps_the_callers_location", "test_lazy_logger.py")
    ]


def test_the_real_logger_stands_behind_it() -> None:
    log = lazy_logger("vgi_rpc.test.same")
    assert real_logger(log) is logging.getLogger("vgi_rpc.test.same")
    assert log.name == "vgi_rpc.test.same"
    assert log.handlers is logging.getLogger("vgi_rpc.test.same").handlers
    plain = logging.getLogger("vgi_rpc.test.plain")
    assert real_logger(plain) is plain
