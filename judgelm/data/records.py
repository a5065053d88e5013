"""The one record format for judging, and the strict loader of JudgeLM-format files.

A record is one question with the answers to judge (two for pairwise judging), an optional reference answer and
optional ground truth. Files are JSONL (one object per line) or a JSON list, with JudgeLM's field names
(reference document §1): ``question_id``, ``question_body``, ``answer1_body``, ``answer2_body`` (``answer3_body``…
for N-answer grading), ``reference`` (a string or JudgeLM's ``{"text": ...}``), and ground truth as JudgeLM's
judgement strings ``text`` / ``text_w_reference`` (``"s1 s2\\n..."``, re-parsed as JudgeLM does) or, in our own
files, an explicit ``label`` (1: answer 1 better, 0: tie, -1: answer 2 better). ``subset`` and ``category`` are
optional strings used for breakdowns.

A multi-turn conversation (MT-Bench's two turns) is one record whose ``question_body`` is the list of the user's
turns; each ``answerK_body`` is then that assistant's list of replies, one per turn, and ``reference`` (when given) the
list of reference replies. Every turn is judged as its own unit, its prompt showing the turns before it
(``judgelm.judging.units``). Such a record carries no ground truth yet: its labels would be per turn.

Every record is validated; a bad one raises ``RecordError`` naming the file, the line (or list item) and the
field, unless the caller asked to skip invalid records, in which case it is returned as a ``Reject``.

An empty or whitespace-only answer is real data (a model that answered nothing), kept and rendered raw as JudgeLM
renders it, and counted (``Loaded.empty_answers``). A blank reference is no reference: the record is judged
without one instead of being refused. A UTF-8 byte-order mark at the start of a file is ignored.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from judgelm.data.verdicts import parse_scores, win

LABELS = (1, 0, -1)
MAX_TURNS = 100  # turns of one conversation (the store keeps a unit's turn in an int8)


@dataclass(frozen=True)
class Turn:
    """One turn of a conversation: the user's message, each answer slot's reply to it, the reference reply."""

    question: str
    answers: tuple[str, ...]
    reference: str | None = None


@dataclass(frozen=True)
class Record:
    """One judging item. ``answers`` are in the order the source gives them (slot 1 first)."""

    question_id: int | str
    question: str
    answers: tuple[str, ...]
    reference: str | None = None
    label: int | None = None  # explicit winner, e.g. a human majority vote
    gt_scores: tuple[float, ...] | None = None  # ground-truth judge scores without reference (e.g. GPT-4)
    gt_scores_w_reference: tuple[float, ...] | None = None  # the same, judged with the reference shown
    judged_w_reference: bool = False  # the source has a with-reference judgement (even one that did not parse)
    subset: str = ""
    category: str = ""
    models: tuple[str, ...] = ()  # the generator of each answer, in slot order (model evaluation); empty otherwise
    later_turns: tuple[Turn, ...] = ()  # a multi-turn record's turns after the first (``question``/``answers``)

    @property
    def n_turns(self) -> int:
        return 1 + len(self.later_turns)

    def turns(self) -> tuple[Turn, ...]:
        """Every turn, the first one from ``question``, ``answers`` and ``reference``."""
        return (Turn(self.question, self.answers, self.reference), *self.later_turns)

    def first_turns(self, n: int) -> Record:
        """The record cut to its first ``n`` turns (itself when it has no more)."""
        return self if self.n_turns <= n else replace(self, later_turns=self.later_turns[: n - 1])

    def gt_label(self, with_reference: bool = False) -> int | None:
        """The ground-truth winner for a unit judged with or without the reference, or ``None`` if unknown.

        With the reference, JudgeLM compares against GPT-4's with-reference judgement, and drops the pair when that
        judgement does not parse; only a record with no with-reference judgement at all falls back to the
        without-reference ground truth.
        """
        if with_reference and self.judged_w_reference:
            s = self.gt_scores_w_reference
            return win(s) if s is not None and len(s) == 2 else None
        if self.label is not None:
            return self.label
        if self.gt_scores is not None and len(self.gt_scores) == 2:  # a winner needs exactly two scores
            return win(self.gt_scores)
        return None


@dataclass(frozen=True)
class Source:
    """Where a record came from, for error messages: a file and a 1-based line, or an item of a JSON list."""

    path: str
    line: int | None = None
    item: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.path}:{self.line}"
        if self.item is not None:
            return f"{self.path}[item {self.item}]"
        return self.path


class RecordError(ValueError):
    """A record that cannot be used, with its file, line and field."""

    def __init__(self, source: Source, field_name: str | None, reason: str):
        self.source, self.field, self.reason = source, field_name, reason
        where = f"{source}: field '{field_name}'" if field_name else str(source)
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Reject:
    """A skipped record, written to the run's rejects file."""

    source: Source
    field: str | None
    reason: str
    raw: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.source.path, "line": self.source.line, "item": self.source.item,
                "field": self.field, "reason": self.reason, "raw": self.raw[:2000]}


