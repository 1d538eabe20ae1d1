"""Shared pieces of the fuzz targets: findings, summaries, /proc readings, saving inputs."""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field

# How much a reply may exceed the unmutated request's reply (plus the input's own size).
REPLY_SLACK = 64 * 1024


def reply_bound(base: int, request: int, data: bytes = b"") -> int:
    """The longest legitimate reply to a mutated request of ``request`` bytes.

    ``base`` is the unmutated request's reply. The request's bytes count twice
    (an echo plus an error message quoting it), and six times when ``data`` names
    one of the ConformanceService's logging echoes: ``echo_with_all_log_levels``
    repeats its argument in five log messages and the result. A reply that leaks
    the server's memory (a forged offset reads up to 2 GiB) passes this by far.
    """
    factor = 6 if b"echo_with_" in data else 2
    return base + factor * request + REPLY_SLACK


@dataclass
class Finding:
    """One thing the target must never do, with what reproduces it."""

    kind: str  # crash, hang, exception, oversized, memory, 5xx, dropped, bomb
    target: str  # pipe or http
    seed: int
    index: int  # input index; -1 for whole-run checks
    item: str  # corpus item the input was derived from
    mutation: str
    detail: str

    def line(self) -> str:
        """One-line description."""
        first = _gist(self.detail)
        return (
            f"[{self.target}] {self.kind} seed={self.seed} index={self.index} "
            f"item={self.item!r} mutation={self.mutation}: {first[:300]}"
        )


@dataclass
class Summary:
    """What one run did."""

    target: str
    inputs: int = 0
    seconds: float = 0.0
    peak_rss: int = 0  # bytes, of the target process
    findings: list[Finding] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Inputs per second."""
        return self.inputs / self.seconds if self.seconds else 0.0

    def count(self, kind: str) -> int:
        """Findings of ``kind``."""
        return sum(1 for f in self.findings if f.kind == kind)

    def report(self) -> str:
        """Human-readable summary."""
        kinds = ("crash", "hang", "exception", "5xx", "dropped", "oversized", "memory", "bomb")
        counts = ", ".join(f"{k}: {self.count(k)}" for k in kinds)
        lines = [
            f"{self.target}: {self.inputs} inputs in {self.seconds:.1f}s "
            f"({self.rate:.0f} inputs/s); {counts}; peak RSS {self.peak_rss / 2**20:.0f} MiB",
        ]
        if self.statuses:
            lines.append(f"  answers: {dict(sorted(self.statuses.items()))}")
        lines += ["  " + f.line() for f in self.findings[:50]]
        if len(self.findings) > 50:
            lines.append(f"  ... and {len(self.findings) - 50} more")
        return "\n".join(lines)


def _gist(detail: str) -> str:
    """The telling lines of a finding.

    The last line; for a crash, how it died, the C++ message and the innermost
    vgi_rpc frame of the Python stack (faulthandler).
    """
    lines = [line.strip() for line in detail.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if not lines[0].startswith("child ") and not lines[0].startswith("worker "):
        return lines[-1]
    picked = [lines[0]]
    picked += [line for line in lines if "what()" in line or "Check failed" in line][:1]
    picked += [line for line in lines if line.startswith("File") and "vgi_rpc/" in line][:1]
    return " | ".join(picked)


def input_rng(seed: int, index: int) -> random.Random:
    """The generator for input ``index`` of run ``seed``: each input reproduces on its own."""
    return random.Random(seed * 1_000_003 + index)


def proc_status(pid: int, key: str) -> int:
    """A ``kB`` field of /proc/PID/status (VmRSS, VmHWM) in bytes; 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def open_fds(pid: int) -> int:
    """How many descriptors ``pid`` has open (0 if unreadable)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def save_input(
    save_dir: str | None, finding: Finding, data: bytes, extra: dict[str, object] | None = None
) -> None:
    """Write a finding's input (and a JSON note) under ``save_dir``."""
    if not save_dir:
        return
    os.makedirs(save_dir, exist_ok=True)
    stem = os.path.join(
        save_dir, f"{finding.target}-{finding.kind}-seed{finding.seed}-{finding.index}"
    )
    with open(stem + ".bin", "wb") as f:
        f.write(data)
    with open(stem + ".json", "w") as f:
        json.dump({**asdict(finding), **(extra or {})}, f, indent=1, default=str)


__all__ = [
    "REPLY_SLACK",
    "Finding",
    "Summary",
    "input_rng",
    "open_fds",
    "proc_status",
    "reply_bound",
    "save_input",
]
