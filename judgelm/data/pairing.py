"""Which comparisons a model evaluation makes, as ordinary judging ``Record``s with the generator of each answer.

- ``vs-baseline``: per question, every model against the baseline model; the baseline's answer is in slot 1 (as
  AlpacaEval's ``output_1``), and the unit plan's ``orders=both`` adds the swapped order.
- ``all-pairs``: per question, every pair of models (in sorted name order), or at most ``budget`` pairs drawn per
  question with a fixed seed; both orders again come from the unit plan.
- ``single``: one record per (question, model) for JudgeLM's single-answer mode, which puts a gold answer in slot
  1, pre-scored 10, and reads the score of slot 2. The gold answer is the question's reference (also the record's
  reference, so a profile that shows one, like MT-Bench's ``single-math-v1``, can); a question without one uses the
  baseline model's answer as the anchor when a baseline is given (a score relative to that model), and is an error
  otherwise.

- ``checklist``: RocketEval's grading, one single-answer record per (question, model, checklist item): slot 1 holds
  the item (its generator named ``checklist:K``, K the item's position), slot 2 the model's answer. Questions
  without a checklist are not graded.

A question is judged for the models that answered it; a model without an answer to it is simply not paired there
(the leaderboard counts each model's comparisons, ``n_total``). A multi-turn question (MT-Bench's two turns) makes
multi-turn records, every turn judged; a model that answered fewer turns than the question has is an error, unless
the answers are cut to their first turns first (``AnswerSet.first_turns``, ``prompt.turns``).
"""

from __future__ import annotations

import itertools

import numpy as np

from judgelm.data.answers import AnswerSet, Question, Turns
from judgelm.data.checklists import Checklists
from judgelm.data.records import Record, Turn

PAIRINGS = ("vs-baseline", "all-pairs", "single", "checklist")
REFERENCE_MODEL = "reference"  # the name of the gold slot in single-answer records that use the reference
CHECKLIST_ITEM = "checklist:"  # + the item's position: the name of the slot-1 "answer" of a checklist record


def spread_indices(n: int, limit: int) -> list[int]:
    """``limit`` of the positions ``0..n-1`` evenly spread (0 or at least ``n``: all of them)."""
    if not limit or limit >= n:
        return list(range(n))
    return [int(i) for i in np.unique(np.linspace(0, n - 1, limit).round().astype(int))]


def spread_questions(data: AnswerSet, limit: int) -> AnswerSet:
    """``limit`` questions evenly spread over ``data`` (0: all), so a quick evaluation still samples every part of a
    data set ordered by source (AlpacaEval's 805 instructions are grouped by ``dataset``)."""
    keys = list(data.questions)
    if not limit or limit >= len(keys):
        return data
    keep = [keys[i] for i in spread_indices(len(keys), limit)]
    return AnswerSet({k: data.questions[k] for k in keep}, {k: data.answers[k] for k in keep})


def conversation(q: Question, models: tuple[str, str], answers: tuple[Turns, Turns],
                 references: Turns | None) -> Record:
    """The record of two answers (in slot order) to every turn of ``q``."""
    n = len(q.turns)
    for model, turns in zip(models, answers):
        if len(turns) < n:
            raise ValueError(f"model {model!r} answered {len(turns)} of the {n} turns of question {q.question_id!r}; "
                             f"give an answer to every turn, or judge only the first {len(turns)} with "
                             f"prompt.turns={len(turns)}")
    if references is not None and len(references) < n:
        raise ValueError(f"the reference answer of question {q.question_id!r} has {len(references)} of its {n} turns")
    turns = [Turn(q.turns[t], (answers[0][t], answers[1][t]), references and references[t]) for t in range(n)]
    return Record(question_id=q.question_id, question=q.text, answers=turns[0].answers, reference=turns[0].reference,
                  category=q.category, models=models, later_turns=tuple(turns[1:]))


def _record(q: Question, a: str, b: str, answers: dict[str, Turns]) -> Record:
    return conversation(q, (a, b), (answers[a], answers[b]), q.references)


def vs_baseline(data: AnswerSet, baseline: str, models: list[str]) -> list[Record]:
    out = []
    for key, q in data.questions.items():
        answers = data.answers[key]
        if baseline not in answers:
            continue
        out += [_record(q, baseline, m, answers) for m in models if m != baseline and m in answers]
    return out


def all_pairs(data: AnswerSet, models: list[str], budget: int = 0, seed: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    for key, q in data.questions.items():
        answers = data.answers[key]
        pairs = list(itertools.combinations(sorted(m for m in models if m in answers), 2))
        if budget and len(pairs) > budget:
            pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), size=budget, replace=False))]
        out += [_record(q, a, b, answers) for a, b in pairs]
    return out


def single(data: AnswerSet, models: list[str], baseline: str = "") -> list[Record]:
    out = []
    for key, q in data.questions.items():
        answers = data.answers[key]
        if q.references is not None:
            gold, gold_name = q.references, REFERENCE_MODEL
        elif baseline and baseline in answers:
            gold, gold_name = answers[baseline], baseline
        else:
            raise ValueError(f"question {q.question_id!r} has no reference answer for single-answer grading; "
                             "give evaluate.baseline=MODEL to grade against that model's answer instead")
        out += [conversation(q, (gold_name, m), (gold, answers[m]), q.references)
                for m in models if m in answers and m != gold_name]
    return out


def checklist(data: AnswerSet, models: list[str], checklists: Checklists) -> list[Record]:
    """One single-answer record per (question, model, item). The item fills slot 1 of every turn, so a conversation
    keeps its turns and the profile refuses it: RocketEval grades one turn (``prompt.turns=1`` grades the first)."""
    out = []
    for key, q in data.questions.items():
        items = checklists.of(q.question_id, q.text) or []
        answers = data.answers[key]
        out += [conversation(q, (f"{CHECKLIST_ITEM}{k}", m), ((item,) * len(q.turns), answers[m]), None)
                for m in models if m in answers for k, item in enumerate(items)]
    return out


def item_index(slot1_models: np.ndarray) -> np.ndarray:
    """The checklist item position of each checklist record, from its slot-1 name (``checklist:K``)."""
    return np.array([int(str(m).removeprefix(CHECKLIST_ITEM)) for m in slot1_models], dtype=np.int64)


def pair_records(data: AnswerSet, pairing: str, baseline: str = "", models: list[str] | None = None,
                 budget: int = 0, seed: int = 0, checklists: Checklists | None = None) -> list[Record]:
    """The records of a ``pairing`` over ``models`` (default: every model in ``data``)."""
    models = sorted(models or data.models)
    unknown = sorted(set(models) - set(data.models)) + ([baseline] if baseline and baseline not in data.models else [])
    if unknown:
        raise ValueError(f"models {unknown} have no answers; the answers hold {data.models}")
    if pairing == "vs-baseline":
        if not baseline:
            raise ValueError("pairing vs-baseline needs evaluate.baseline=MODEL")
        records = vs_baseline(data, baseline, models)
    elif pairing == "all-pairs":
        records = all_pairs(data, models, budget, seed)
    elif pairing == "single":
        records = single(data, models, baseline)
    elif pairing == "checklist":
        if checklists is None:
            raise ValueError("pairing checklist needs evaluate.checklists=FILE (a checklist per question)")
        records = checklist(data, models, checklists)
    else:
        raise ValueError(f"evaluate.pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
    if not records:
        raise ValueError(f"pairing {pairing} makes no comparison: no question has answers from the models needed")
    return records
