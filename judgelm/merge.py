"""The merge: read a run's verdict store, compute the metrics, write ``metrics.json`` and a readable table.

Everything is vectorised over the store's arrays, so a store of a million units merges in seconds. Metrics are
computed separately without and with the reference (JudgeLM reports them separately), over the pairs whose
ground truth exists (JudgeLM drops pairs whose GPT-4 judgement does not parse); prediction parse failures count
as ties and their rate is reported.

Beyond JudgeLM's numbers (``groups``), each group carries Cohen's kappa, agreement without ties, position and length
bias, a bootstrap interval for agreement, score correlations where the ground truth has scores, per-subset and
per-category breakdowns and, when the run stored score-token log-probabilities, calibration (``judgelm.calibration``).
``benchmarks`` scores every benchmark of the store with its own protocol (``judgelm.benchmarks.protocols``); its
``rows`` make the leaderboard. Undefined values (a correlation of constant scores, a share of nothing) are ``null``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from judgelm.benchmarks import BENCHMARKS, benchmark_of
from judgelm.benchmarks.protocols import PAIR_PROTOCOLS, Graded, Pairs, correlation_protocol
from judgelm.calibration import UnitConfidence, reliability, unit_confidence
from judgelm.evaluation.results import write_leaderboard
from judgelm.metrics import (agreement_without_ties, bootstrap_ci, cohen_kappa, confusion, judgelm_metrics, kendall,
                             length_bias, pearson, position_bias, spearman, swap_metrics, weighted_mean)
from judgelm.rundir import RunDir, write_text_atomic
from judgelm.store import NO_LABEL, VerdictStore
from judgelm.verdicts import Status, win_array

log = logging.getLogger("judgelm.merge")

CONFIDENCE_FILE = "confidence.jsonl"
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
    category: np.ndarray
    gt_scores: np.ndarray  # (n_records, n_scores), NaN where the ground truth has no scores
    answer_chars: np.ndarray  # (n_records, 2): lengths of answers 1 and 2, for length bias

    @classmethod
    def read(cls, store: VerdictStore) -> "StoreArrays":
        g = store.group
        return cls(record=g["units/record"][:], order=g["units/order"][:], with_reference=g["units/with_reference"][:],
                   scores=g["verdicts/scores"][:], status=g["verdicts/status"][:],
                   truncated=g["verdicts/truncated"][:], done=g["verdicts/done"][:], label=g["records/label"][:],
                   label_w_reference=g["records/label_w_reference"][:], subset=g["records/subset"][:],
                   category=g["records/category"][:], gt_scores=g["records/gt_scores"][:],
                   answer_chars=g["records/answer_chars"][:, :2])


def missing_by_shard(store: VerdictStore, done: np.ndarray) -> dict[int, int]:
    """Units not done, per owning shard (only shards with missing units)."""
    n_shards = int(store.attrs.get("n_shards", 1))
    missing = {k: int((~done[store.shard_slice(k, n_shards)]).sum()) for k in range(n_shards)}
    return {k: m for k, m in missing.items() if m}


def align_orders(a: StoreArrays, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Done original-order units of ``sel`` and, if the run judged both orders, the swapped unit of each same pair.

    Pairs whose swapped unit is missing or not done are left out, so both arrays always line up.
    """
    seq_idx = np.flatnonzero(sel & (a.order == 0))
    rev_idx = np.flatnonzero(sel & (a.order == 1))
    # Align the two orders of each pair by record (units of a record are adjacent, but do not rely on it).
    seq = seq_idx[a.done[seq_idx]]
    if not len(rev_idx):
        return seq, None
    rev_of_record = np.full(len(a.label), -1, dtype=np.int64)
    rev_of_record[a.record[rev_idx]] = rev_idx
    rev = rev_of_record[a.record[seq]]
    paired = rev >= 0
    paired[paired] = a.done[rev[paired]]
    return seq[paired], rev[paired]


