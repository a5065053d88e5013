"""Where the shipped benchmarks lie, and reading a benchmark kept in several files."""

from __future__ import annotations

import itertools
from pathlib import Path

from judgelm.config import REPO_ROOT
from judgelm.data.records import Converter, Loaded, iter_json_objects, load_objects

DATA_DIR = REPO_ROOT / "data" / "benchmarks"


def load_files(files: dict[Path, Converter], skip_invalid: bool = False) -> Loaded:
    """Records of a benchmark kept in several files, each read with its own converter; ids must be unique across all."""
    by_path = {str(p): convert for p, convert in files.items()}
    items = itertools.chain.from_iterable(iter_json_objects(p) for p in files)
    return load_objects(items, lambda obj, src: by_path[src.path](obj, src), skip_invalid)
