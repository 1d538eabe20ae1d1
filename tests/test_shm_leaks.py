"""The /dev/shm leak check counts what this process tree left, not other test runs' segments."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests._shm_leaks import SHM_DIR, left_behind, process_tree, snapshot

pytestmark = pytest.mark.skipif(
    not os.path.isdir(SHM_DIR) or not os.path.isdir("/proc/self/fd"),
    reason="reads /dev/shm and /proc (Linux)",
)

# Forks once more and exits, so the process holding the entries is not our descendant:
# another test run's process, as far as the check can tell.
FOREIGN = """
import os, sys
if os.fork():
    os._exit(0)
held = f"leakcheck-held-{sys.argv[1]}"
fd = os.open(f"/dev/shm/{held}", os.O_CREAT | os.O_RDWR, 0o600)
named = f"vgi_rpc_{os.getpid()}_leakcheck{sys.argv[1]}"
os.close(os.open(f"/dev/shm/{named}", os.O_CREAT | os.O_RDWR, 0o600))
print(held, named, os.getpid(), flush=True)
sys.stdin.read()
os.unlink(f"/dev/shm/{held}")
os.unlink(f"/dev/shm/{named}")
"""

HOLDER = """
import os, sys
fd = os.open(f"/dev/shm/{sys.argv[1]}", os.O_CREAT | os.O_RDWR, 0o600)
print("ready", flush=True)
sys.stdin.read()
"""


def _create(name: str) -> None:
    os.close(os.open(os.path.join(SHM_DIR, name), os.O_CREAT | os.O_RDWR, 0o600))


def test_only_entries_our_process_tree_could_have_made_count() -> None:
    tag = uuid.uuid4().hex[:12]
    before = snapshot()
    foreign = subprocess.Popen(
        [sys.executable, "-c", FOREIGN, tag], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert foreign.stdout is not None
    assert foreign.stdin is not None
    held, named, pid = foreign.stdout.readline().decode().split()
    foreign.wait(timeout=30)  # the first fork exits at once; its child lives on, not ours
    assert int(pid) not in process_tree()

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], stdout=subprocess.PIPE, check=True
    )
    unheld, dead_creator, by_child = (
        f"leakcheck-unheld-{tag}",
        f"vgi_rpc_{int(dead.stdout)}_leakcheck{tag}",  # its creator is gone: could have been ours
        f"leakcheck-child-{tag}",
    )
    _create(unheld)
    _create(dead_creator)
    own_fd = os.open(os.path.join(SHM_DIR, f"leakcheck-open-{tag}"), os.O_CREAT | os.O_RDWR, 0o600)
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, by_child], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdout is not None
    assert child.stdin is not None
    try:
        assert child.stdout.readline() == b"ready\n"
        found = left_behind(before)
        assert held not in found  # another tree's process holds it open
        assert named not in found  # named by the pid of a live process not ours
        ours = {unheld, dead_creator, f"leakcheck-open-{tag}", by_child}
        assert ours <= set(found)
    finally:
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()
        os.close(own_fd)
        for name in (unheld, dead_creator, f"leakcheck-open-{tag}", by_child):
            os.unlink(os.path.join(SHM_DIR, name))
        foreign.stdin.close()  # the grandchild reads EOF, removes its entries and exits
        foreign.stdout.close()
    assert not {n for n in left_behind(before) if tag in n}