# Shown with a missing question_id: a file in another format is the usual cause, and needs no code to be read.
GENERIC_HINT = ("not a JudgeLM-format file? describe its fields in a mapping file and use DATA=generic:mapping.yaml "
                "(docs/your-data.md); ids can come from line numbers")


@dataclass
class Loaded:
    """Records that passed validation, and those skipped (only when skipping was asked for)."""

    records: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    ids_from_lines: bool = False
    """The data has no id field: record ids are the line (JSONL) or item (JSON list) numbers."""

    @property
    def empty_answers(self) -> int:
        """Answers that are empty or whitespace only: judged like any other, and shown in the run summary."""
        return sum(not a.strip() for r in self.records for t in r.turns() for a in t.answers)


# --- reading raw objects --------------------------------------------------------------------------------------

def iter_json_objects(path: str | Path, with_text: bool = True) -> Iterator[tuple[Source, Any, str | None]]:
    """Yield ``(source, object, raw_text)`` for each item of a JSONL file or a JSON list (``with_text=False``: the
    text of a JSON list's items is not made again, ``None`` in its place).

    A missing file or a directory fails here, at the call, even when invalid records are skipped. Decoding
    problems (bad JSON, non-UTF-8 bytes) are yielded as ``RecordError`` objects in place of the object, so a
    caller that skips invalid records can keep going past them.
    """
    return _iter_items(check_data_file(path), with_text)


def _iter_items(path: Path, with_text: bool) -> Iterator[tuple[Source, Any, str | None]]:
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)  # editors on Windows write one; it is not content
    stripped = data.lstrip()
    if path.suffix == ".json" or stripped.startswith(b"["):
        try:
            items = _list_items(json.loads(data.decode("utf-8")))
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise RecordError(Source(str(path), line=line), None, f"not valid UTF-8 ({e.reason})") from None
        except json.JSONDecodeError as e:
            raise RecordError(Source(str(path), line=e.lineno), None, f"bad JSON: {e.msg} (column {e.colno})") from None
        if items is None:
            raise RecordError(Source(str(path)), None, "a .json file must hold a list of records "
                                                       "(or an object of such lists, read one after the other)")
        surrogates = _lone_surrogate_escape(data)
        for i, obj in enumerate(items):
            src = Source(str(path), item=i)
            text = json.dumps(obj, ensure_ascii=False) if with_text or surrogates else None
            # The item's own text is searched first (one regex in C): walking every string of every item in Python
            # cost more than parsing the file.
            bad = _lone_surrogate(obj) if surrogates and _SURROGATE.search(text) else None
            yield src, RecordError(src, bad[0], bad[1]) if bad else obj, json.dumps(obj) if bad else \
                text if with_text else None
        return
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        src = Source(str(path), line=lineno)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield (src, RecordError(src, None, f"not valid UTF-8 at byte {e.start} ({e.reason})"),
                   raw.decode("utf-8", "replace"))
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            yield src, RecordError(src, None, f"bad JSON: {e.msg} (column {e.colno})"), text
            continue
        bad = _lone_surrogate(obj) if _lone_surrogate_escape(raw) else None
        yield src, RecordError(src, bad[0], bad[1]) if bad else obj, text


