"""Prometheus absolute-grading sets (Apache-2.0, see data/benchmarks/prometheus/): 320 MT-Bench and 320 Vicuna-bench
answers, each with three GPT-4 rubric scores from 1 to 5, for single-answer grading (``prompt.mode=single``).

Each item's ``instruction`` is a whole Prometheus prompt; we cut it at its section headers into the instruction to
evaluate (the question), the response, and the reference answer that scores 5. JudgeLM's single-answer layout puts
the gold answer in slot 1 (pre-scored 10) and the tested one in slot 2, so the reference is answer 1, the response
answer 2, and the reference is also offered for the with-reference template, as JudgeLM's own single-answer script does.
The score rubric is left out: JudgeLM grades on its fixed criteria (helpfulness, relevance, accuracy, detail), so
the benchmark measures how well a general quality score tracks GPT-4's rubric score.

Ground truth: the mean of the three GPT-4 scores (``gt_scores``), scored by Pearson, Spearman and Kendall correlation
(``protocols.correlation``), per set. ``label`` is JudgeLM's win label of (gold, tested) on GPT-4's scale: 0 when
GPT-4 gave the full 5, else 1 (gold better); it keeps single-score records valid for the store's label columns.
Record ids are ``<set>/<idx>/<response model>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgelm.data.benchmarks.files import load_files
from judgelm.data.records import Loaded, Record, RecordError, Source, require_id, require_text

FILES = {"mt_bench": "mt_bench_eval.json", "vicuna": "vicuna_eval.json"}
MAX_SCORE = 5
_SECTIONS = ("###The instruction to evaluate:", "###Response to evaluate:", "###Reference Answer (Score 5):",
             "###Score Rubrics:")


def split_prompt(prompt: str, src: Source) -> tuple[str, str, str]:
    """(instruction, response, reference answer) from a Prometheus absolute-grading prompt."""
    starts = []
    for header in _SECTIONS:
        if prompt.count(header) != 1:
            raise RecordError(src, "instruction", f"expected exactly one '{header}' section")
        starts.append(prompt.index(header))
    if starts != sorted(starts):
        raise RecordError(src, "instruction", "sections are out of order")
    parts = [prompt[s + len(h): e].strip() for s, h, e in zip(starts, _SECTIONS, starts[1:])]
    if not all(parts):
        raise RecordError(src, "instruction", "an instruction, response or reference section is empty")
    return parts[0], parts[1], parts[2]


def record_from_prometheus(obj: Any, src: Source, subset: str) -> Record:
    if not isinstance(obj, dict):
        raise RecordError(src, None, f"expected a JSON object, got {type(obj).__name__}")
    scores = obj.get("gpt4_score")
    if (not isinstance(scores, list) or not scores
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 1 <= s <= MAX_SCORE
                       for s in scores)):
        raise RecordError(src, "gpt4_score",
                          f"expected a non-empty list of scores from 1 to {MAX_SCORE}, got {scores!r}")
    question, response, reference = split_prompt(require_text(obj, "instruction", src), src)
    mean = sum(scores) / len(scores)
    model = require_text(obj, "response_source", src)
    return Record(question_id=f"{subset}/{require_id(obj, 'idx', src)}/{model}", question=question,
                  answers=(reference, response), reference=reference, label=1 if mean < MAX_SCORE else 0,
                  gt_scores=(mean,), subset=f"prometheus/{subset}", category=require_text(obj, "category", src))


def load_prometheus(root: str | Path, skip_invalid: bool = False) -> Loaded:
    return load_files({Path(root) / name: lambda obj, src, s=subset: record_from_prometheus(obj, src, s)
                       for subset, name in FILES.items()}, skip_invalid)
