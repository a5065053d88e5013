"""Answers of many models to the same questions, from the formats people keep them in.

``load_answers(spec)`` reads ``FORMAT:PATH[,PATH...]`` (each path may be a glob):

- ``fastchat``: a FastChat llm_judge directory: ``question.jsonl`` (``question_id``, ``turns``, ``category``,
  optional ``reference``), ``model_answer/<model>.jsonl`` (``question_id``, ``choices[0].turns``; the model is the
  file's stem, as in FastChat) and optional ``reference_answer/*.jsonl`` (same layout, the reference answers).
  Every turn is read: MT-Bench's questions have two, each judged as its own unit (``judgelm.judging.units``). As
  FastChat's ``gen_judgment.py``, only questions of the categories that need a reference (``NEED_REF_CATS``: math,
  reasoning, coding) get one: the reference answer file's turns, or else the question's own ``reference`` list.
- ``alpaca_eval``: AlpacaEval model outputs, a JSON list of ``instruction``, ``output``, ``generator`` (optional
  ``dataset``, used as the category).
- ``alpaca_eval_annotations``: AlpacaEval annotation files (``instruction``, ``output_1``/``generator_1``,
  ``output_2``/``generator_2``, ``dataset``); both answers of each row are taken.
- ``judgelm``: JudgeLM-format pairs with ``answer1_model_id`` / ``answer2_model_id`` naming the generators.
- ``generic``: JSONL rows of ``question_id``, ``question``, ``model``, ``answer`` (optional ``category``,
  ``reference``).
- ``arena_hard``: Arena-Hard-Auto answer files (``model_answer/<model>.jsonl``: ``uid``, ``model``, ``messages``
  whose last turn's ``content.answer`` is the answer), with the questions of the ``question.jsonl`` beside their
  ``model_answer/`` folder (``uid``, ``prompt``, ``category``); a benchmark folder (holding ``question.jsonl`` and
  ``model_answer/``) reads all its answers.

AlpacaEval files have no question ids: an instruction's id is its position among the distinct instructions, in
the order first read. Every problem raises ``RecordError`` naming the file, line and field, as records do: a
missing field, two different texts for one question id, two different answers of one model to one question
(the same answer read twice, like the baseline's in every AlpacaEval annotation file, is fine), or an answer with
more turns than its question. An answer with fewer turns is kept: pairing refuses it unless only the first turns
are judged (``prompt.turns``).
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from judgelm.data.records import RecordError, Source, iter_dicts, optional_text, require_id, require_text


NEED_REF_CATS = ("math", "reasoning", "coding")  # FastChat's llm_judge/common.py: judged with a reference answer
Turns = tuple[str, ...]


@dataclass(frozen=True)
class Question:
    """A question: the user's turns (one outside multi-turn benchmarks) and the reference reply to each."""

    question_id: int | str
    turns: Turns
    category: str = ""
    references: Turns | None = None

    @property
    def text(self) -> str:
        return self.turns[0]

    @property
    def reference(self) -> str | None:
        return self.references[0] if self.references else None


@dataclass
class AnswerSet:
    """Questions (in the order first read) and, per question, each model's answer: its reply to every turn."""

    questions: dict[str, Question] = field(default_factory=dict)
    answers: dict[str, dict[str, Turns]] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return sorted({m for per_question in self.answers.values() for m in per_question})

    def add_question(self, q: Question, src: Source, text_field: str) -> str:
        key = str(q.question_id)
        old = self.questions.get(key)
        if old is None:
            self.questions[key] = q
            self.answers.setdefault(key, {})
        elif old.turns != q.turns:
            raise RecordError(src, text_field, f"question {q.question_id!r} was read before with another text")
        elif q.references is not None and old.references is None:
            self.questions[key] = replace(old, category=old.category or q.category, references=q.references)
        return key

    def add_answer(self, key: str, model: str, turns: Turns, src: Source, answer_field: str) -> None:
        if key not in self.questions:
            raise RecordError(src, "question_id", f"{key!r} is not a question of the data")
        asked = len(self.questions[key].turns)
        if len(turns) > asked:
            raise RecordError(src, answer_field, f"{len(turns)} turns, but question {key!r} has {asked}")
        old = self.answers[key].get(model)
        if old is not None and old != turns:
            raise RecordError(src, answer_field, f"a second, different answer of {model!r} to question {key!r}")
        self.answers[key][model] = turns

    def first_turns(self, n: int) -> AnswerSet:
        """The questions and answers cut to their first ``n`` turns."""
        questions = {k: replace(q, turns=q.turns[:n], references=q.references and q.references[:n])
                     for k, q in self.questions.items()}
        return AnswerSet(questions, {k: {m: a[:n] for m, a in per.items()} for k, per in self.answers.items()})