def pair_metrics(a: StoreArrays, with_reference: bool, conf: UnitConfidence | None = None) -> dict[str, Any] | None:
    """Metrics for the pairwise units of one reference mode; ``None`` if the run has no such units."""
    sel = a.with_reference == with_reference
    if not sel.any():
        return None
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
    seq, rev = align_orders(a, sel)
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
        out.update(_beyond_judgelm(a, seq[has_gt], gt[has_gt], seq_lab[has_gt],
                                   None if rev_lab is None else rev_lab[has_gt], with_reference))
    elif rev_lab is not None and len(seq):
        out.update(swap_metrics(seq_lab, rev_lab))
        out["total_num"] = int(len(seq))
    if rev_lab is not None and len(seq):
        out.update(position_bias(seq_lab, rev_lab))
    if conf is not None:
        out["calibration"] = calibration_metrics(a, conf, seq, rev, gt)
    return out


def _beyond_judgelm(a: StoreArrays, seq: np.ndarray, gt: np.ndarray, seq_lab: np.ndarray, rev_lab: np.ndarray | None,
                    with_reference: bool) -> dict[str, Any]:
    """The metrics JudgeLM does not report, over the pairs with ground truth (see ``judgelm.metrics``)."""
    rec = a.record[seq]
    correct = (seq_lab == gt).astype(float)
    out: dict[str, Any] = {"kappa": cohen_kappa(gt, seq_lab), "confusion": confusion(gt, seq_lab).tolist(),
                           "agreement_ci95": list(bootstrap_ci(weighted_mean, correct))}
    out["agreement_without_ties"], out["pairs_without_ties"] = agreement_without_ties(gt, seq_lab)
    out.update(length_bias(gt, seq_lab, a.answer_chars[rec, 0], a.answer_chars[rec, 1]))
    gt_scores = a.gt_scores[rec]
    if not with_reference and np.isfinite(gt_scores).all(axis=1).any():
        # Per answer: the judge's score of each answer against the ground truth's score of it.
        x, y = a.scores[seq].ravel(), gt_scores.ravel()
        out["score_pearson"], out["score_spearman"] = pearson(x, y), spearman(x, y)
    for key, per_record in (("by_subset", a.subset), ("by_category", a.category)):
        values, code = np.unique(per_record, return_inverse=True)  # codes per record, then per pair: no string work
        code = code.ravel()[rec]
        named = [(str(v), k) for k, v in enumerate(values) if str(v) and (code == k).any()]
        if len(named) > 1:
            out[key] = {v: judgelm_metrics(gt[code == k], seq_lab[code == k],
                                           None if rev_lab is None else rev_lab[code == k]) for v, k in named}
    return out


def calibration_metrics(a: StoreArrays, conf: UnitConfidence, seq: np.ndarray, rev: np.ndarray | None,
                        gt: np.ndarray) -> dict[str, Any]:
    """Reliability of the judge's confidence in its own verdicts, and agreement of its expected-score verdicts.

    Every judged unit with ground truth counts, in the frame the judge saw (a swapped unit's truth is ``-gt``).
    """
    has_gt = gt != NO_LABEL
    units = [seq[has_gt]] + ([rev[has_gt]] if rev is not None else [])
    truth = [gt[has_gt]] + ([-gt[has_gt]] if rev is not None else [])
    u, t = np.concatenate(units), np.concatenate(truth)
    ok = conf.available[u]
    out = reliability(conf.confidence[u][ok], win_array(a.scores[u][ok]) == t[ok])
    out["units_with_confidence"] = int(ok.sum())
    out["units"] = int(len(u))
    if ok.any():
        out["agreement_expected_score"] = float((win_array(conf.expected[u][ok]) == t[ok]).mean())
        out["mean_numeric_mass"] = float(conf.numeric_mass[u][ok].mean())
    return out


