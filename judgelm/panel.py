"""Panels: one run judged by several judges in one store, and what the merge says about them.

The run's own judge writes ``verdicts/``; every further judge gets ``judges/<name>/`` in the same store
(``VerdictStore.add_judge``), one row per unit of the same plan. A panel judge is one of:

- another model (``add_model_judge``), judged by its own array of shards (``run_shard(..., judge=name)``, started by
  ``launch/panel.py``) with the run's engine and prompt settings; shards of different judges never share arrays;
- an external judge's verdicts (``import_judge``, any format of ``judgelm.external``), matched to the units by record
  id and answer order (the swapped-order file fills the swapped units);
- the records' own ground-truth labels (``label_judge``), e.g. PandaLM's human majority, as a reference rater.

A unit a judge gave no verdict keeps status ``NOT_ASKED``. The merge compares judges on the units every judge
judged, each judge's verdicts chosen by the run's verdict policy from its own draws: each judge's metrics, the
panel's verdicts (``judgelm.verdict_policy``'s ``majority`` and ``mean`` with the judges in place of samples) and
the agreement between judges (``panel_agreement``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from judgelm.agreement import category_counts, fleiss_kappa, krippendorff_alpha
from judgelm.external import Verdict, verdicts_by_record
from judgelm.store import NO_LABEL, NOT_ASKED, ChunkVerdicts, VerdictStore
from judgelm.verdict_policy import Draws, choose, samples_of, status_of
from judgelm.verdicts import Status, win_array

if TYPE_CHECKING:  # the merge imports this module and must not pull in torch through the config's model part
    from judgelm.judge_config import JudgeConfig


@dataclass(frozen=True)
class JudgeVerdicts:
    """One panel judge's verdicts, one row per unit of the store."""

    name: str
    scores: np.ndarray
    status: np.ndarray
    judged: np.ndarray  # bool: done, with a verdict (parsed or not)


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
    for u in np.flatnonzero(~with_reference):
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


def read_panel(store: VerdictStore, scores: np.ndarray, status: np.ndarray, done: np.ndarray,
               policy: str = "primary") -> list[JudgeVerdicts]:
    """The run's own judge (its verdicts as the merge chose them) and every panel judge of the store, each chosen
    from its own draws by ``policy`` (``expected`` takes a panel judge's primary verdict: the merge derives
    log-probability confidence for the run's own judge only)."""
    out = [JudgeVerdicts(own_name(store), scores, status, done)]
    for name in store.judges():
        view = store.judge(name)
        st = view.verdicts("status")
        chosen = choose("primary" if policy == "expected" else policy,
                        samples_of(Draws.read(view, view.verdicts("scores"), st)))
        out.append(JudgeVerdicts(name, chosen, status_of(chosen, st), view.done() & (st != NOT_ASKED)))
    return out


def panel_agreement(judges: list[JudgeVerdicts], units: np.ndarray) -> dict[str, object]:
    """Agreement between the judges on ``units``: for pairs, Fleiss' kappa and Krippendorff's nominal alpha over
    the verdict labels (a failed parse is a tie, as in the metrics) and the share of units each two judges label
    alike; for graded scores, Krippendorff's interval alpha of the first score."""
    if judges[0].scores.shape[1] != 2:
        return {"krippendorff_alpha_interval": krippendorff_alpha(np.stack([j.scores[units, 0] for j in judges]),
                                                                  "interval")}
    labels = np.stack([win_array(j.scores[units]) for j in judges], axis=1)
    pairs = {f"{a.name} | {b.name}": float((labels[:, i] == labels[:, k]).mean()) if len(units) else None
             for i, a in enumerate(judges) for k, b in enumerate(judges) if i < k}
    kappa = fleiss_kappa(category_counts(labels, np.array([-1, 0, 1]))) if len(units) else None
    return {"fleiss_kappa": kappa, "krippendorff_alpha_nominal": krippendorff_alpha(labels.T),
            "pairwise_agreement": pairs}