def _turns(obj: dict, src: Source, key: str, allow_empty: bool) -> Turns:
    """``obj[key]``'s turns: ``turns`` directly, or FastChat's ``choices[0].turns``; every one a string, non-empty
    unless ``allow_empty`` (an empty answer is real data, as in judging records)."""
    if key == "choices":
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise RecordError(src, "choices", "expected a non-empty list of objects with 'turns'")
        obj, key = choices[0], "choices[0].turns"
    turns = obj.get("turns")
    if not isinstance(turns, list) or not turns:
        raise RecordError(src, key, "expected a non-empty list of strings, one per turn")
    for k, t in enumerate(turns):
        if not isinstance(t, str) or not (allow_empty or t.strip()):
            raise RecordError(src, f"{key}[{k}]", "expected a string" if not isinstance(t, str) else "empty")
    return tuple(turns)


def _fastchat(path: Path, out: AnswerSet) -> None:
    questions = path / "question.jsonl"
    if not questions.is_file():
        raise FileNotFoundError(f"{path}: no question.jsonl (expected a FastChat llm_judge data directory)")
    for src, obj in iter_dicts(questions):
        q = Question(require_id(obj, "question_id", src), _turns(obj, src, "turns", allow_empty=False),
                     optional_text(obj, "category", src) or "")
        ref = obj.get("reference")
        if q.category in NEED_REF_CATS and isinstance(ref, list) and ref and all(isinstance(r, str) for r in ref):
            q = replace(q, references=tuple(ref))
        out.add_question(q, src, "turns")
    for ref_file in sorted((path / "reference_answer").glob("*.jsonl")):
        for src, obj in iter_dicts(ref_file):
            q = out.questions.get(str(require_id(obj, "question_id", src)))
            # Reference files cover the whole benchmark, the questions may be fewer; FastChat judges only the
            # categories in NEED_REF_CATS with a reference.
            if q is not None and q.category in NEED_REF_CATS:
                out.questions[str(q.question_id)] = replace(q, references=_turns(obj, src, "choices", False))
    answer_files = sorted((path / "model_answer").glob("*.jsonl"))
    if not answer_files:
        raise FileNotFoundError(f"{path}: no model_answer/<model>.jsonl files")
    for answer_file in answer_files:
        for src, obj in iter_dicts(answer_file):
            key = str(require_id(obj, "question_id", src))
            out.add_answer(key, answer_file.stem, _turns(obj, src, "choices", allow_empty=True), src,
                           "choices[0].turns")


class _InstructionIds:
    """Ids for files keyed by instruction text: the instruction's position among those read so far."""

    def __init__(self, out: AnswerSet):
        self.out = out
        self.by_text = {q.text: key for key, q in out.questions.items()}

    def key(self, obj: dict, src: Source) -> str:
        text = require_text(obj, "instruction", src)
        if text not in self.by_text:
            q = Question(len(self.out.questions), (text,), optional_text(obj, "dataset", src) or "")
            self.by_text[text] = self.out.add_question(q, src, "instruction")
        return self.by_text[text]


def _alpaca_eval(path: Path, out: AnswerSet) -> None:
    ids = _InstructionIds(out)
    for src, obj in iter_dicts(path):
        out.add_answer(ids.key(obj, src), require_text(obj, "generator", src),
                       (require_text(obj, "output", src, allow_empty=True),), src, "output")


def _alpaca_eval_annotations(path: Path, out: AnswerSet) -> None:
    ids = _InstructionIds(out)
    for src, obj in iter_dicts(path):
        key = ids.key(obj, src)
        for k in (1, 2):
            out.add_answer(key, require_text(obj, f"generator_{k}", src),
                           (require_text(obj, f"output_{k}", src, allow_empty=True),), src, f"output_{k}")


