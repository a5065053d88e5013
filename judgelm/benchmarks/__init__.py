"""Benchmarks shipped with the project, each converted into ``Record``s with its own label convention.

``load_dataset(spec)`` is the one entry point the pipeline uses: ``spec`` is a benchmark name from
``BENCHMARKS`` or a path to a JudgeLM-format JSON/JSONL file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from judgelm.config import REPO_ROOT
from judgelm.records import Loaded, load_records

DATA_DIR = REPO_ROOT / "data" / "benchmarks"


def _pandalm(skip_invalid: bool) -> Loaded:
    from judgelm.benchmarks.pandalm import load_pandalm
    return load_pandalm(DATA_DIR / "pandalm" / "testset-v1.json", skip_invalid)


BENCHMARKS: dict[str, Callable[[bool], Loaded]] = {
    "pandalm": _pandalm,
}


def load_dataset(spec: str, skip_invalid: bool = False) -> Loaded:
    """Records of a named benchmark or of a JudgeLM-format file."""
    if spec in BENCHMARKS:
        return BENCHMARKS[spec](skip_invalid)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"'{spec}' is neither a benchmark ({', '.join(sorted(BENCHMARKS))}) nor a file")
    return load_records(path, skip_invalid)