def score_summary(a: StoreArrays, conf: UnitConfidence | None = None) -> dict[str, Any]:
    """For single-answer and N-answer grading: parse rate, score statistics and, where the ground truth has a
    score per answer (single-answer grading), its correlation with the judge's score."""
    done = a.done
    st = a.status[done]
    ok = st == Status.OK
    vals = a.scores[done][ok]
    out = {"units": int(len(done)), "units_done": int(done.sum()),
           "parse_failures": int((st == Status.PARSE_FAILED).sum()),
           "parse_failure_rate": float((st == Status.PARSE_FAILED).mean()) if len(st) else 0.0,
           "mean_score": float(np.nanmean(vals)) if vals.size else None}
    if a.scores.shape[1] == 1 and np.isfinite(a.gt_scores).any():
        units = np.flatnonzero(done & np.isfinite(a.gt_scores[a.record, 0]))
        x, y = a.scores[units, 0], a.gt_scores[a.record[units], 0]
        out.update(pearson=pearson(x, y), spearman=spearman(x, y), kendall=kendall(x, y))
        if conf is not None:
            ok = conf.available[units]
            out["calibration"] = {"units_with_confidence": int(ok.sum()),
                                  "pearson_expected_score": pearson(conf.expected[units[ok], 0], y[ok])}
    return out


def benchmark_results(a: StoreArrays, mode: str, conf: UnitConfidence | None = None,
                      n_boot: int = 1000) -> dict[str, dict[str, Any]]:
    """Each benchmark of the store scored with its own protocol, per reference mode, with its parse-failure rate."""
    subsets, subset_code = np.unique(a.subset, return_inverse=True)
    names, bench_of_subset = np.unique([benchmark_of(s) for s in subsets], return_inverse=True)
    unit_bench = bench_of_subset[subset_code.ravel()][a.record]  # benchmark code of every unit
    out: dict[str, dict[str, Any]] = {}
    for group, with_reference in (("without_reference", False), ("with_reference", True)):
        sel = a.with_reference == with_reference
        if not sel.any():
            continue
        labels = a.label_w_reference if with_reference else a.label
        results = {}
        for code in np.unique(unit_bench[sel]):
            name = str(names[code])
            mine = sel & (unit_bench == code)
            done = np.flatnonzero(mine & a.done)
            failure_rate = float((a.status[done] == Status.PARSE_FAILED).mean()) if len(done) else None
            protocol = BENCHMARKS[name].protocol if name in BENCHMARKS else "judgelm"
            if mode == "pair":
                seq, rev = align_orders(a, mine)
                gt = labels[a.record[seq]].astype(np.int64)
                keep = gt != NO_LABEL
                if not keep.any():
                    continue
                seq, gt = seq[keep], gt[keep]
                rev = None if rev is None else rev[keep]
                rec = a.record[seq]
                pairs = Pairs(gt=gt, seq=win_array(a.scores[seq]).astype(np.int64),
                              rev=None if rev is None else win_array(a.scores[rev]).astype(np.int64),
                              subset=a.subset[rec], category=a.category[rec])
                result = PAIR_PROTOCOLS.get(protocol, PAIR_PROTOCOLS["judgelm"])(name, pairs, n_boot)
                if pairs.rev is not None:
                    result["swap"] = swap_metrics(pairs.seq, pairs.rev)
            elif mode == "single":
                rec = a.record[done]
                gt = a.gt_scores[rec, 0]
                keep = np.isfinite(gt)
                if not keep.any():
                    continue
                graded = Graded(score=a.scores[done, 0][keep].astype(float), gt=gt[keep].astype(float),
                                subset=a.subset[rec][keep], category=a.category[rec][keep],
                                expected=None if conf is None else conf.expected[done, 0][keep])
                result = correlation_protocol(name, graded, n_boot)
            else:
                continue
            for row in result["rows"]:
                row["reference"] = with_reference
                row["parse_failure_rate"] = failure_rate
            results[name] = result
        if results:
            out[group] = results
    return out