def _judgelm(path: Path, out: AnswerSet) -> None:
    for src, obj in iter_dicts(path):
        ref = obj.get("reference")
        ref = ref.get("text") if isinstance(ref, dict) else ref
        q = Question(require_id(obj, "question_id", src), (require_text(obj, "question_body", src),),
                     optional_text(obj, "category", src) or "",
                     (ref,) if isinstance(ref, str) and ref.strip() else None)
        key = out.add_question(q, src, "question_body")
        for k in (1, 2):
            out.add_answer(key, str(require_id(obj, f"answer{k}_model_id", src)),
                           (require_text(obj, f"answer{k}_body", src),), src, f"answer{k}_body")


def _generic(path: Path, out: AnswerSet) -> None:
    for src, obj in iter_dicts(path):
        ref = optional_text(obj, "reference", src)
        q = Question(require_id(obj, "question_id", src), (require_text(obj, "question", src),),
                     optional_text(obj, "category", src) or "", (ref,) if ref and ref.strip() else None)
        key = out.add_question(q, src, "question")
        out.add_answer(key, require_text(obj, "model", src), (require_text(obj, "answer", src),), src, "answer")


def arena_hard_answer(obj: dict, src: Source) -> str:
    """The answer of one Arena-Hard-Auto ``model_answer`` row: the last message's ``content.answer`` (or its
    ``content`` when that is a plain string, as in files written by other tools)."""
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        raise RecordError(src, "messages", "expected a non-empty list of messages")
    content = messages[-1].get("content")
    if isinstance(content, dict):
        return require_text(content, "answer", src, allow_empty=True)
    if isinstance(content, str):
        return content
    raise RecordError(src, "messages[-1].content", "expected an object with 'answer' or a string")


def arena_hard_questions(path: Path, out: AnswerSet) -> None:
    """The questions of an Arena-Hard-Auto ``question.jsonl`` (``uid``, ``prompt``, ``category``)."""
    for src, obj in iter_dicts(path):
        out.add_question(Question(require_id(obj, "uid", src), (require_text(obj, "prompt", src),),
                                  optional_text(obj, "category", src) or ""), src, "prompt")


def _arena_hard(path: Path, out: AnswerSet) -> None:
    bench = path if path.is_dir() else path.parent.parent
    questions = bench / "question.jsonl"
    if not questions.is_file():
        raise FileNotFoundError(f"{path}: no {questions} (expected Arena-Hard-Auto's layout: "
                                f"<bench>/question.jsonl and <bench>/model_answer/<model>.jsonl)")
    arena_hard_questions(questions, out)
    for answer_file in sorted((bench / "model_answer").glob("*.jsonl")) if path.is_dir() else [path]:
        for src, obj in iter_dicts(answer_file):
            out.add_answer(str(require_id(obj, "uid", src)), require_text(obj, "model", src),
                           (arena_hard_answer(obj, src),), src, "messages")


READERS: dict[str, Callable[[Path, AnswerSet], None]] = {
    "fastchat": _fastchat, "alpaca_eval": _alpaca_eval, "alpaca_eval_annotations": _alpaca_eval_annotations,
    "judgelm": _judgelm, "generic": _generic, "arena_hard": _arena_hard,
}


def expand_paths(paths: str) -> list[Path]:
    """``a,b*`` → the files (or directories) named, globs expanded in sorted order; a pattern matching nothing is
    an error."""
    out = []
    for pattern in filter(None, (p.strip() for p in paths.split(","))):
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches or not Path(matches[0]).exists():
            raise FileNotFoundError(f"no file matches {pattern!r}")
        out += [Path(m) for m in matches]
    return out


def load_answers(specs: str | list[str]) -> AnswerSet:
    """All answers named by ``FORMAT:PATH[,PATH...]`` specs, merged (the module docs list the formats)."""
    out = AnswerSet()
    for spec in [specs] if isinstance(specs, str) else specs:
        fmt, sep, paths = spec.partition(":")
        if not sep or fmt not in READERS:
            raise ValueError(f"answers {spec!r}: expected FORMAT:PATH with FORMAT one of {', '.join(READERS)}")
        for path in expand_paths(paths):
            READERS[fmt](path, out)
    if not out.questions:
        raise ValueError(f"answers {specs!r}: no questions")
    return out
