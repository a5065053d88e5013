"""The answers an evaluation judges once its models have generated them (``make evaluate MODELS=…``).

Each generation run's answers are read back through the formats people exchange answers in (FastChat's
``model_answer/<model>.jsonl`` directory, or AlpacaEval's outputs file for a set keyed by instruction, as
AlpacaEval's is), together with the answers shipped with the questions (the baseline's), by the same loaders
``evaluate.answers`` uses (``judgelm.data.answers``). Before the answers exist, the same files written with a
placeholder text give the evaluation's exact shape (which comparisons, how many units), so its judging array can be
sized and submitted at once, depending on the generation arrays.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from judgelm.data.answers import AnswerSet, load_answers
from judgelm.generation.export import write_answers
from judgelm.generation.store import AnswerStore
from judgelm.rundir import RunDir

PLACEHOLDER = "(answer not generated yet)"


def generation_runs(rd: RunDir) -> list[RunDir]:
    """An evaluation's generation runs (``<run>/generated/<model>/``), in model order."""
    if not rd.generated.is_dir():
        return []
    return [RunDir(p) for p in sorted(rd.generated.iterdir()) if (p / "answers.zarr").exists()]


def model_ids(runs: list[RunDir]) -> list[str]:
    return [AnswerStore(r.answer_store).attrs["model_id"] for r in runs]


def evaluation_answers(answer_specs: list[str], runs: list[RunDir], planning: bool = False) -> AnswerSet:
    """The shipped answers and every run's, on the questions the runs answered. ``planning``: the runs' answers
    are not there yet; a placeholder stands for each, which gives the comparisons their exact shape."""
    with tempfile.TemporaryDirectory(prefix="judgelm-plan-") as tmp:
        specs = [write_answers(AnswerStore(r.answer_store), Path(tmp) / f"{k}" if planning else r.root,
                               PLACEHOLDER if planning else None) for k, r in enumerate(runs)]
        data = load_answers([*answer_specs, *specs])
    generated = set(model_ids(runs))
    keep = [k for k, per_question in data.answers.items() if generated & set(per_question)]
    return AnswerSet({k: data.questions[k] for k in keep}, {k: data.answers[k] for k in keep})


def answer_counts(runs: list[RunDir]) -> dict[str, int]:
    """Answer turns of the runs, and how many of them came from the answer cache, for the run summary."""
    counts = [AnswerStore(r.answer_store).counts() for r in runs]
    return {"answers": sum(c["turns"] for c in counts), "answers_from_cache": sum(c["from_cache"] for c in counts)}
