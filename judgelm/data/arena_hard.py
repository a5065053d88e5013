"""Arena-Hard-Auto's shipped versions (``data/evaluation/arena_hard``): their questions and baseline answers.

For answer generation (``QUESTIONS=arena-hard``) and evaluation: ``questions(version)`` are the prompts a model
answers, ``baseline_answers(version)`` the answers of the version's baseline model that every model is judged
against, as an ``AnswerSet`` to merge with the generated answers. v2.0's creative-writing prompts are judged
against gemini-2.0-flash-001 with their own system prompt (``judge.profile=arena-hard-creative``); that baseline's
answers are not in the shipped snapshot, so only the hard prompts (``Version.categories``) can be judged as the
authors judge them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from judgelm.data.answers import AnswerSet, Question, arena_hard_questions, load_answers

ARENA_HARD_DIR = Path(__file__).resolve().parents[2] / "data" / "evaluation" / "arena_hard"


@dataclass(frozen=True)
class Version:
    folder: str
    baseline: str
    categories: tuple[str, ...]
    """The questions judged against ``baseline`` with ``profile``, by ``category``."""
    judge_max_new_tokens: int
    """The judge's ``max_tokens`` in the version's ``config/arena-hard-v*.yaml``."""
    profile: str = "arena-hard"


VERSIONS = {
    "v0.1": Version("arena-hard-v0.1", "gpt-4-0314", ("arena-hard-v0.1",), 4096),
    "v2.0": Version("arena-hard-v2.0", "o3-mini-2025-01-31", ("hard_prompt",), 16000),
}


def version(name: str) -> Version:
    if name not in VERSIONS:
        raise ValueError(f"Arena-Hard-Auto version {name!r} is not one of: {', '.join(VERSIONS)}")
    return VERSIONS[name]


def bench_dir(name: str, root: Path = ARENA_HARD_DIR) -> Path:
    return root / version(name).folder


def questions(name: str, root: Path = ARENA_HARD_DIR) -> list[Question]:
    """The version's prompts in file order (``question_id`` is Arena-Hard's ``uid``)."""
    out = AnswerSet()
    arena_hard_questions(bench_dir(name, root) / "question.jsonl", out)
    return list(out.questions.values())


def baseline_answers(name: str, root: Path = ARENA_HARD_DIR) -> AnswerSet:
    """The version's questions with its baseline model's answers."""
    v = version(name)
    return load_answers(f"arena_hard:{bench_dir(name, root) / 'model_answer' / (v.baseline + '.jsonl')}")
