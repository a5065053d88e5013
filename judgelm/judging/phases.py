"""Where a task's wall time goes: named phases on one clock, logged as one line per task and kept in its progress.

A shard's main thread spends its life in exactly one phase at a time: ``start`` (from the process's creation to
the shard's code: the interpreter, submitit, importing torch and the library), ``model`` (loading the judge),
``cache`` (opening the verdict cache), ``tokenize`` (waiting for the chunk's prompts, which are prepared in the
background while the engine works on the previous chunk), ``engine`` (generating and parsing), ``store`` (waiting
for the previous chunk's commit, which runs in the background too). ``make bench`` adds them up over a run, and the
line (``phases shard 3: start 2.1 s, model 0.6 s, ...``) shows on Slurm what each task's start-up cost.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

PHASES = ("start", "model", "cache", "tokenize", "engine", "store")
_started = False  # whether a task of this process has already counted the process's start-up


def process_age() -> float | None:
    """Seconds since this process was created (Linux: ``/proc``), or ``None`` where that cannot be read."""
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        boot = next(float(x.split()[1]) for x in open("/proc/stat") if x.startswith("btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return max(0.0, time.time() - (boot + ticks / os.sysconf("SC_CLK_TCK")))


def startup_once() -> float | None:
    """The process's age for the first task that asks, 0 for later ones: a worker that runs several shards one
    after the other pays its start-up once."""
    global _started
    if _started:
        return 0.0
    _started = True
    return process_age()


class PhaseTimer:
    """Wall seconds per phase; ``with timer("engine"): ...`` adds to one. Starts with ``start`` = process age."""

    def __init__(self, start: float | None = None):
        self.seconds: dict[str, float] = {}
        if start is not None:
            self.seconds["start"] = round(start, 3)

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = round(self.seconds.get(phase, 0.0) + time.perf_counter() - t, 3)

    def line(self, who: str) -> str:
        order = [p for p in PHASES if p in self.seconds] + [p for p in self.seconds if p not in PHASES]
        parts = [f"{p} {self.seconds[p]:.1f} s" for p in order]
        return f"phases {who}: " + ", ".join(parts) + f"; total {sum(self.seconds.values()):.1f} s"
