"""Where things live inside a run directory, in one place, and how its files are written."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgelm.config import ConfigError


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a reader (or a second writer) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by ``None``: valid JSON, and equal when recomputed."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_run_name(name: str, nested: bool = False) -> str:
    """A run name is a directory below ``runs_dir``: letters, digits, ``.``, ``_`` and ``-`` only, so it can never
    point outside it. ``nested`` allows the ``<run>/<part>`` names of a benchmark run's judging runs."""
    parts = name.split("/") if nested else [name]
    if not name or not all(_NAME.match(p) for p in parts):
        raise ConfigError(f"run name '{name}' is not allowed: use letters, digits, '.', '_' and '-' (starting with a "
                          f"letter or digit){', parts joined by /' if nested else ''}, e.g. run=pandalm-7b")
    return name


@dataclass(frozen=True)
class RunDir:
    root: Path

    @classmethod
    def existing(cls, runs_dir: str | Path, run: str) -> RunDir:
        """The directory of run ``run`` (a name below ``runs_dir``, or an absolute path), which must exist."""
        if not run:
            raise ConfigError("which run? give run=NAME (make ... RUN=NAME)")
        path = Path(run)
        if not path.is_absolute():
            path = Path(runs_dir) / check_run_name(run, nested=True)
        if not path.is_dir():
            raise ConfigError(f"no run {run} in {Path(runs_dir).resolve()}")
        return cls(path.resolve())

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
    def answer_store(self) -> Path:
        """A generation run's answer store (``judgelm.generation.store``)."""
        return self.root / "answers.zarr"

    @property
    def generated(self) -> Path:
        """An evaluation's generation runs, one folder per model (``make evaluate MODELS=…``)."""
        return self.root / "generated"

    @property
    def progress(self) -> Path:
        return self.root / "progress"

    def shard_progress(self, shard: int, judge: str = "") -> Path:
        """A shard's progress file; a panel judge's shards (``judgelm.judging.panel``) keep theirs in their own
        folder."""
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
    def train_log(self) -> Path:
        """A training run's human-readable log, written by rank 0."""
        return self.root / "train.log"

    @property
    def jobs(self) -> Path:
        """Slurm/submitit job ids of the run's submissions, appended by the launcher."""
        return self.root / "jobs.jsonl"