def confidence_of(store: VerdictStore, a: StoreArrays) -> UnitConfidence | None:
    """Per-unit confidence when the run stored score-token log-probabilities and the judge's tokenizer loads."""
    if "top_ids" not in store.attrs.get("extra_arrays", []):
        return None
    from judgelm.models import load_tokenizer

    try:
        tokenizer = load_tokenizer(store.attrs["model"])
    except Exception as e:  # the merge must not fail because the judge has moved; say why calibration is missing
        log.warning("no calibration: cannot load the tokenizer of %s (%s)", store.attrs.get("model"), e)
        return None
    texts = store.group["verdicts/text"][:].tolist()
    labels = win_array(a.scores) if a.scores.shape[1] == 2 else np.zeros(len(texts), dtype=np.int8)
    return unit_confidence(store.group["verdicts/top_ids"][:], store.group["verdicts/top_logprobs"][:], texts,
                           labels, a.scores.shape[1], tokenizer)


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by ``None``: valid JSON, and equal when recomputed."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def compute_metrics(store: VerdictStore, allow_partial: bool = False) -> dict[str, Any]:
    return _compute(store, allow_partial)[0]


def _compute(store: VerdictStore, allow_partial: bool) -> tuple[dict[str, Any], UnitConfidence | None]:
    """The metrics, and the per-unit confidence they were derived from (None without log-probabilities)."""
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
    if not store.attrs.get("imported"):  # imported verdicts were neither judged here nor cached
        out["units_from_cache"] = int(store.cached().sum())
    if store.attrs.get("tiny_judge"):
        out["note"] = TINY_NOTE
    conf = confidence_of(store, a)
    mode = store.attrs.get("mode", "pair")
    if mode == "pair":
        groups = {name: pair_metrics(a, w, conf) for name, w in (("without_reference", False), ("with_reference", True))}
        out["groups"] = {k: v for k, v in groups.items() if v is not None}
    else:
        out["groups"] = {"all": score_summary(a, conf)}
    out["benchmarks"] = benchmark_results(a, mode, conf)
    return finite(out), conf


def write_confidence(path: Path, store: VerdictStore, conf: UnitConfidence) -> None:
    """One JSON line per unit with a derived confidence: the judge's expected scores, its probability for each
    verdict label (pairs) and for the label it gave, so users can sort or filter verdicts by confidence."""
    g = store.group
    qid, record, order = g["records/question_id"][:], g["units/record"][:], g["units/order"][:]
    with_ref, text = g["units/with_reference"][:], g["verdicts/text"][:]
    with open(path, "w", encoding="utf-8") as f:
        for u in np.flatnonzero(conf.available):
            row = {"unit": int(u), "question_id": qid[record[u]], "order": int(order[u]),
                   "with_reference": bool(with_ref[u]), "verdict": str(text[u]).strip(),
                   "expected_scores": conf.expected[u].tolist(), "top_k_number_mass": float(conf.numeric_mass[u])}
            if np.isfinite(conf.confidence[u]):
                row["p_label"] = dict(zip(("-1", "0", "1"), conf.label_probs[u].tolist()))
                row["confidence"] = float(conf.confidence[u])
            f.write(json.dumps(row) + "\n")


_ROWS = (("agreement", "Agreement", True), ("precision", "Precision", True), ("recall", "Recall", True),
         ("f1", "F1", True), ("consistency", "Consistency", True), ("prefer_before_rate", "Prefer 1st slot", True),
         ("prefer_after_rate", "Prefer 2nd slot", True), ("delta_bias", "Delta bias", True),
         ("total_bias", "Total bias", True), ("agreement_swapped", "Agreement (swapped order)", True),
         ("parse_failure_rate", "Parse failures", True), ("total_num", "Pairs scored", False),
         ("pairs_without_ground_truth", "Pairs without ground truth", False),
         ("prompt_too_long", "Units rejected (prompt too long)", False),
         ("truncated_prompts", "Units with truncated prompts", False), ("units_done", "Units judged", False),
         ("mean_score", "Mean score", False), ("agreement_ci95", "Agreement 95 % CI (bootstrap)", True),
         ("kappa", "Cohen's kappa", False), ("agreement_without_ties", "Agreement without ties", True),
         ("flip_to_first_share", "Flips towards the 1st slot", True),
         ("longer_wins_judge", "Longer answer wins (judge)", True),
         ("longer_wins_truth", "Longer answer wins (truth)", True), ("score_pearson", "Score Pearson r", False),
         ("score_spearman", "Score Spearman rho", False), ("pearson", "Pearson r", False),
         ("spearman", "Spearman rho", False), ("kendall", "Kendall tau", False),
         ("calibration.ece", "Calibration error (ECE)", True),
         ("calibration.mean_confidence", "Mean confidence", True),
         ("calibration.agreement_expected_score", "Agreement (expected scores)", True),
         ("calibration.pearson_expected_score", "Pearson r (expected score)", False))