# JSON may escape half of a UTF-16 surrogate pair (``"\ud800"``); the string it gives can be neither written to the
# store nor sent to a tokenizer. Only lines with such an escape are searched (a pair is fine: it is one character).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate_escape(data: bytes) -> bool:
    """Whether ``data`` escapes half of a surrogate pair without its other half: pairs (emoji) are common and fine,
    lone halves rare, and a file's few escapes are checked here rather than every string of every item."""
    high_end = None  # where an escaped high half ends, waiting for its low half
    for m in _SURROGATE_ESCAPE.finditer(data):
        if m.group()[3:4] in b"89abAB":
            if high_end is not None:
                return True
            high_end = m.end()
        elif high_end != m.start():
            return True
        else:
            high_end = None
    return high_end is not None


def _lone_surrogate(obj: Any, where: str = "") -> tuple[str, str] | None:
    """``(field, reason)`` for the first string of ``obj`` (keys included) holding a lone surrogate, else None."""
    if isinstance(obj, str):
        m = _SURROGATE.search(obj)
        return (where or "(the record)", f"holds a lone UTF-16 surrogate \\u{ord(m.group()):04x} at character "
                                          f"{m.start()}: not valid Unicode; fix or drop that escape") if m else None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        name = f"{where}.{key}" if where and isinstance(key, str) else f"{where}[{key}]" if where else str(key)
        found = _lone_surrogate(key, name) if isinstance(key, str) and _SURROGATE.search(key) else None
        found = found or _lone_surrogate(value, name)
        if found:
            return found
    return None


def check_data_file(path: str | Path, what: str = "data file") -> Path:
    """``path`` as a ``Path`` if it is a readable file; a missing file or a directory is a one-line error."""
    path = Path(path)
    if path.is_dir():
        raise RecordError(Source(str(path)), None, f"is a directory, not a {what}; give a JSON/JSONL file"
                          + (" of records, or a generic mapping (generic:mapping.yaml)" if what == "data file" else ""))
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _list_items(top: Any) -> list | None:
    """The records of a JSON document: a list, or an object whose values are all lists (groups of records, as
    OffsetBias' EvalBiasBench keeps one list per bias type), concatenated in file order. ``None`` otherwise."""
    if isinstance(top, list):
        return top
    if isinstance(top, dict) and top and all(isinstance(v, list) for v in top.values()):
        return [item for group in top.values() for item in group]
    return None


def iter_dicts(path: str | Path) -> Iterator[tuple[Source, dict]]:
    """Every item of a JSONL/JSON file as an object, stopping at the first one that is not (files of verdicts
    and ground truth, where skipping a row would misalign the rest)."""
    for src, obj, _ in iter_json_objects(path, with_text=False):
        if isinstance(obj, RecordError):
            raise obj
        if not isinstance(obj, dict):
            raise RecordError(src, None, f"expected a JSON object, got {type(obj).__name__}")
        yield src, obj


# --- field validation -------------------------------------------------------------------------------------------

