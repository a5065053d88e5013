"""Panels: one run judged by several judges in one store (``judgelm.scoring.panel`` compares them).

The run's own judge writes ``verdicts/``; every further judge gets ``judges/<name>/`` in the same store
(``VerdictStore.add_judge``), one row per unit of the same plan. A panel judge is one of:

- another model (``add_model_judge``), judged by its own array of shards (``run_shard(..., judge=name)``, started by
  ``launch/panel.py``) with the run's engine and prompt settings; shards of different judges never share arrays;
- an external judge's verdicts (``import_judge``, any format of ``judgelm.judging.external``), matched to the units
  by record id and answer order (the swapped-order file fills the swapped units);
- the records' own ground-truth labels (``label_judge``), e.g. PandaLM's human majority, as a reference rater.

A unit a judge gave no verdict keeps status ``NOT_ASKED``. The merge compares judges on the units every judge
judged, each judge's verdicts chosen by the run's verdict policy from its own draws: each judge's metrics, the
panel's verdicts (``judgelm.scoring.verdict_policy``'s ``majority`` and ``mean`` with the judges in place of
samples) and the agreement between judges (``panel_agreement``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from judgelm.data.verdicts import Status
from judgelm.judging.external import Verdict, verdicts_by_record
from judgelm.judging.store import NO_LABEL, NOT_ASKED, ChunkVerdicts, VerdictStore

if TYPE_CHECKING:
    from judgelm.judging.config import JudgeConfig


def own_name(store: VerdictStore) -> str:
    """The run's own judge in panel reports: ``run:`` and its model's name (panel judge names have no colon)."""
    return "run:" + Path(str(store.attrs.get("model") or "judge")).name


def add_model_judge(store: VerdictStore, name: str, model: str) -> VerdictStore:
    return store.add_judge(name, {"model": model, "judged_here": True})


def panel_member(store: VerdictStore, cfg: JudgeConfig, name: str) -> tuple[VerdictStore, JudgeConfig]:
    """The view and config a shard of panel judge ``name`` works with: the run's settings, the judge's model."""
    view = store.judge(name)
    if not view.attrs.get("judged_here"):
        raise ValueError(f"panel judge {name!r} holds imported verdicts: there is nothing to judge")
    return view, dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=view.attrs["model"]))


def _write_all(view: VerdictStore, scores: np.ndarray, status: np.ndarray, text: list[str]) -> None:
    for c in range(view.n_chunks):
        sl = view.chunk_slice(c)
        zeros = np.zeros(sl.stop - sl.start, np.int32)
        view.write_chunk(c, ChunkVerdicts(scores=scores[sl], status=status[sl], text=text[sl], prompt_tokens=zeros,
                                          new_tokens=zeros, truncated=zeros.astype(bool)), attempt=0)


def import_judge(store: VerdictStore, name: str, original: list[Verdict], swapped: list[Verdict] | None = None,
                 attrs: dict | None = None, id_prefix: str = "") -> tuple[int, int]:
    """Add panel judge ``name`` from an external judge's verdicts on the run's records (without reference);
    returns how many units got one, and how many verdicts were for records the run does not have (a run of a
    limited or combined data set). ``id_prefix`` is put before each verdict's id: a benchmark run names its
    records ``<benchmark>/<id>``."""
    ids = {str(q): i for i, q in enumerate(store.records("question_id"))}

    def mine(verdicts: list[Verdict]) -> list[Verdict]:
        return [dataclasses.replace(v, record_id=id_prefix + v.record_id) for v in verdicts
                if id_prefix + v.record_id in ids]

    given = [mine(original), mine(swapped) if swapped is not None else []]
    by_order = [verdicts_by_record(v, ids) for v in given]
    record, order = store.units("record"), store.units("order")
    with_reference = store.units("with_reference")
    scores = np.full((store.n_units, store.n_scores), np.nan, dtype=np.float32)
    status = np.full(store.n_units, NOT_ASKED, dtype=np.int8)
    text = [""] * store.n_units
    # An external verdict names a record, not a turn: it is a verdict on the first (or only) turn.
    for u in np.flatnonzero(~with_reference & (store.units("turn") == 0)):
        v = by_order[order[u]].get(int(record[u]))
        if v is not None:
            text[u], status[u] = v.text, Status.PARSE_FAILED if v.scores is None else Status.OK
            scores[u] = np.nan if v.scores is None else v.scores
    _write_all(store.add_judge(name, {"imported": True, **(attrs or {})}, extra_arrays={}), scores, status, text)
    return int((status != NOT_ASKED).sum()), len(original) + len(swapped or []) - len(given[0]) - len(given[1])


def label_judge(store: VerdictStore, name: str = "labels") -> int:
    """Add the records' ground-truth labels as panel judge ``name``, each unit in the answer order it shows;
    returns how many units have a label."""
    label = store.unit_labels().astype(np.int64)
    known = label != NO_LABEL
    scores = np.stack([label == 1, label == -1], axis=1).astype(np.float32)  # (1, 0), (0, 0) or (0, 1)
    scores[~known] = np.nan
    status = np.where(known, Status.OK, NOT_ASKED).astype(np.int8)
    text = [str(int(x)) if k else "" for x, k in zip(label, known)]
    _write_all(store.add_judge(name, {"imported": True, "source": "ground-truth labels"}, extra_arrays={}),
               scores, status, text)
    return int(known.sum())
