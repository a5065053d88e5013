"""The merge: read a run's verdict store, compute the metrics, write ``metrics.json`` and a readable table.

Everything is vectorised over the store's arrays, so a store of a million units merges in seconds. Metrics are
computed separately without and with the reference (JudgeLM reports them separately), over the pairs whose
ground truth exists (JudgeLM drops pairs whose GPT-4 judgement does not parse); prediction parse failures count
as ties and their rate is reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from judgelm.metrics import judgelm_metrics, swap_metrics
from judgelm.rundir import RunDir
from judgelm.store import NO_LABEL, VerdictStore
from judgelm.verdicts import Status, win_array

TINY_NOTE = ("These are the metrics of a tiny judge (well under 100M parameters) trained on this machine: they "
             "prove that the pipeline works end to end, not that the judge is any good.")


class IncompleteStore(RuntimeError):
    """The store has units that are not done; the message names the shards that own them."""


@dataclass(frozen=True)
class StoreArrays:
    """The columns the merge needs, read once."""

    record: np.ndarray
    order: np.ndarray
    with_reference: np.ndarray
    scores: np.ndarray
    status: np.ndarray
    truncated: np.ndarray
    done: np.ndarray
    label: np.ndarray
    label_w_reference: np.ndarray
    subset: np.ndarray

    @classmethod
    def read(cls, store: VerdictStore) -> "StoreArrays":
        g = store.group
        return cls(record=g["units/record"][:], order=g["units/order"][:], with_reference=g["units/with_reference"][:],
                   scores=g["verdicts/scores"][:], status=g["verdicts/status"][:],
                   truncated=g["verdicts/truncated"][:], done=g["verdicts/done"][:], label=g["records/label"][:],
                   label_w_reference=g["records/label_w_reference"][:], subset=g["records/subset"][:])


def missing_by_shard(store: VerdictStore, done: np.ndarray) -> dict[int, int]:
    """Units not done, per owning shard (only shards with missing units)."""
    n_shards = int(store.attrs.get("n_shards", 1))
    out = {}
    for k in range(n_shards):
        chunks = store.shard_chunks(k, n_shards)
        if not chunks:
            continue
        sl = slice(store.chunk_slice(chunks[0]).start, store.chunk_slice(chunks[-1]).stop)
        missing = int((~done[sl]).sum())
        if missing:
            out[k] = missing
    return out


def pair_metrics(a: StoreArrays, with_reference: bool) -> dict[str, Any] | None:
    """Metrics for the pairwise units of one reference mode; ``None`` if the run has no such units."""
    sel = a.with_reference == with_reference
    if not sel.any():
        return None
    seq_idx = np.flatnonzero(sel & (a.order == 0))
    rev_idx = np.flatnonzero(sel & (a.order == 1))
    units = np.flatnonzero(sel)
    done_units = units[a.done[units]]
    st = a.status[done_units]
    out: dict[str, Any] = {
        "units": int(len(units)), "units_done": int(len(done_units)),
        "parse_failures": int((st == Status.PARSE_FAILED).sum()),
        "prompt_too_long": int((st == Status.PROMPT_TOO_LONG).sum()),
        "truncated_prompts": int(a.truncated[done_units].sum()),
    }
    out["parse_failure_rate"] = out["parse_failures"] / max(len(done_units), 1)
    labels = a.label_w_reference if with_reference else a.label
    # Align the two orders of each pair by record (units of a record are adjacent, but do not rely on it).
    seq = seq_idx[a.done[seq_idx]]
    rev = None
    if len(rev_idx):
        rev_of_record = np.full(len(a.label), -1, dtype=np.int64)
        rev_of_record[a.record[rev_idx]] = rev_idx
        rev = rev_of_record[a.record[seq]]
        paired = rev >= 0
        paired[paired] = a.done[rev[paired]]
        seq, rev = seq[paired], rev[paired]
    gt = labels[a.record[seq]].astype(np.int64)
    has_gt = gt != NO_LABEL
    out["pairs"] = int(len(seq))
    out["pairs_without_ground_truth"] = int((~has_gt).sum())
    seq_lab = win_array(a.scores[seq])
    rev_lab = win_array(a.scores[rev]) if rev is not None else None
    if has_gt.any():
        out.update(judgelm_metrics(gt[has_gt], seq_lab[has_gt], None if rev_lab is None else rev_lab[has_gt]))
        if rev_lab is not None:  # the swapped run scored against the truth, after undoing the swap
            out["agreement_swapped"] = float((gt[has_gt] == -rev_lab[has_gt]).mean())
    elif rev_lab is not None and len(seq):
        out.update(swap_metrics(seq_lab, rev_lab))
        out["total_num"] = int(len(seq))
    return out


def score_summary(a: StoreArrays) -> dict[str, Any]:
    """For single-answer and N-answer grading: parse rate and score statistics."""
    done = a.done
    st = a.status[done]
    ok = st == Status.OK
    vals = a.scores[done][ok]
    return {"units": int(len(done)), "units_done": int(done.sum()),
            "parse_failures": int((st == Status.PARSE_FAILED).sum()),
            "parse_failure_rate": float((st == Status.PARSE_FAILED).mean()) if len(st) else 0.0,
            "mean_score": float(np.nanmean(vals)) if vals.size else None}


def compute_metrics(store: VerdictStore, allow_partial: bool = False) -> dict[str, Any]:
    a = StoreArrays.read(store)
    missing = missing_by_shard(store, a.done)
    n_missing = int((~a.done).sum())
    if n_missing and not allow_partial:
        shards = ", ".join(f"shard {k} ({m} units)" for k, m in sorted(missing.items()))
        raise IncompleteStore(f"{store.path}: {n_missing} of {store.n_units} units are not judged; missing in "
                              f"{shards}. Resume those shards, or merge with allow_partial=true.")
    out: dict[str, Any] = {
        "run": store.attrs.get("run"), "model": store.attrs.get("model"), "data": store.attrs.get("data"),
        "mode": store.attrs.get("mode"), "records": store.n_records, "units": store.n_units,
        "complete": n_missing == 0, "missing_units": n_missing, "missing_by_shard": {str(k): v for k, v in missing.items()},
    }
    if store.attrs.get("tiny_judge"):
        out["note"] = TINY_NOTE
    if store.attrs.get("mode", "pair") == "pair":
        groups = {name: pair_metrics(a, w) for name, w in (("without_reference", False), ("with_reference", True))}
        out["groups"] = {k: v for k, v in groups.items() if v is not None}
    else:
        out["groups"] = {"all": score_summary(a)}
    return out


_ROWS = (("agreement", "Agreement", True), ("precision", "Precision", True), ("recall", "Recall", True),
         ("f1", "F1", True), ("consistency", "Consistency", True), ("prefer_before_rate", "Prefer 1st slot", True),
         ("prefer_after_rate", "Prefer 2nd slot", True), ("delta_bias", "Delta bias", True),
         ("total_bias", "Total bias", True), ("agreement_swapped", "Agreement (swapped order)", True),
         ("parse_failure_rate", "Parse failures", True), ("total_num", "Pairs scored", False),
         ("pairs_without_ground_truth", "Pairs without ground truth", False),
         ("prompt_too_long", "Units rejected (prompt too long)", False),
         ("truncated_prompts", "Units with truncated prompts", False), ("units_done", "Units judged", False),
         ("mean_score", "Mean score", False))


def format_table(m: dict[str, Any]) -> str:
    """A Markdown table, percentages ×100 as in the JudgeLM paper."""
    groups = m["groups"]
    names = list(groups)
    lines = [f"Run {m.get('run')}: model {m.get('model')}, data {m.get('data')}, {m['units']} units"
             + ("" if m["complete"] else f" — PARTIAL: {m['missing_units']} units missing"), "",
             "| metric | " + " | ".join(n.replace("_", " ") for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for key, title, pct in _ROWS:
        if not any(key in g for g in groups.values()):
            continue
        cells = []
        for n in names:
            v = groups[n].get(key)
            cells.append("—" if v is None else (f"{100 * v:.2f}" if pct else (f"{v:.2f}" if isinstance(v, float) else str(v))))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    if m.get("note"):
        lines += ["", f"Note: {m['note']}"]
    return "\n".join(lines) + "\n"


def merge_run(run_dir: str | Path, allow_partial: bool = False) -> dict[str, Any]:
    """Merge a run: write ``metrics.json`` and ``metrics.md``; returns the metrics."""
    rd = RunDir(Path(run_dir))
    store = VerdictStore(rd.store)
    m = compute_metrics(store, allow_partial)
    rd.metrics.write_text(json.dumps(m, indent=2) + "\n")
    rd.table.write_text(format_table(m))
    return m
