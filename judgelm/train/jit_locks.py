"""Stale build locks of JIT-compiled ops, removed before DeepSpeed builds its ops.

DeepSpeed compiles ops on first use (its shared-memory comm op at every CPU ``init_distributed``, ``cpu_adam`` for
optimizer offload) through torch's extension builder, which serialises builders with a plain lock *file* in the op's
build directory and waits on it with no time limit. A job killed while holding it (preemption, a time limit, a
cancelled test) leaves the file behind, and every later training job on that machine then waits forever before its
first step. A kernel lock would die with its holder; this file does not, so its age is the only evidence left: no
build takes anywhere near ``STALE_AFTER_S`` (about 30 s for the comm op and 50 s for cpu_adam on two cores).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

STALE_AFTER_S = 15 * 60


def build_root() -> Path:
    """Where torch puts extension builds: ``TORCH_EXTENSIONS_DIR`` or its per-user default."""
    if "TORCH_EXTENSIONS_DIR" in os.environ:
        return Path(os.environ["TORCH_EXTENSIONS_DIR"])
    from torch.utils.cpp_extension import get_default_build_root

    return Path(get_default_build_root())


def clear_stale(root: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove the build locks (``<root>/<python-and-device>/<op>/lock``) older than ``STALE_AFTER_S``; return them."""
    root = root or build_root()
    now = time.time() if now is None else now
    removed = []
    for lock in root.glob("*/*/lock"):
        try:
            age = now - lock.stat().st_mtime
            if age > STALE_AFTER_S:
                lock.unlink()
        except FileNotFoundError:  # its builder finished, or another rank removed it first
            continue
        if age > STALE_AFTER_S:
            print(f"removed a build lock left by a killed process {age / 60:.0f} min ago: {lock}", file=sys.stderr)
            removed.append(lock)
    return removed

