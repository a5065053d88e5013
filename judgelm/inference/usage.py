"""Token usage and cost of a server-backed run, as the server reported it in each response's ``usage``.

Each shard attempt writes its own file (``usage/shard-KKKK-attempt-A.json``) after every committed chunk, so
the sum over the files is what the run really consumed, including chunks that a killed attempt judged but never
committed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from judgelm.rundir import write_text_atomic


@dataclass
class Usage:
    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: Usage) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def usage_file(run_dir: Path, shard: int, attempt: int) -> Path:
    return Path(run_dir) / "usage" / f"shard-{shard:04d}-attempt-{attempt}.json"


def write_usage(run_dir: Path, shard: int, attempt: int, usage: Usage) -> None:
    write_text_atomic(usage_file(run_dir, shard, attempt), json.dumps(asdict(usage)))


def total_usage(run_dir: Path) -> Usage | None:
    """The run's usage summed over every shard attempt, or ``None`` for a run that talked to no server."""
    files = sorted((Path(run_dir) / "usage").glob("shard-*.json"))
    if not files:
        return None
    total = Usage()
    for f in files:
        total.add(Usage(**json.loads(f.read_text())))
    return total
