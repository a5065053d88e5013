"""Per-shard progress files: what each attempt of a shard did, readable while it runs.

A shard rewrites its own file after every chunk (atomically, so a reader never sees half a file). Operators'
status view and the launcher's progress line read them; the store stays the truth about what is done. A shard's
attempt also returns a ``ShardResult``, which the launcher unpickles from a finished job: defined here, where
unpickling it imports no torch.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from judgelm.rundir import write_text_atomic


@dataclass
class ShardResult:
    shard: int
    units_total: int
    units_done: int
    units_judged: int  # by this attempt
    interrupted: bool
    signum: int | None = None


@dataclass
class Attempt:
    attempt: int
    job_id: str
    host: str
    started: float
    updated: float
    units_judged: int = 0
    chunks_judged: int = 0
    state: str = "running"  # running | finished | interrupted | failed | lost (killed without a word)
    runtime: dict | None = None  # what the engine loaded the judge with (dtype, attention, devices), when it says
    phases: dict | None = None  # wall seconds per phase of this attempt (``judgelm.judging.phases``)
    error: str | None = None  # why a failed attempt failed, in one line (``judgelm.rundir.environment_fault``)
    cache_unreadable: list[str] | None = None  # verdict-cache files it found unreadable and set aside


@dataclass
class ShardProgress:
    shard: int
    units_total: int
    units_done: int = 0
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Units per second of the latest attempt."""
        if not self.attempts:
            return 0.0
        a = self.attempts[-1]
        return a.units_judged / max(a.updated - a.started, 1e-9)

    def start_attempt(self, job_id: str) -> Attempt:
        # An attempt still "running" when the next one starts was killed (SIGKILL, node loss) before it could say so.
        for a in self.attempts:
            if a.state == "running":
                a.state = "lost"
        now = time.time()
        a = Attempt(attempt=len(self.attempts), job_id=job_id, host=socket.gethostname(), started=now, updated=now)
        self.attempts.append(a)
        return a


def write_progress(path: Path, p: ShardProgress) -> None:
    write_text_atomic(path, json.dumps(asdict(p)))


def read_progress(path: Path) -> ShardProgress | None:
    try:
        d = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return ShardProgress(shard=d["shard"], units_total=d["units_total"], units_done=d["units_done"],
                         attempts=[Attempt(**a) for a in d["attempts"]])


def cache_unreadable(progress_dir: Path) -> dict[str, int] | None:
    """Verdict-cache files the run's shards found unreadable and set aside (each once, however many shards saw it),
    and the entries they held: ``{"files": n, "entries": m}``, or None when there were none."""
    seen: dict[str, int] = {}
    for path in sorted(progress_dir.glob("shard-*.json")):
        p = read_progress(path)
        for a in p.attempts if p else []:
            for item in a.cache_unreadable or []:
                name, _, entries = item.rpartition(":")
                seen[name] = int(entries)
    return {"files": len(seen), "entries": sum(seen.values())} if seen else None
