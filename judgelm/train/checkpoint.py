"""Checkpoints that are either complete or ignored.

A checkpoint is written into a hidden temporary directory by every rank (model and optimizer shards, RNG
states), then rank 0 flushes it to disk, adds a ``COMPLETE`` marker and renames it to ``step-<N>``. The rename
is the commit: a job killed half-way leaves only a ``.tmp-*`` directory, which resume never looks at (and the
next run deletes). Resume takes the highest ``step-<N>`` that holds the marker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from judgelm.train import distributed

MARKER = "COMPLETE"
_STEP = re.compile(r"^step-(\d{8})$")


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:08d}"


def complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """``(step, dir)`` of every complete checkpoint under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        m = _STEP.match(d.name)
        if m and (d / MARKER).is_file():
            found.append((int(m.group(1)), d))
    return sorted(found)


def latest(root: Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1][1] if found else None


def read_marker(ckpt: Path) -> dict:
    return json.loads((ckpt / MARKER).read_text())


def _fsync_tree(d: Path) -> None:
    for p in sorted(d.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(d)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_partial(root: Path) -> None:
    """Delete temporary directories of checkpoints that were never completed (rank 0, at start-up)."""
    if root.is_dir():
        for d in root.glob(".tmp-*"):
            shutil.rmtree(d, ignore_errors=True)


@contextmanager
def atomic_checkpoint(root: Path, step: int, is_main: bool, info: dict) -> Iterator[Path]:
    """Every rank writes its part into the yielded directory; on a clean exit it becomes ``step-<N>``.

    Collective: all ranks must enter it, and it synchronises them before and after the writes.
    """
    tmp = root / f".tmp-step-{step:08d}"
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    distributed.barrier()
    yield tmp
    distributed.barrier()  # every rank has closed its files
    if is_main:
        _fsync_tree(tmp)
        (tmp / MARKER).write_text(json.dumps({"step": step, "time": time.time(), **info}, indent=1))
        _fsync_tree(tmp)
        final = step_dir(root, step)
        old = root / f".tmp-old-step-{step:08d}"
        if final.exists():  # the same step saved again: move the old copy aside, never leave the step without one
            os.rename(final, old)
        os.rename(tmp, final)
        _fsync_dir(root)
        shutil.rmtree(old, ignore_errors=True)
    distributed.barrier()


def prune(root: Path, keep: int, keep_also: int | None = None) -> None:
    """Keep the ``keep`` newest complete checkpoints, and step ``keep_also`` (the best) whatever its age (rank 0)."""
    for step, d in complete_checkpoints(root)[:-keep] if keep > 0 else []:
        if step != keep_also:
            shutil.rmtree(d, ignore_errors=True)


BEST = "best"


def mark_best(root: Path, step: int) -> None:
    """Point the ``best`` link at ``step-<N>`` (replaced in one rename, so it is never missing)."""
    tmp = root / f".{BEST}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(step_dir(root, step).name, tmp)
    os.replace(tmp, root / BEST)
