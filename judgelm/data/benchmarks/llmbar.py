"""LLMBar (MIT, see data/benchmarks/llmbar/): Natural and the four Adversarial subsets, and the 200 MT-Bench pairs
with human expert labels from LLMBar's processed sets.

Label convention: ``label`` is 1 or 2, the index of the better output (no ties), mapped to JudgeLM's 1 / -1. The
instruction (input text already appended by LLMBar) is the question. Subsets are reported separately, as in the
LLMBar paper; its protocol (``protocols.llmbar``) judges both orders and averages the two accuracies.
Record ids are ``<subset>/<item index>``: LLMBar items have no ids of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgelm.data.benchmarks.files import load_files
from judgelm.data.records import Loaded, Record, RecordError, Source, require_text

SUBSETS = ("Natural", "Adversarial/Neighbor", "Adversarial/GPTInst", "Adversarial/GPTOut", "Adversarial/Manual")
_TO_WIN = {1: 1, 2: -1}


def record_from_llmbar(obj: Any, src: Source, benchmark: str, subset: str) -> Record:
    if not isinstance(obj, dict):
        raise RecordError(src, None, f"expected a JSON object, got {type(obj).__name__}")
    label = obj.get("label")
    if isinstance(label, bool) or label not in _TO_WIN:
        raise RecordError(src, "label", f"expected 1 (output_1 better) or 2 (output_2 better), got {label!r}")
    answers = (require_text(obj, "output_1", src, allow_empty=True),
               require_text(obj, "output_2", src, allow_empty=True))
    index = src.item if src.item is not None else src.line
    return Record(question_id=f"{subset}/{index}" if subset else index,
                  question=require_text(obj, "input", src), answers=answers, label=_TO_WIN[label],
                  subset=f"{benchmark}/{subset}" if subset else benchmark,
                  category=subset.split("/", 1)[0])


def _load(files: list[tuple[Path, str]], benchmark: str, skip_invalid: bool) -> Loaded:
    return load_files({path: lambda obj, src, s=subset: record_from_llmbar(obj, src, benchmark, s)
                       for path, subset in files}, skip_invalid)


def load_llmbar(root: str | Path, skip_invalid: bool = False) -> Loaded:
    """The 419 LLMBar pairs: Natural 100, Adversarial Neighbor 134, GPTInst 92, GPTOut 47, Manual 46."""
    root = Path(root)
    return _load([(root / "LLMBar" / s / "dataset.json", s) for s in SUBSETS], "llmbar", skip_invalid)


def load_mtbench_human(root: str | Path, skip_invalid: bool = False) -> Loaded:
    """The 200 MT-Bench pairs (human expert majority vote, ties removed by LLMBar's authors)."""
    return _load([(Path(root) / "Processed" / "MT-Bench" / "dataset.json", "")], "mtbench_human", skip_invalid)
