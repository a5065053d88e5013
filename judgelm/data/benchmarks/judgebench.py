"""JudgeBench (MIT, see data/benchmarks/judgebench/): 620 response pairs whose label is objective correctness
(MMLU-Pro, LiveBench and LiveCodebench answers checked against ground truth), in two sets by the model that wrote
both responses: GPT-4o (350) and Claude-3.5-Sonnet (270).

Label convention: ``"A>B"`` → 1, ``"B>A"`` → -1 (response A is answer 1); no ties. The subset is the response model,
the category JudgeBench's reporting group of ``source``: knowledge (mmlu-pro-*), reasoning, math, coding. Its protocol
(``protocols.judgebench``) judges both orders and counts a pair as correct only when the two verdicts, taken
together, favour the correct response.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgelm.data.benchmarks.files import load_files
from judgelm.data.records import Loaded, Record, RecordError, Source, require_id, require_text

FILES = {
    "gpt-4o": "dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl",
    "claude-3.5-sonnet": "dataset=judgebench,response_model=claude-3-5-sonnet-20240620.jsonl",
}
_TO_WIN = {"A>B": 1, "B>A": -1}
_CATEGORY_PREFIX = (("mmlu-pro", "knowledge"), ("livebench-reasoning", "reasoning"), ("livebench-math", "math"),
                    ("livecodebench", "coding"))


def category_of(source: str) -> str | None:
    return next((cat for prefix, cat in _CATEGORY_PREFIX if source.startswith(prefix)), None)


def record_from_judgebench(obj: Any, src: Source, subset: str) -> Record:
    if not isinstance(obj, dict):
        raise RecordError(src, None, f"expected a JSON object, got {type(obj).__name__}")
    label = obj.get("label")
    if label not in _TO_WIN:
        raise RecordError(src, "label", f"expected 'A>B' or 'B>A', got {label!r}")
    source = require_text(obj, "source", src)
    category = category_of(source)
    if category is None:
        raise RecordError(src, "source", f"unknown source {source!r} (expected mmlu-pro-*, livebench-reasoning, "
                                         "livebench-math or livecodebench)")
    return Record(question_id=require_id(obj, "pair_id", src), question=require_text(obj, "question", src),
                  answers=(require_text(obj, "response_A", src, allow_empty=True),  # an empty answer is data
                           require_text(obj, "response_B", src, allow_empty=True)),
                  label=_TO_WIN[label], subset=f"judgebench/{subset}", category=category)


def load_judgebench(root: str | Path, skip_invalid: bool = False) -> Loaded:
    return load_files({Path(root) / name: lambda obj, src, s=subset: record_from_judgebench(obj, src, s)
                       for subset, name in FILES.items()}, skip_invalid)
