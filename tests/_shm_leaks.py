"""Leak checks on ``/dev/shm`` that count only what this test process could have made.

Other test suites on the same machine create and remove their own segments
(``vgi-objectstore-*``, ``psm_*``, ``vgi_rpc_*``) while ours run, so "the
directory is as it was" is not a leak check. An entry that appeared since a
snapshot counts as ours unless it is foreign: a live process outside this
process's tree has it open or mapped, or its name carries the pid of such a
process (``vgi_rpc_<pid>_…``, ``vgi-objectstore-<pid>-…``). A segment our
own processes leaked is held by none of them once they are gone, or by one
of them while they run, and so still counts.
"""

from __future__ import annotations

import contextlib
import os
import re

SHM_DIR = "/dev/shm"
# Names that carry their creator's pid: ours (vgi_rpc.shm) and the object store's.
_PID_IN_NAME = re.compile(r"(?:vgi_rpc_|vgi-objectstore-)(\d+)[_-]")


def snapshot() -> set[str]:
    """The names in ``/dev/shm`` now (empty where there is no such directory)."""
    return set(os.listdir(SHM_DIR)) if os.path.isdir(SHM_DIR) else set()


def _parents() -> dict[int, int]:
    """``pid -> parent pid`` of every live process (Linux ``/proc``)."""
    parents: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with (
                    contextlib.suppress(OSError, IndexError, ValueError),
                    open(f"/proc/{entry}/stat") as f,
                ):
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
    return parents


def process_tree(root: int | None = None) -> set[int]:
    """``root`` (this process by default) and its live descendants."""
    parents = _parents()
    tree = {os.getpid() if root is None else root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def _holders(names: set[str], pids: set[int]) -> dict[str, set[int]]:
    """Which of ``pids`` have each of ``names`` open (a descriptor) or mapped."""
    paths = {f"{SHM_DIR}/{name}": name for name in names}
    held: dict[str, set[int]] = {name: set() for name in names}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target in paths:
                        held[paths[target]].add(pid)
        with contextlib.suppress(OSError), open(f"/proc/{pid}/maps") as f:
            for line in f:
                at = line.find(SHM_DIR + "/")
                if at >= 0:
                    name = line[at + len(SHM_DIR) + 1 :].split()[0]
                    if name in held:
                        held[name].add(pid)
    return held


def left_behind(before: set[str]) -> list[str]:
    """Entries that appeared since ``before`` and are not some other process tree's."""
    new = snapshot() - before
    if not new:
        return []
    parents = _parents()
    ours = process_tree()
    foreign_pids = set(parents) - ours
    holders = _holders(new, set(parents))
    mine = []
    for name in sorted(new):
        held = holders[name]
        if held and not held & ours:
            continue  # open or mapped only by processes we did not start
        match = _PID_IN_NAME.match(name)
        if match and int(match.group(1)) in foreign_pids:
            continue  # its creator is alive and not ours
        mine.append(name)
    # Gone meanwhile: removed by whoever held it (its holder may have exited since, too).
    return [name for name in mine if os.path.lexists(os.path.join(SHM_DIR, name))]


__all__ = ["SHM_DIR", "left_behind", "process_tree", "snapshot"]
