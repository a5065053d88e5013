"""Checklists for RocketEval grading: per question, the yes/no items an answer is graded on.

A checklist file is JSONL, one row per question: ``checklist`` (a list of non-empty strings) and the question it
belongs to, by ``question_id`` (RocketEval's ``session_id`` is read as the same) or by its ``question`` text (for
answer formats without ids, such as AlpacaEval's, whose ids are positions). RocketEval's own checklist files
(``{"session_id", "checklist"}``) are read unchanged. ``parse_generated`` reads the items out of a checklist a
model wrote for ``judgelm.profiles.rocketeval.CHECKLIST_TEMPLATE``, as RocketEval's ``match_questions`` does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from judgelm.data.answers import AnswerSet
from judgelm.data.records import RecordError, iter_dicts, require_id

# RocketEval's ``question_pattern``: a line's text after "N. " up to its last question mark.
_ITEM = re.compile(r"(?<=[0-9]\. ).+\?")


@dataclass
class Checklists:
    """Items per question, keyed by question id or, where the file gave none, by question text."""

    by_id: dict[str, list[str]] = field(default_factory=dict)
    by_text: dict[str, list[str]] = field(default_factory=dict)

    def of(self, question_id: int | str, text: str) -> list[str] | None:
        return self.by_id.get(str(question_id), self.by_text.get(text))

    def __len__(self) -> int:
        return len(self.by_id) + len(self.by_text)


def load_checklists(path: str | Path) -> Checklists:
    """The checklists of a file (module docs); a bad row raises ``RecordError`` with its line and field."""
    out = Checklists()
    for src, obj in iter_dicts(path):
        items = obj.get("checklist")
        if not isinstance(items, list) or not items or not all(isinstance(x, str) and x.strip() for x in items):
            raise RecordError(src, "checklist", "expected a non-empty list of non-empty strings")
        key = next((k for k in ("question_id", "session_id") if k in obj), None)
        if key is not None:
            table, name = out.by_id, str(require_id(obj, key, src))
        elif isinstance(obj.get("question"), str):
            table, name = out.by_text, obj["question"]
        else:
            raise RecordError(src, "question_id", "missing; give question_id (or session_id) or the question text")
        if name in table:
            raise RecordError(src, key or "question", f"a second checklist for question {name[:60]!r}")
        table[name] = list(items)
    return out


def covered(checklists: Checklists, data: AnswerSet) -> list[str]:
    """The questions of ``data`` (keys) that have a checklist."""
    return [k for k, q in data.questions.items() if checklists.of(q.question_id, q.text) is not None]


def parse_generated(text: str) -> list[str]:
    """The items of a generated checklist: after its last ``##``, every ``N. ...?`` (RocketEval's parser; it keeps
    ``[""]`` when none is found, here an empty list)."""
    return _ITEM.findall(text.split("##")[-1])


def write_checklists(path: str | Path, rows: dict, key: str = "question_id") -> None:
    """``{question id (or text, with key="question"): items}`` as a checklist file."""
    Path(path).write_text("".join(json.dumps({key: k, "checklist": v}, ensure_ascii=False) + "\n"
                                  for k, v in rows.items()))
