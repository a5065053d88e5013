"""RocketEval's checklists as a generation run (``make checklists``): a model answers, per question, RocketEval's
checklist-creation prompt, and the run's export parses the items into the file ``evaluate.checklists`` reads.

Each question becomes one prompt, ``judgelm.profiles.rocketeval.checklist_prompt(question, reference)``
(RocketEval's ``create.md``, byte for byte), sent as one user turn, as RocketEval sends it. The reference is the
question's own reference answer where it has one (MT-Bench's GPT-4 answers, a file's ``reference``), else the
set's baseline answer (AlpacaEval's GPT-4 Turbo, Arena-Hard's baseline), as RocketEval uses GPT-4's response; a
question with neither is left out and counted. A multi-turn question gets a checklist for its first turn (the one
``judge.profile=rocketeval`` grades, with ``prompt.turns=1``). Everything else is an ordinary generation run:
shards, resume, the answer cache (a checklist is cached under its prompt like any answer), every backend.

The export reads each generated text with ``judgelm.data.checklists.parse_generated`` (RocketEval's parser). A text
with no item it can read (no numbered line ending in ``?``) gives no checklist: the question is counted as
unparsed and left out of the file, never filled in.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from judgelm.data.answers import load_answers
from judgelm.data.checklists import parse_generated, write_checklists
from judgelm.data.records import iter_dicts
from judgelm.generation.questions import Question, QuestionSet
from judgelm.generation.store import TOO_LONG, AnswerStore
from judgelm.profiles.rocketeval import checklist_prompt
from judgelm.rundir import write_text_atomic

log = logging.getLogger("judgelm.generation.checklists")
CHECKLIST_FILE = "checklists.jsonl"
SOURCES_FILE = "checklist_questions.jsonl"  # per prompt: the question it was made from, and its reference's source
TASK = "checklists"


def baseline_answers(qset: QuestionSet) -> dict[str, str]:
    """The set's baseline answer to each question (first turn), by question id."""
    if not (qset.answers and qset.baseline):
        return {}
    data = load_answers(qset.answers)
    return {k: a[qset.baseline][0] for k, a in data.answers.items() if qset.baseline in a}


def checklist_questions(qset: QuestionSet, questions: list[Question]) -> tuple[list[Question], list[dict]]:
    """Each question replaced by its checklist-creation prompt (same id and category), and per prompt its source
    row (``question_id``, ``question``, ``reference``: which answer served as the reference). Questions without a
    reference are left out, with a log line that counts them."""
    baseline = baseline_answers(qset)
    prompts, sources, missing = [], [], 0
    for q in questions:
        own = q.references[0] if q.references and q.references[0].strip() else ""
        reference = own or baseline.get(str(q.question_id), "")
        if not reference.strip():
            missing += 1
            continue
        prompts.append(Question(q.question_id, (checklist_prompt(q.turns[0], reference).user,), q.category))
        sources.append({"question_id": q.question_id, "question": q.turns[0],
                        "reference": "question" if own else qset.baseline})
    if missing:
        log.warning("%d of %d questions have no reference answer (neither their own nor the baseline's): no "
                    "checklist is made for them", missing, len(questions))
    if any(len(q.turns) > 1 for q in questions):
        log.info("multi-turn questions: checklists are made for their first turn (grade it with prompt.turns=1)")
    return prompts, sources


def write_sources(root: Path, sources: list[dict]) -> None:
    write_text_atomic(root / SOURCES_FILE, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in sources))


def export_checklists(store: AnswerStore, root: Path) -> list[str]:
    """Parse every committed first answer into a checklist and write ``checklists.jsonl`` (keyed by question text
    for sets whose ids are positions, AlpacaEval's; else by id); returns the summary's lines."""
    from judgelm.judging.run import is_tiny_judge  # imports torch, which exporting and `make status` need not

    sources = {str(obj["question_id"]): obj for _, obj in iter_dicts(root / SOURCES_FILE)}
    ids, done = store.question_ids(), store.done()
    question, sample = store.units("question"), store.units("sample")
    text, finish = store.answers("text")[:, 0], store.answers("finish")[:, 0]
    by_text = store.attrs.get("answer_format") == "alpaca_eval"
    rows: dict[str, list[str]] = {}
    unparsed, too_long = [], 0
    for u in np.flatnonzero(done & (sample == 0)):
        qid = ids[int(question[u])]
        items = parse_generated(str(text[u]))
        if items:
            rows[sources[str(qid)]["question"] if by_text else qid] = items
        else:
            unparsed.append(str(qid))
            too_long += int(finish[u] == TOO_LONG)
    write_checklists(root / CHECKLIST_FILE, rows, key="question" if by_text else "question_id")
    n_items = sum(len(v) for v in rows.values())
    lines = [f"Checklists: {len(rows)} of {int((done & (sample == 0)).sum())} questions have one ({n_items} items"
             + (f", {n_items / len(rows):.1f} per question" if rows else "") + f") in {root / CHECKLIST_FILE}."]
    if unparsed:
        lines.append(f"{len(unparsed)} generated texts have no item RocketEval's parser reads (a numbered line "
                     f"ending in '?'; {too_long} of them: prompt longer than the context): those questions are "
                     f"left out, never filled in (first: {', '.join(unparsed[:5])}).")
    if is_tiny_judge(store.attrs["model"]):
        lines.append(f"Note: {store.attrs['model_id']} is a toy model (under 100M parameters) built on this machine: "
                     "its checklists prove that the pipeline works, not that they are any good; a strong model "
                     "writes them (engine.backend=openai).")
    return lines