def require_text(obj: dict, key: str, src: Source, allow_empty: bool = False) -> str:
    """A required string field, non-empty unless ``allow_empty``."""
    if key not in obj or obj[key] is None:
        raise RecordError(src, key, "missing")
    value = obj[key]
    if not isinstance(value, str):
        raise RecordError(src, key, f"expected a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise RecordError(src, key, "empty")
    return value


def require_id(obj: dict, key: str, src: Source, hint: str = "") -> int | str:
    """A required id: an integer or a non-empty string (JSON floats and booleans are refused)."""
    if key not in obj or obj[key] is None:
        raise RecordError(src, key, f"missing; {hint}" if hint else "missing")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise RecordError(src, key, f"expected an integer or a string, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise RecordError(src, key, "empty")
    return value


def optional_text(obj: dict, key: str, src: Source) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(src, key, f"expected a string, got {type(value).__name__}")
    return value


def _reference(obj: dict, src: Source) -> str | None:
    ref = obj.get("reference")
    if ref is None:
        return None
    if isinstance(ref, dict):  # JudgeLM's {"decoding_method": ..., "model": ..., "text": ...}
        if not isinstance(ref.get("text"), str):
            raise RecordError(src, "reference.text", "expected a string")
        ref = ref["text"]
    elif not isinstance(ref, str):
        raise RecordError(src, "reference", f"expected a string or an object with 'text', got {type(ref).__name__}")
    return ref if ref.strip() else None


def _judgement_scores(obj: dict, text_key: str, score_key: str, src: Source, n: int) -> tuple[float, ...] | None:
    """Ground-truth scores as JudgeLM derives them: re-parse the judgement ``text`` (unstripped).

    JudgeLM ignores ``score`` when ``text`` exists; without ``text`` we accept ``score`` only when it holds ``n``
    numbers, because ``judgelm_val_5k.jsonl`` reuses that key for generation statistics.
    """
    if obj.get(text_key) is not None:
        text = obj[text_key]
        if not isinstance(text, str):
            raise RecordError(src, text_key, f"expected a string, got {type(text).__name__}")
        return parse_scores(text, n)  # an unparseable ground truth is dropped from metrics, as in JudgeLM
    score = obj.get(score_key)
    if (isinstance(score, (list, tuple)) and len(score) == n
            and all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in score)):
        return tuple(float(s) for s in score)
    return None


def record_from_judgelm(obj: Any, src: Source) -> Record:
    """Validate one JudgeLM-format object into a ``Record``."""
    if not isinstance(obj, dict):
        raise RecordError(src, None, f"expected a JSON object, got {type(obj).__name__}")
    qid = require_id(obj, "question_id", src, hint=GENERIC_HINT)
    if isinstance(obj.get("question_body"), list):
        return _conversation(obj, src, qid)
    question = require_text(obj, "question_body", src)
    answers = [require_text(obj, "answer1_body", src, allow_empty=True),
               require_text(obj, "answer2_body", src, allow_empty=True)]
    k = 3
    while f"answer{k}_body" in obj:
        answers.append(require_text(obj, f"answer{k}_body", src, allow_empty=True))
        k += 1
    label = obj.get("label")
    if label is not None and (isinstance(label, bool) or label not in LABELS):
        raise RecordError(src, "label",
                          f"expected one of 1 (answer 1 better), 0 (tie), -1 (answer 2 better), got {label!r}")
    n = len(answers)
    return Record(
        question_id=qid, question=question, answers=tuple(answers), reference=_reference(obj, src), label=label,
        gt_scores=_judgement_scores(obj, "text", "score", src, n),
        gt_scores_w_reference=_judgement_scores(obj, "text_w_reference", "score_w_reference", src, n),
        judged_w_reference=obj.get("text_w_reference") is not None or obj.get("score_w_reference") is not None,
        subset=optional_text(obj, "subset", src) or "", category=optional_text(obj, "category", src) or "",
    )


def _turn_list(obj: dict, key: str, src: Source, n: int | None, allow_empty: bool) -> list[str]:
    """A list of one string per turn (``n`` of them when given), each non-empty unless ``allow_empty``."""
    value = obj.get(key)
    if value is None:
        raise RecordError(src, key, "missing")
    if not isinstance(value, list):
        raise RecordError(src, key, f"expected a list of {n} turns, as question_body is a list; "
                                    f"got {type(value).__name__}")
    if not value or len(value) > MAX_TURNS:
        raise RecordError(src, key, f"expected 1 to {MAX_TURNS} turns, got {len(value)}")
    if n is not None and len(value) != n:
        raise RecordError(src, key, f"has {len(value)} turns, question_body has {n}")
    for k, v in enumerate(value):
        if not isinstance(v, str):
            raise RecordError(src, f"{key}[{k}]", f"expected a string, got {type(v).__name__}")
        if not allow_empty and not v.strip():
            raise RecordError(src, f"{key}[{k}]", "empty")
    return value


def _turn_references(obj: dict, src: Source, n: int) -> list[str] | None:
    """A conversation's reference replies, one per turn (or JudgeLM's ``{"text": [...]}``); all blank is none."""
    ref = obj.get("reference")
    if ref is None:
        return None
    key = "reference"
    if isinstance(ref, dict):
        ref, key = ref.get("text"), "reference.text"
    refs = _turn_list({key: ref}, key, src, n, allow_empty=True)
    blank = [not r.strip() for r in refs]
    if all(blank):
        return None
    if any(blank):
        raise RecordError(src, f"{key}[{blank.index(True)}]", "empty while other turns have a reference; give one "
                                                              "for every turn or none")
    return refs


def _conversation(obj: dict, src: Source, qid: int | str) -> Record:
    """A multi-turn record: ``question_body`` lists the user's turns, each answer and the reference one reply per
    turn."""
    for key in ("label", "text", "text_w_reference"):
        if obj.get(key) is not None:
            raise RecordError(src, key, "ground truth of a multi-turn record is not supported (it would be per "
                                        "turn); leave it out to judge the turns")
    questions = _turn_list(obj, "question_body", src, None, allow_empty=False)
    n = len(questions)
    keys = ["answer1_body", "answer2_body"]
    while f"answer{len(keys) + 1}_body" in obj:
        keys.append(f"answer{len(keys) + 1}_body")
    answers = [_turn_list(obj, key, src, n, allow_empty=True) for key in keys]
    refs = _turn_references(obj, src, n)
    turns = [Turn(q, tuple(a[t] for a in answers), None if refs is None else refs[t]) for t, q in enumerate(questions)]
    return Record(question_id=qid, question=turns[0].question, answers=turns[0].answers, reference=turns[0].reference,
                  subset=optional_text(obj, "subset", src) or "", category=optional_text(obj, "category", src) or "",
                  later_turns=tuple(turns[1:]))


# --- loading a whole file -----------------------------------------------------------------------------------------

Converter = Callable[[Any, Source], Record]


def load_objects(items: Iterable[tuple[Source, Any, str]], convert: Converter, skip_invalid: bool = False) -> Loaded:
    """Validate every item with ``convert``; check ids are unique. Stop at the first error unless skipping."""
    out = Loaded()
    seen: dict[str, Source] = {}
    items = iter(items)
    while True:
        try:
            src, obj, raw = next(items)
        except StopIteration:
            break
        except RecordError as e:  # a whole-file problem (bad JSON list): nothing more can be read
            if not skip_invalid:
                raise
            out.rejects.append(Reject(e.source, e.field, e.reason, ""))
            break
        try:
            if isinstance(obj, RecordError):
                raise obj
            rec = convert(obj, src)
            key = str(rec.question_id)
            if key in seen:
                raise RecordError(src, "question_id", f"duplicate id {rec.question_id!r} (first seen at {seen[key]})")
            seen[key] = src
            out.records.append(rec)
        except RecordError as e:
            if not skip_invalid:
                raise
            out.rejects.append(Reject(e.source, e.field, e.reason, raw))
    return out


def load_records(path: str | Path, skip_invalid: bool = False) -> Loaded:
    """Load a JudgeLM-format JSONL/JSON file of records."""
    return load_objects(iter_json_objects(path), record_from_judgelm, skip_invalid)


def write_rejects(rejects: list[Reject], path: str | Path) -> None:
    """One JSON line per skipped record: where it was, which field, why, and (the start of) its raw text."""
    with open(path, "w", encoding="utf-8") as f:
        for r in rejects:
            f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
