"""Where things live inside a run directory, in one place, and how its files are written."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgelm.config import ConfigError


class Fault(RuntimeError):
    """A failure whose message says all there is to say (a damaged store, ...): entry points print it as one line,
    without a traceback, and exit with 1."""


def write_text_atomic(path: Path, text: str, mode: int = 0o666) -> None:
    """Replace ``path`` in one step: a reader (or a second writer) never sees half a file. ``mode`` (before the
    umask) is set when the file is created, so a secret is never readable by others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)  # left by a killed writer: its permissions must not be kept
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.filename is None:  # a failed write (a full disk) names no file
            e.filename = str(path)
        raise


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A temporary path (same folder, same suffix) to write ``path``'s new content to; it replaces ``path`` in one
    step when the block ends, and is removed if the block fails. A process killed while writing leaves the old file
    whole."""
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# What the machine's environment, not the code or the data, can do to a job: one cause line each.
_CAUSES = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
           errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
           errno.EROFS: "read-only file system", errno.ENOENT: "file not found (moved or deleted while running?)",
           errno.EIO: "input/output error", errno.ENOMEM: "out of memory", errno.EMFILE: "too many open files",
           errno.ESTALE: "stale file handle (network file system)"}


def _chain(e: BaseException | None):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _free_space(path: str) -> str:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return ""
    return f" ({st.f_bavail * st.f_frsize / 2**20:.1f} MiB free on that file system)"


def environment_fault(e: BaseException) -> str | None:
    """One line naming what in the environment made ``e`` happen (no space left, a quota, permissions, a read-only
    file system, a vanished file, memory) and where; ``None`` when it is not such a failure (a bug is not)."""
    for x in _chain(e):
        name = type(x).__name__
        if isinstance(x, MemoryError) or name == "OutOfMemoryError" or (
                isinstance(x, RuntimeError) and ("out of memory" in str(x).lower()
                                                 or "can't allocate memory" in str(x).lower())):
            detail = str(x).strip().splitlines()[0][:120] if str(x).strip() else name
            return f"out of memory on {socket.gethostname()}: {detail}"
        if isinstance(x, OSError) and x.errno in _CAUSES:
            where = x.filename or "(no path given)"
            space = _free_space(str(x.filename)) if x.filename and x.errno in (errno.ENOSPC, errno.EDQUOT) else ""
            own = x.strerror and x.strerror != os.strerror(x.errno)  # raised with its own words (a vanished model)
            return f"{x.strerror if own else _CAUSES[x.errno]}: {where}{space}"
    return None


def environment_hint(path: Path) -> str | None:
    """What is wrong with the file system holding ``path`` right now, for a job that died without saying why
    (it could not write its own logs): full, or mounted read-only. ``None`` when nothing is."""
    try:
        st = os.statvfs(path)
    except OSError as e:
        return environment_fault(e)
    if st.f_flag & os.ST_RDONLY:
        return f"read-only file system: {path}"
    if st.f_bavail * st.f_frsize < 1 << 20:
        return f"no space left on device: {path}{_free_space(str(path))}"
    return None


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


@contextlib.contextmanager
def new_run(runs_dir: str | Path, run: str) -> Iterator[RunDir]:
    """The directory of a run that does not exist yet, with its logs folder, for the block to fill. A failure
    part-way removes it whole, so a run directory that exists is always one that can be resumed."""
    rd = RunDir(Path(runs_dir).resolve() / run)
    if rd.root.exists():
        raise ConfigError(f"run {run} already exists in {rd.root.parent}; continue it with "
                          f"`make resubmit RUN={run}` or choose another RUN")
    rd.root.mkdir(parents=True)
    try:
        rd.logs.mkdir()
        yield rd
    except BaseException:
        shutil.rmtree(rd.root, ignore_errors=True)
        raise
