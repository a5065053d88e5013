"""Freeze the code a run uses at submission time.

A queued Slurm job imports its code when it starts, which may be hours later; by then the checkout may have moved
on. The packages are copied into the run directory and jobs start there (``--chdir``), so Python finds this copy
before the installed checkout (the job's working directory comes first on ``sys.path``, ahead of the editable
install's finder).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from judgelm.config import REPO_ROOT

PACKAGES = ("judgelm", "launch")


def snapshot_code(dest: Path) -> Path:
    """Copy the project's packages into ``dest`` (once; an existing snapshot is kept) and return it."""
    if not dest.exists():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for pkg in PACKAGES:
            shutil.copytree(REPO_ROOT / pkg, tmp / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        tmp.rename(dest)
    return dest
