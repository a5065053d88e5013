"""Question sets to generate answers for: a small registry by name, or the user's file.

Adding a benchmark is one row of ``QUESTION_SETS``: a loader and what the benchmark's reference scripts generate
with (max new tokens, a temperature per category where they publish one, a system prompt where they use one), the
answers shipped with its questions (a baseline to compare against) and the format its answers are exported in.

- ``alpaca_eval``: AlpacaEval's 805 instructions, from the shipped annotation files
  (``data/evaluation/alpaca_eval``), with ``gpt4_1106_preview``'s answers as the baseline; ids are positions, as
  ``judgelm.data.answers`` gives them.
- ``mt_bench``: MT-Bench's 80 two-turn questions (``data/evaluation/mt_bench``) with their categories and GPT-4's
  reference answers, sampled at FastChat's temperature per category.
- ``arena-hard`` (v2.0) and ``arena-hard-v0.1``: Arena-Hard-Auto's prompts (``data/evaluation/arena_hard``), judged
  with ``judge.profile=arena-hard`` against the version's baseline (o3-mini-2025-01-31, gpt-4-0314). v2.0's 250
  creative-writing prompts are left out: their baseline (gemini-2.0-flash-001) is not shipped, and without it they
  cannot be judged as the authors judge them; the 500 hard prompts remain.
- a file: JSONL or a JSON list, one question per row: ``question_id`` and ``turns`` (FastChat's layout), or
  ``instruction`` (AlpacaEval's, the id then being the row's position); optional ``category`` (or ``dataset``) and
  ``reference`` (one string, or one per turn).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from judgelm.config import REPO_ROOT, ConfigError
from judgelm.data import arena_hard
from judgelm.data.answers import load_answers
from judgelm.data.pairing import spread_indices
from judgelm.data.records import RecordError, Source, iter_dicts, optional_text, require_id, require_text

EVALUATION_DIR = REPO_ROOT / "data" / "evaluation"
# One annotation file holds all 805 instructions and the baseline's answer to each (every file has the same).
ALPACA_EVAL_ANSWERS = f"alpaca_eval_annotations:{EVALUATION_DIR / 'alpaca_eval' / 'alpaca-7b' / 'annotations.json'}"
MT_BENCH_DIR = EVALUATION_DIR / "mt_bench"
# FastChat's ``temperature_config`` (fastchat/llm_judge/common.py), which gen_model_answer.py samples MT-Bench with.
FASTCHAT_TEMPERATURES = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
                         "reasoning": 0.0, "stem": 0.1, "humanities": 0.1}


@dataclass(frozen=True)
class Question:
    """One question: its user turns, in order, and the reference answer of each turn where there is one."""

    question_id: int | str
    turns: tuple[str, ...]
    category: str = ""
    references: tuple[str, ...] = ()  # per turn; empty when the question has none


@dataclass(frozen=True)
class QuestionSet:
    """A registry row: where the questions are and how the benchmark generates and compares answers."""

    name: str
    load: Callable[[], list[Question]]
    max_new_tokens: int
    """What the benchmark's reference scripts generate at most (``engine.max_new_tokens=0`` takes it)."""
    temperatures: Mapping[str, float] = field(default_factory=dict)
    """Temperature by category, where the benchmark publishes one (``generate.category_temperatures``)."""
    system_prompt: str = ""
    """The benchmark's system message, where it has one."""
    answer_format: str = "fastchat"
    """The format (``judgelm.data.answers``) a run's answers are read back in by ``make evaluate``."""
    answers: str = ""
    """``FORMAT:PATH`` of answers shipped with the questions, for ``make evaluate`` to compare against."""
    baseline: str = ""
    """The model of ``answers`` that ``make evaluate`` compares every generated model against by default."""
    judge_profile: str = ""
    """The judge profile the benchmark's answers are judged with (empty: any, ``judge.profile``'s)."""
    judge_max_new_tokens: int = 0
    """The benchmark judge's token budget, taken by ``make evaluate`` unless ``engine.max_new_tokens`` is given."""
    note: str = ""
    """Printed when the set is used: what of the benchmark it leaves out, and why."""


def _alpaca_eval() -> list[Question]:
    data = load_answers(ALPACA_EVAL_ANSWERS)
    return [Question(q.question_id, q.turns, q.category) for q in data.questions.values()]


def _reference_turns(obj: dict, src: Source, key: str) -> tuple[str, ...]:
    ref = obj.get(key)
    if ref is None:
        return ()
    ref = [ref] if isinstance(ref, str) else ref
    if not isinstance(ref, list) or not all(isinstance(t, str) for t in ref):
        raise RecordError(src, key, "expected a string or a list of strings")
    return tuple(ref)


