"""A generation run's answers in the formats people use, written into the run directory when it ends.

- FastChat's llm_judge layout: ``model_answer/<model_id>.jsonl`` (``question_id``, ``answer_id``, ``model_id``,
  ``choices: [{index, turns}]`` with one choice per sample, ``tstamp``) next to ``question.jsonl`` (``question_id``,
  ``category``, ``turns``, ``reference`` where there is one), so the directory is what FastChat's tools read and
  ``evaluate.answers=[fastchat:runs/<run>]`` too.
- AlpacaEval's model outputs, ``alpaca_eval_outputs.json`` (single-turn sets): a JSON list of ``instruction``,
  ``output`` (the first sample), ``generator``, ``dataset``.

A turn whose prompt did not fit the model's context is exported as an empty answer (the summary counts them).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from judgelm.generation.checklists import TASK, export_checklists
from judgelm.generation.store import AnswerStore
from judgelm.inference.usage import total_usage
from judgelm.rundir import RunDir, write_text_atomic

ALPACA_EVAL_FILE = "alpaca_eval_outputs.json"
SUMMARY_FILE = "answers.md"


class IncompleteAnswers(ValueError):
    """Some chunks have no answers yet; the message names the shards that own them."""


def fastchat_answer_file(rd: RunDir, model_id: str) -> Path:
    return rd.root / "model_answer" / f"{model_id}.jsonl"


def _answer_id(model_id: str, question_id: int | str, config_hash: str) -> str:
    return hashlib.sha256(f"{model_id}\0{question_id}\0{config_hash}".encode()).hexdigest()[:22]


def question_rows(store: AnswerStore) -> list[dict]:
    """``question.jsonl``'s rows, FastChat's fields."""
    turns, n_turns, refs = store.questions("turns"), store.questions("n_turns"), store.questions("references")
    rows = []
    for i, (qid, category) in enumerate(zip(store.question_ids(), store.questions("category"))):
        row = {"question_id": qid, "category": str(category), "turns": list(turns[i][: n_turns[i]])}
        if any(refs[i]):
            row["reference"] = list(refs[i][: n_turns[i]])
        rows.append(row)
    return rows


def fastchat_rows(store: AnswerStore, placeholder: str | None = None) -> list[dict]:
    """One FastChat answer row per question that has all its samples committed, in question order. With
    ``placeholder``, every question gets it as the text of every turn, committed or not: the shape of the answers a
    run will have, to plan an evaluation before they exist."""
    model_id, config_hash = store.attrs["model_id"], store.attrs.get("config_hash", "")
    done, question, sample = store.done(), store.units("question"), store.units("sample")
    text, tstamp = store.answers("text"), store.answers("tstamp")
    n_turns = store.questions("n_turns")
    by_question: dict[int, dict[int, int]] = {}
    for u in np.flatnonzero(done if placeholder is None else np.ones_like(done)):
        by_question.setdefault(int(question[u]), {})[int(sample[u])] = int(u)
    ids, samples = store.question_ids(), store.attrs["samples"]
    rows = []
    for q in sorted(k for k, units in by_question.items() if len(units) == samples):
        units = [by_question[q][s] for s in range(samples)]
        choices = [{"index": s, "turns": [placeholder if placeholder is not None else str(t)
                                          for t in text[u][: n_turns[q]]]} for s, u in enumerate(units)]
        rows.append({"question_id": ids[q], "answer_id": _answer_id(model_id, ids[q], config_hash),
                     "model_id": model_id, "choices": choices, "tstamp": float(max(tstamp[units]))})
    return rows


def alpaca_eval_rows(store: AnswerStore, placeholder: str | None = None) -> list[dict]:
    """AlpacaEval's model outputs: the first sample's answer to each committed question."""
    turns, category = store.questions("turns"), store.questions("category")
    index = {qid: i for i, qid in enumerate(store.question_ids())}
    return [{"instruction": str(turns[index[r["question_id"]]][0]), "output": r["choices"][0]["turns"][0],
             "generator": r["model_id"], "dataset": str(category[index[r["question_id"]]])}
            for r in fastchat_rows(store, placeholder)]


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_answers(store: AnswerStore, root: Path, placeholder: str | None = None) -> str:
    """The store's answers in FastChat's layout under ``root`` and, for a single-turn set, AlpacaEval's outputs
    file; returns the ``FORMAT:PATH`` that reads them back in the set's format (``judgelm.data.answers``)."""
    model_id = store.attrs["model_id"]
    write_text_atomic(root / "question.jsonl", _jsonl(question_rows(store)))
    write_text_atomic(root / "model_answer" / f"{model_id}.jsonl", _jsonl(fastchat_rows(store, placeholder)))
    if store.n_turns == 1:
        write_text_atomic(root / ALPACA_EVAL_FILE, json.dumps(alpaca_eval_rows(store, placeholder), indent=2,
                                                              ensure_ascii=False) + "\n")
    if store.attrs.get("answer_format") == "alpaca_eval" and store.n_turns == 1:
        return f"alpaca_eval:{root / ALPACA_EVAL_FILE}"
    return f"fastchat:{root}"


def export_run(run_dir: str | Path, allow_partial: bool = False) -> str:
    """Write the answer files and ``answers.md`` into the run directory; returns the summary. Refuses an incomplete
    run (naming its shards) unless ``allow_partial``."""
    rd = RunDir(Path(run_dir))
    store = AnswerStore(rd.answer_store)
    n_shards = int(store.attrs["n_shards"])
    missing = store.incomplete_shards(n_shards)
    if missing and not allow_partial:
        raise IncompleteAnswers(f"run {store.attrs['run']}: shards {missing} of {n_shards} have chunks without "
                                f"answers")
    write_answers(store, rd.root)
    files = [f"{fastchat_answer_file(rd, store.attrs['model_id'])} (FastChat)", str(rd.root / "question.jsonl")]
    if store.n_turns == 1:
        files.append(f"{rd.root / ALPACA_EVAL_FILE} (AlpacaEval)")
    summary = summary_text(store, len(fastchat_rows(store)), files)
    if store.attrs.get("task") == TASK:
        summary += "\n" + "\n".join(export_checklists(store, rd.root)) + "\n"
    write_text_atomic(rd.root / SUMMARY_FILE, summary)
    return summary


def summary_text(store: AnswerStore, n_exported: int, files: list[str]) -> str:
    c, a = store.counts(), store.attrs
    lines = [f"# Answers: run {a['run']} (model {a['model_id']}, questions {Path(a['questions']).name})", "",
             f"{n_exported} of {store.n_questions} questions answered ({a['samples']} answer(s) each), "
             f"{c['turns']} turns: {c['from_cache']} from the answer cache, {c['turns'] - c['from_cache']} generated.",
             f"Ended on EOS: {c['stop']}; at max_new_tokens: {c['length']}; prompt longer than the context allows "
             f"(empty answer): {c['prompt_too_long']}."]
    usage = total_usage(store.path.parent)
    if usage is not None:
        lines.append(f"Server usage: {usage.requests} requests ({usage.retries} retries), {usage.prompt_tokens} "
                     f"prompt and {usage.completion_tokens} completion tokens, ${usage.cost_usd:.4f}.")
    return "\n".join(lines + ["", "Files:", *(f"- {f}" for f in files)]) + "\n"
