"""PandaLM test set v1: 999 pairs, three human annotators each (Apache-2.0, see data/benchmarks/pandalm/).

Label convention: annotators give 1 (response 1 better), 2 (response 2 better) or 0 (tie); the ground truth is
the majority vote (every item has one), mapped to JudgeLM's 1 / -1 / 0. JudgeLM's own PandaLM prompt mapping was
never published (its issues #11, #24); we put the instruction first and the input after a newline, the order a
user reads them in.

The file is real model output and is kept as it is: 54 responses are empty (judged as empty answers), and six are
JSON ``true`` where a model answered "True"; those are rendered as ``str(True)``, as PandaLM's own Python would.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from judgelm.data.records import (
    Loaded,
    Record,
    RecordError,
    Source,
    iter_json_objects,
    load_objects,
    require_id,
    require_text,
)

_TO_WIN = {1: 1, 2: -1, 0: 0}


def majority(votes: list[int]) -> int | None:
    value, count = Counter(votes).most_common(1)[0]
    return value if count * 2 > len(votes) else None


def record_from_pandalm(obj: Any, src: Source) -> Record:
    if not isinstance(obj, dict):
        raise RecordError(src, None, f"expected a JSON object, got {type(obj).__name__}")
    idx = require_id(obj, "idx", src)
    instruction = require_text(obj, "instruction", src, allow_empty=True)
    inp = obj.get("input") or ""
    if not isinstance(inp, str):
        raise RecordError(src, "input", f"expected a string, got {type(inp).__name__}")
    votes = []
    for key in ("annotator1", "annotator2", "annotator3"):
        v = obj.get(key)
        if isinstance(v, bool) or v not in _TO_WIN:
            raise RecordError(src, key, f"expected 0 (tie), 1 or 2, got {v!r}")
        votes.append(v)
    vote = majority(votes)
    if vote is None:
        raise RecordError(src, "annotator1", f"no majority among {votes}")
    question = instruction + ("\n" + inp if inp.strip() else "")
    if not question.strip():
        raise RecordError(src, "instruction", "empty, and so is input")
    return Record(question_id=idx, question=question,
                  answers=(_response(obj, "response1", src), _response(obj, "response2", src)),
                  label=_TO_WIN[vote], subset="pandalm", category=str(obj.get("motivation_app") or ""))


def _response(obj: dict, key: str, src: Source) -> str:
    if isinstance(obj.get(key), bool):
        return str(obj[key])
    return require_text(obj, key, src, allow_empty=True)


def load_pandalm(path: str | Path, skip_invalid: bool = False) -> Loaded:
    return load_objects(iter_json_objects(path), record_from_pandalm, skip_invalid)