def _turns(obj: dict, src: Source) -> tuple[str, ...]:
    if "turns" in obj:
        turns = obj["turns"]
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
            raise RecordError(src, "turns", "expected a non-empty list of non-empty strings")
        return tuple(turns)
    key = "instruction" if "instruction" in obj else "question"
    return (require_text(obj, key, src),)


def read_question_file(path: str | Path) -> list[Question]:
    """Questions of a JSONL/JSON file (the module docs give the fields); ids must be unique."""
    out, seen = [], {}
    for n, (src, obj) in enumerate(iter_dicts(path)):
        if "turns" not in obj and "instruction" in obj and "question_id" not in obj:
            qid: int | str = n  # AlpacaEval's files have no ids: the position, as judgelm.data.answers reads them
        else:
            qid = require_id(obj, "question_id", src)
        if str(qid) in seen:
            raise RecordError(src, "question_id", f"{qid!r} was already used at {seen[str(qid)]}")
        seen[str(qid)] = src
        category = optional_text(obj, "category", src) or optional_text(obj, "dataset", src) or ""
        out.append(Question(qid, _turns(obj, src), category, _reference_turns(obj, src, "reference")))
    return out


def _mt_bench() -> list[Question]:
    """The questions, with GPT-4's reference answers (``reference_answer/gpt-4.jsonl``) where FastChat has them."""
    refs = {}
    for src, obj in iter_dicts(MT_BENCH_DIR / "reference_answer" / "gpt-4.jsonl"):
        choices = obj.get("choices")
        refs[str(require_id(obj, "question_id", src))] = _reference_turns(choices[0], src, "turns")
    return [Question(q.question_id, q.turns, q.category, refs.get(str(q.question_id), q.references))
            for q in read_question_file(MT_BENCH_DIR / "question.jsonl")]


def _arena_hard(version: str) -> list[Question]:
    keep = arena_hard.version(version).categories
    return [Question(q.question_id, q.turns, q.category) for q in arena_hard.questions(version) if q.category in keep]


def _arena_hard_set(name: str, version: str, note: str = "") -> QuestionSet:
    v = arena_hard.version(version)
    # arena-hard-auto's config/api_config.yaml generates with max_tokens 4096 (its non-reasoning models), greedy.
    return QuestionSet(name, lambda: _arena_hard(version), max_new_tokens=4096,
                       answers=f"arena_hard:{arena_hard.bench_dir(version) / 'model_answer' / (v.baseline + '.jsonl')}",
                       baseline=v.baseline, judge_profile=v.profile, judge_max_new_tokens=v.judge_max_new_tokens,
                       note=note)


QUESTION_SETS: dict[str, QuestionSet] = {
    # alpaca_eval's model configs generate up to 2048 new tokens, greedy or at their model's own temperature.
    "alpaca_eval": QuestionSet("alpaca_eval", _alpaca_eval, max_new_tokens=2048, answer_format="alpaca_eval",
                               answers=ALPACA_EVAL_ANSWERS, baseline="gpt4_1106_preview"),
    # FastChat's gen_model_answer.py: --max-new-token 1024, temperature by category.
    "mt_bench": QuestionSet("mt_bench", _mt_bench, max_new_tokens=1024, temperatures=FASTCHAT_TEMPERATURES),
    "arena-hard": _arena_hard_set("arena-hard", "v2.0", note=(
        "arena-hard (v2.0): its 500 hard prompts; its 250 creative-writing prompts are left out, as their baseline "
        "(gemini-2.0-flash-001) is not shipped")),
    "arena-hard-v0.1": _arena_hard_set("arena-hard-v0.1", "v0.1"),
}
FILE_MAX_NEW_TOKENS = 1024  # a user's file: FastChat's default


def question_set(source: str) -> QuestionSet:
    """The registry row named ``source``, or a row for the user's file."""
    if source in QUESTION_SETS:
        return QUESTION_SETS[source]
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"questions.source={source}: neither a question set ({', '.join(QUESTION_SETS)}) nor a "
                          f"file")
    return QuestionSet(str(path.resolve()), lambda: read_question_file(path), max_new_tokens=FILE_MAX_NEW_TOKENS)


def load_questions(qs: QuestionSet, limit: int = 0) -> list[Question]:
    """The set's questions, ``limit`` of them spread evenly (0: all), so a quick run samples every category."""
    questions = qs.load()
    if not questions:
        raise ConfigError(f"questions.source={qs.name}: no questions")
    return [questions[i] for i in spread_indices(len(questions), limit)]
