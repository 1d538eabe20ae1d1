"""A worker's exit: ``connect``'s close wakes when the worker exits, and a worker's exit is cheap."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from tests._startup_worker import Calc
from tests.conftest import worker_env
from vgi_rpc import StderrMode, connect
from vgi_rpc.transports._subprocess import wait_exit


def _spawn(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_wait_exit_returns_the_exit_status() -> None:
    proc = _spawn("import sys; sys.exit(3)")
    assert wait_exit(proc, 30.0) == 3
    assert proc.returncode == 3
    assert wait_exit(proc, 0.0) == 3  # already reaped: the status again, no waiting


def test_wait_exit_times_out_on_a_running_process() -> None:
    proc = _spawn("import time; time.sleep(60)")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            wait_exit(proc, 0.05)
        assert proc.returncode is None
    finally:
        proc.kill()
    assert wait_exit(proc, 30.0) == -9


# Handlers registered before run_server run after its gc.freeze (atexit runs them last in,
# first out), so this one sees the heap frozen.
FROZEN_AT_EXIT = textwrap.dedent(
    """
    import atexit, gc, sys
    atexit.register(lambda: print(f"frozen {gc.get_freeze_count()}", file=sys.stderr, flush=True))
    from tests._startup_worker import Calc, CalcImpl
    from vgi_rpc import run_server
    run_server(Calc, CalcImpl())
    """
)


def test_a_worker_freezes_its_heap_when_it_exits(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tests.worker_exit")
    with connect(
        Calc,
        [sys.executable, "-c", FROZEN_AT_EXIT],
        env=worker_env(),
        stderr=StderrMode.PIPE,
        stderr_logger=logging.getLogger("tests.worker_exit"),
    ) as calc:
        assert calc.add(a=1.0, b=2.0) == 3.0
    lines = [r.getMessage() for r in caplog.records if r.name == "tests.worker_exit"]
    (frozen,) = [line for line in lines if line.startswith("frozen ")]
    assert int(frozen.split()[1]) > 1000  # the whole heap: pyarrow's and vgi_rpc's objects
