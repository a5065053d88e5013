"""AlpacaEval annotation files imported as a model-evaluation store, so the merge computes AlpacaEval's leaderboard.

An annotation row holds an instruction, the baseline's answer (``output_1``, ``generator_1``), the model's
(``output_2``, ``generator_2``) and the judge's ``preference`` in [1, 2]: 1 the baseline better, 2 the model, a
fraction the judge's probability (the weighted GPT-4 Turbo annotator), 1.5 a draw. As AlpacaEval does, a
preference of 0 is read as a draw (1.5) and a missing one leaves the row out.

Each row becomes a record (answers in the file's slot order, ``models`` the generators, ``category`` the
``dataset``) with one unit in the original order. ``preference − 1`` is stored exactly (float64,
``verdicts/preference``), so the leaderboard's ``win_rate`` is AlpacaEval's ``100 × mean(preference − 1)``, and the
scores are the discrete winner ((1, 0), (0, 1) or (0, 0)), so order-free metrics read it like any verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from judgelm.data.records import Record, RecordError, Source, iter_dicts, optional_text, require_text
from judgelm.data.verdicts import Status
from judgelm.judging.store import PREFERENCE, ChunkVerdicts, VerdictStore
from judgelm.judging.units import plan_units

_DISCRETE = {1: (0.0, 1.0), 0: (0.0, 0.0), -1: (1.0, 0.0)}  # sign(preference − 1.5) → scores of slots 1, 2


@dataclass(frozen=True)
class Annotation:
    record: Record
    preference: float  # in [0, 1]: AlpacaEval's preference − 1, P(output_2 better)


def _preference(obj: dict, src: Source) -> float | None:
    value = obj.get("preference")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(src, "preference", f"expected a number, got {type(value).__name__}")
    value = 1.5 if value == 0 else float(value)
    if not 1 <= value <= 2:
        raise RecordError(src, "preference", f"expected a value in [1, 2] (or 0 for a draw), got {value}")
    return value - 1


def read_annotations(paths: list[Path], instructions: set[str] | None = None) -> list[Annotation]:
    """Every annotated row of the files (only those of ``instructions`` if given); an instruction's question id is
    its position among the distinct ones read."""
    ids: dict[str, int] = {}
    out = []
    for path in paths:
        for src, obj in iter_dicts(path):
            instruction = require_text(obj, "instruction", src)
            answers = tuple(require_text(obj, f"output_{k}", src, allow_empty=True) for k in (1, 2))
            models = tuple(require_text(obj, f"generator_{k}", src) for k in (1, 2))
            pref = _preference(obj, src)
            if pref is None or (instructions is not None and instruction not in instructions):
                continue
            qid = ids.setdefault(instruction, len(ids))
            rec = Record(question_id=qid, question=instruction, answers=answers, models=models,
                         category=optional_text(obj, "dataset", src) or "")
            out.append(Annotation(rec, pref))
    return out


def import_annotations(store_path: str | Path, paths: list[Path], attrs: dict[str, Any] | None = None,
                       instructions: set[str] | None = None) -> VerdictStore:
    """A complete store of the annotations in ``paths`` (only those of ``instructions`` if given)."""
    rows = read_annotations(paths, instructions)
    if not rows:
        raise ValueError(f"no annotated rows in {', '.join(map(str, paths))}")
    return annotation_store(store_path, rows, attrs)


def annotation_store(store_path: str | Path, rows: list[Annotation],
                     attrs: dict[str, Any] | None = None) -> VerdictStore:
    """A complete store of annotated rows (``read_annotations``); the baseline is the ``generator_1`` of every row."""
    baselines = {a.record.models[0] for a in rows}
    baseline = baselines.pop() if len(baselines) == 1 else ""
    records = [a.record for a in rows]
    plan = plan_units(records, "pair", "without", "original")
    n = len(plan)
    store = VerdictStore.create(
        store_path, records, plan, n_scores=2, chunk_units=n, extra_arrays={PREFERENCE: ((), "float64", np.nan)},
        attrs={"mode": "pair", "n_shards": 1, "imported": True, **(attrs or {}),
               "evaluation": {"pairing": "vs-baseline" if baseline else "pairs", "baseline": baseline}})
    pref = np.array([a.preference for a in rows])
    scores = np.array([_DISCRETE[int(np.sign(p - 0.5))] for p in pref], dtype=np.float32)
    store.write_chunk(0, ChunkVerdicts(
        scores=scores, status=np.full(n, Status.OK, dtype=np.int8), text=[f"preference {p + 1}" for p in pref],
        prompt_tokens=np.zeros(n, np.int32), new_tokens=np.zeros(n, np.int32), truncated=np.zeros(n, bool),
        extras={PREFERENCE: pref}), attempt=0)
    return store
