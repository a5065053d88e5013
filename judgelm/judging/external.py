"""Verdicts that another judge already produced, imported into a verdict store so the same merge, metrics, leaderboard
and report apply to GPT-4, PandaLM or any judge's outputs.

Formats (one file per answer order; the swapped-order file is optional and gives consistency and position bias):

- ``judgelm``: JudgeLM answer files, one JSON object per line with ``question_id`` and ``pred_text`` (the judge's
  text, parsed as JudgeLM parses it). For the swapped order, the file of a run with ``--if-reverse-answers 1``.
- ``pandalm``: PandaLM's result files (a JSON list): ``idx`` with ``gpt_result`` ("1", "2", "Tie" or "garbage") or
  ``pandalm_result`` (1, 2, or 0 for a tie). "garbage" is a parse failure, which counts as a tie, as in PandaLM's
  own ``data/compute_metrics.py``.
- ``generic``: JSON or JSONL with an id field (or none: rows are matched by line number, as a generic data set
  without ids numbers its records) and either a winner field (its values mapped to 1 / 0 / -1 by
  ``judgelm.data.labels.label_map``, so ``{A:1,B:-1,tie:0}`` works as written, and ``A:1,B:-1,tie:0`` on a command
  line) or two score fields.
- ``alpaca_eval``: AlpacaEval annotation files, which hold the answers and their generators too, so they need no
  data; they become a model evaluation (``judgelm.judging.alpaca_eval``).

Every error is one line naming the file, line and field; with ``skip_invalid`` (``rejects`` given) bad rows, unknown
ids and repeated verdicts are collected instead, like invalid records when judging.

Verdicts are matched to the data's records by id (JudgeLM reorders its files by ``question_id``; PandaLM's ``idx`` is
the record id). Records without a verdict are left out of the store and counted; a verdict for an unknown id, or
two for one id, is an error naming the file and line. A winner-only verdict is stored as the scores (1, 0), (0, 1)
or (0, 0), so every downstream metric reads it the same way as a judge's scores.

PandaLM's released outputs, imported against the PandaLM test set, give exactly what the PandaLM authors' script
prints for the same files (agreement / precision / recall / F1, the comments in its ``data/compute_metrics.py``):
gpt-3.5-turbo 71.07 / 58.79 / 57.36 / 57.55 and PandaLM-7B 66.77 / 57.38 / 57.50 / 57.43. The PandaLM paper's table,
quoted by JudgeLM, reports 62.96 / 61.95 / 63.59 / 58.20 and 59.26 / 57.28 / 59.23 / 54.56: 629 and 592 of 999 correct,
so the same test-set size but other predictions; no scoring rule applied to the released files reproduces them
(human majority, each annotator, unanimous items only, dropping "garbage": all tried).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from judgelm.config import ConfigError
from judgelm.data.labels import label_map
from judgelm.data.records import (
    Loaded,
    Record,
    RecordError,
    Reject,
    Source,
    check_data_file,
    iter_json_objects,
    require_id,
    require_text,
)
from judgelm.data.verdicts import Status, parse_prediction
from judgelm.judging.store import ChunkVerdicts, VerdictStore
from judgelm.judging.units import plan_units

FORMATS = ("judgelm", "pandalm", "generic", "alpaca_eval")  # alpaca_eval: judgelm.judging.alpaca_eval
_WINNER_SCORES = {1: (1.0, 0.0), 0: (0.0, 0.0), -1: (0.0, 1.0)}
_PANDALM_GPT = {"1": 1, "2": -1, "Tie": 0, "tie": 0}
_PANDALM_MODEL = {1: 1, 2: -1, 0: 0}


@dataclass(frozen=True)
class Verdict:
    source: Source
    id_field: str
    record_id: str
    scores: tuple[float, float] | None  # None: the verdict did not parse
    text: str


@dataclass(frozen=True)
class GenericFields:
    """Field names of a ``generic`` verdict file."""

    id: str = "id"  # empty: verdicts are matched by line (or JSON list item) number
    winner: str = ""
    winner_values: dict | str | None = None  # raw winner -> 1, 0, -1, as ``judgelm.data.labels.label_map`` reads it
    scores: tuple[str, ...] = ()


Row = Callable[[Source, dict], Verdict]


def _read(path: str | Path, row: Row, rejects: list[Reject] | None) -> list[Verdict]:
    """Every row of a verdict file through ``row``. A bad row raises ``RecordError`` naming file, line and field,
    or, when ``rejects`` is a list (``skip_invalid``), is appended there and skipped."""
    out = []
    for src, obj, raw in iter_json_objects(check_data_file(path, "verdict file")):
        try:
            if isinstance(obj, RecordError):
                raise obj
            if not isinstance(obj, dict):
                raise RecordError(src, None, f"expected a JSON object, got {type(obj).__name__}")
            out.append(row(src, obj))
        except RecordError as e:
            if rejects is None:
                raise
            rejects.append(Reject(e.source, e.field, e.reason, raw))
    return out


def _judgelm_row(src: Source, obj: dict) -> Verdict:
    text = require_text(obj, "pred_text", src, allow_empty=True)
    return Verdict(src, "question_id", str(require_id(obj, "question_id", src)), parse_prediction(text, 2), text)


def _pandalm_row(src: Source, obj: dict) -> Verdict:
    rid = str(require_id(obj, "idx", src))
    if "gpt_result" in obj:
        raw = obj["gpt_result"]
        if raw != "garbage" and raw not in _PANDALM_GPT:
            raise RecordError(src, "gpt_result", f"expected '1', '2', 'Tie' or 'garbage', got {raw!r}")
        winner = _PANDALM_GPT.get(raw)
    elif "pandalm_result" in obj:
        raw = obj["pandalm_result"]
        if isinstance(raw, bool) or raw not in _PANDALM_MODEL:
            raise RecordError(src, "pandalm_result", f"expected 1, 2 or 0 (tie), got {raw!r}")
        winner = _PANDALM_MODEL[raw]
    else:
        raise RecordError(src, "gpt_result", "missing (neither gpt_result nor pandalm_result)")
    return Verdict(src, "idx", rid, None if winner is None else _WINNER_SCORES[winner], str(raw))


def read_judgelm(path: str | Path, rejects: list[Reject] | None = None) -> list[Verdict]:
    return _read(path, _judgelm_row, rejects)


def read_pandalm(path: str | Path, rejects: list[Reject] | None = None) -> list[Verdict]:
    return _read(path, _pandalm_row, rejects)


def read_generic(path: str | Path, fields: GenericFields, rejects: list[Reject] | None = None) -> list[Verdict]:
    if bool(fields.winner) == bool(fields.scores):
        raise ConfigError("a generic verdict file needs either a winner field or two score fields")
    if fields.scores and len(fields.scores) != 2:
        raise ConfigError(f"scores names two fields, got {list(fields.scores)}")
    if fields.winner and not fields.winner_values:
        raise ConfigError("a winner field needs winner_values (raw value -> 1, 0 or -1), e.g. {A: 1, B: -1, tie: 0}")
    values = label_map(fields.winner_values or {}, "winner_values")

    def row(src: Source, obj: dict) -> Verdict:
        # Without an id field, verdicts are matched by line (item) number, like a generic data set without ids.
        rid = str(require_id(obj, fields.id, src)) if fields.id else str(src.line if src.line is not None else src.item)
        if fields.winner:
            raw = obj.get(fields.winner)
            if raw is None:
                raise RecordError(src, fields.winner, "missing")
            if str(raw) not in values:
                raise RecordError(src, fields.winner, f"value {raw!r} is not in winner_values {sorted(values)}")
            return Verdict(src, fields.id, rid, _WINNER_SCORES[values[str(raw)]], str(raw))
        scores = [obj.get(k) for k in fields.scores]
        for key, value in zip(fields.scores, scores):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise RecordError(src, key, f"expected a number, got {type(value).__name__}")
        parsed = None if None in scores else (float(scores[0]), float(scores[1]))
        return Verdict(src, fields.id, rid, parsed, " ".join(str(s) for s in scores))
    return _read(path, row, rejects)


def read_verdicts(path: str | Path, fmt: str, fields: GenericFields | None = None,
                  rejects: list[Reject] | None = None) -> list[Verdict]:
    """The verdicts of one file; with ``rejects`` a list, invalid rows go there instead of stopping the import."""
    if fmt == "judgelm":
        return read_judgelm(path, rejects)
    if fmt == "pandalm":
        return read_pandalm(path, rejects)
    if fmt == "generic":
        return read_generic(path, fields or GenericFields(), rejects)
    raise ConfigError(f"verdict format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def verdicts_by_record(verdicts: list[Verdict], ids: dict[str, int],
                       rejects: list[Reject] | None = None) -> dict[int, Verdict]:
    """Verdicts keyed by record index; an unknown id or a second verdict for one id is an error naming the line
    (with ``rejects`` a list, it is appended there and left out)."""
    out: dict[int, Verdict] = {}
    for v in verdicts:
        try:
            if v.record_id not in ids:
                raise RecordError(v.source, v.id_field or None,
                                  f"{v.record_id!r} is not the id of a record of the data")
            if ids[v.record_id] in out:
                raise RecordError(v.source, v.id_field or None, f"second verdict for {v.record_id!r} "
                                                                f"(first at {out[ids[v.record_id]].source})")
        except RecordError as e:
            if rejects is None:
                raise
            rejects.append(Reject(e.source, e.field, e.reason, v.text))
            continue
        out[ids[v.record_id]] = v
    return out


@dataclass
class ImportResult:
    store: VerdictStore
    records: int
    records_without_verdict: int


def import_verdicts(store_path: str | Path, loaded: Loaded, original: list[Verdict],
                    swapped: list[Verdict] | None = None, with_reference: bool = False,
                    attrs: dict[str, Any] | None = None, rejects: list[Reject] | None = None) -> ImportResult:
    """Create a complete pairwise store at ``store_path`` from imported verdicts on ``loaded``'s records.

    ``swapped`` are verdicts on the pairs with the answers exchanged, as the judge wrote them (slot 1 = answer 2).
    Only records with a verdict in every given order are stored. A verdict for an unknown id, or a second one for
    an id, is an error, or with ``rejects`` a list (``skip_invalid``) is appended there and left out.
    """
    ids = {str(r.question_id): i for i, r in enumerate(loaded.records)}
    seq = verdicts_by_record(original, ids, rejects)
    rev = verdicts_by_record(swapped, ids, rejects) if swapped is not None else None
    keep = [i for i in sorted(seq) if rev is None or i in rev]
    records: list[Record] = [loaded.records[i] for i in keep]
    if not records:
        raise ValueError("no record of the data has a verdict in every given order (are the ids the data's ids?)")
    if with_reference and any(r.reference is None for r in records):
        raise ValueError("with_reference: some records with verdicts have no reference answer")
    plan = plan_units(records, "pair", "with" if with_reference else "without", "original" if rev is None else "both")
    n = len(plan)
    store = VerdictStore.create(store_path, records, plan, n_scores=2, chunk_units=max(n, 1),
                                attrs={"mode": "pair", "n_shards": 1, "imported": True, **(attrs or {})})
    scores = np.full((n, 2), np.nan, dtype=np.float32)
    status = np.full(n, Status.PARSE_FAILED, dtype=np.int8)
    texts = [""] * n
    for u, (r, o) in enumerate(zip(plan.record, plan.order)):
        v = (seq if o == 0 else rev)[keep[r]]
        texts[u] = v.text
        if v.scores is not None:
            scores[u], status[u] = v.scores, Status.OK
    store.write_chunk(0, ChunkVerdicts(scores=scores, status=status, text=texts, prompt_tokens=np.zeros(n, np.int32),
                                       new_tokens=np.zeros(n, np.int32), truncated=np.zeros(n, bool)), attempt=0)
    return ImportResult(store, len(records), len(loaded.records) - len(records))
