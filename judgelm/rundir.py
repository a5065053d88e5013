"""Where things live inside a run directory, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a reader (or a second writer) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def store(self) -> Path:
        return self.root / "verdicts.zarr"

    @property
    def progress(self) -> Path:
        return self.root / "progress"

    def shard_progress(self, shard: int, judge: str = "") -> Path:
        """A shard's progress file; a panel judge's shards (``judgelm.panel``) keep theirs in their own folder."""
        return (self.progress / judge if judge else self.progress) / f"shard-{shard:04d}.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects.jsonl"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def table(self) -> Path:
        return self.root / "metrics.md"

    @property
    def jobs(self) -> Path:
        """Slurm/submitit job ids of the run's submissions, appended by the launcher."""
        return self.root / "jobs.jsonl"
