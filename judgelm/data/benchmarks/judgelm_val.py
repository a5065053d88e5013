"""JudgeLM val (``BAAI/JudgeLM-100K``, CC BY-NC 4.0; not shipped, read from a local directory): 5,000 pairs with GPT-4
judgements without and with the reference answer, and the reference answers themselves.

Files in the directory (reference document §1.3), aligned by row position as JudgeLM's evaluation does:
``judgelm_val_5k.jsonl`` (questions and answers, required), ``judgelm_val_5k_gpt4.jsonl`` (ground truth without the
reference, required), ``judgelm_val_5k_gpt4_with_reference.jsonl`` and ``judgelm_val_5k_references.jsonl``
(optional; without them the with-reference protocol is skipped). Where a ground-truth or reference row carries a
``question_id`` it must equal the question row's, so a shuffled file fails loudly instead of scoring garbage.

Label convention: the sign of GPT-4's first-line scores, re-parsed from its ``text`` as JudgeLM does; a judgement
that does not parse leaves the pair without ground truth (dropped from metrics, as JudgeLM drops it). Published
statistics of the full set: 151 of 5,000 no-reference judgements do not parse; of the remaining 4,849, 2,327 answer-1
wins, 2,303 answer-2 wins and 219 ties.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from judgelm.data.records import (
    Loaded,
    RecordError,
    Source,
    iter_dicts,
    iter_json_objects,
    load_objects,
    record_from_judgelm,
)

QUESTIONS = "judgelm_val_5k.jsonl"
GPT4 = "judgelm_val_5k_gpt4.jsonl"
GPT4_WITH_REFERENCE = "judgelm_val_5k_gpt4_with_reference.jsonl"
REFERENCES = "judgelm_val_5k_references.jsonl"
_QUESTION_KEYS = ("question_id", "question_body", "answer1_body", "answer2_body")


def _joined(root: Path) -> Iterator[tuple[Source, Any, str]]:
    """JudgeLM-format objects: each question row with its ground truth and reference merged in."""
    questions = list(iter_json_objects(root / QUESTIONS))
    extra = {name: list(iter_dicts(root / name)) for name in (GPT4, GPT4_WITH_REFERENCE, REFERENCES)
             if (root / name).exists()}
    for name, rows in extra.items():
        if len(rows) != len(questions):
            raise RecordError(Source(str(root / name)), None,
                              f"{len(rows)} rows, but {QUESTIONS} has {len(questions)}; the files align by position")
    for i, (src, obj, raw) in enumerate(questions):
        if isinstance(obj, dict):
            obj = {k: obj[k] for k in _QUESTION_KEYS if k in obj}
            for name, rows in extra.items():
                row_src, row = rows[i]
                if "question_id" in row and "question_id" in obj and row["question_id"] != obj["question_id"]:
                    obj = RecordError(row_src, "question_id", f"{row['question_id']!r} does not match "
                                                              f"{obj['question_id']!r} at {src}")
                    break
                if name == GPT4:
                    obj["text"] = row.get("text")
                elif name == GPT4_WITH_REFERENCE:
                    obj["text_w_reference"] = row.get("text")
                else:
                    obj["reference"] = row.get("reference")
            else:
                obj["subset"] = "judgelm_val"
        yield src, obj, raw


def load_judgelm_val(root: str | Path, skip_invalid: bool = False) -> Loaded:
    root = Path(root)
    for name in (QUESTIONS, GPT4):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} not found: give the directory holding JudgeLM-100K's val files "
                                    f"(judgelm_val:/path/to/dir)")
    return load_objects(_joined(root), record_from_judgelm, skip_invalid)