def _get(group: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        group = group.get(part) if isinstance(group, dict) else None
    return group


def _cell(v: Any, pct: bool) -> str:
    if v is None:
        return "—"
    if isinstance(v, list):
        return "—" if all(x is None for x in v) else "–".join(_cell(x, pct) for x in v)
    if pct:
        return f"{100 * v:.2f}"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def format_table(m: dict[str, Any]) -> str:
    """A Markdown table, percentages ×100 as in the JudgeLM paper."""
    groups = m["groups"]
    names = list(groups)
    lines = [f"Run {m.get('run')}: model {m.get('model')}, data {m.get('data')}, {m['units']} units"
             + ("" if m["complete"] else f" — PARTIAL: {m['missing_units']} units missing"), "",
             "| metric | " + " | ".join(n.replace("_", " ") for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for key, title, pct in _ROWS:
        if all(_get(g, key) is None for g in groups.values()):
            continue
        lines.append(f"| {title} | " + " | ".join(_cell(_get(groups[n], key), pct) for n in names) + " |")
    if m.get("units_from_cache") is not None:
        lines += ["", f"{m['units_from_cache']} of {m['units']} units from the verdict cache, "
                      f"{m['units'] - m['units_from_cache']} judged."]
    if m.get("note"):
        lines += ["", f"Note: {m['note']}"]
    return "\n".join(lines) + "\n"


def merge_run(run_dir: str | Path, allow_partial: bool = False) -> dict[str, Any]:
    """Merge a run: write ``metrics.json`` and ``metrics.md`` (with the benchmark rows), when the run stored
    log-probabilities ``confidence.jsonl`` (``write_confidence``), and for a model evaluation the model
    leaderboard (``judgelm.evaluation.results``); returns the metrics."""
    rd = RunDir(Path(run_dir))
    store = VerdictStore(rd.store)
    m, conf = _compute(store, allow_partial)
    if conf is not None:
        write_confidence(rd.root / CONFIDENCE_FILE, store, conf)
    write_text_atomic(rd.metrics, json.dumps(m, indent=2) + "\n")
    rows = leaderboard_rows(m)
    write_text_atomic(rd.table, format_table(m) + ("\n" + format_leaderboard(rows) if rows else ""))
    if store.record_models() is not None:
        write_leaderboard(rd.root, store)
    return m


def leaderboard_rows(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The protocol rows of a run's metrics, in benchmark order."""
    return [row for group in m.get("benchmarks", {}).values() for result in group.values() for row in result["rows"]]


def format_leaderboard(rows: list[dict[str, Any]], title: str = "", note: str | None = None) -> str:
    """One Markdown table: every benchmark row with its protocol's headline, interval, size, consistency."""
    lines = ([f"## {title}", ""] if title else []) + [
        "| benchmark | subset | reference | metric | score | 95 % CI | n | consistency | parse failures |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pct = not r["metric"].startswith("pearson")
        lines.append(f"| {r['benchmark']} | {r['subset']} | {'with' if r.get('reference') else 'without'} | "
                     f"{r['metric']} | {_cell(r['score'], pct)} | {_cell(r['ci95'], pct)} | {r['n']} | "
                     f"{_cell(r.get('consistency'), True)} | {_cell(r.get('parse_failure_rate'), True)} |")
    if note:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"
