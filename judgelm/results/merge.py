"""The merge: read a run's verdict store, compute the metrics, write ``metrics.json`` and a readable table.

Everything is vectorised over the store's arrays, so a store of a million units merges in seconds. Metrics are
computed separately without and with the reference (JudgeLM reports them separately), over the pairs whose
ground truth exists (JudgeLM drops pairs whose GPT-4 judgement does not parse); prediction parse failures count
as ties and their rate is reported.

Beyond JudgeLM's numbers (``groups``), each group carries Cohen's kappa, agreement without ties, position and length
bias, a bootstrap interval for agreement, score correlations where the ground truth has scores, per-subset and
per-category breakdowns and, when the run stored score-token log-probabilities, calibration
(``judgelm.scoring.calibration``). ``benchmarks`` scores every benchmark of the store with its own protocol
(``judgelm.scoring.protocols``); its ``rows`` make the leaderboard. Undefined values (a correlation of constant
scores, a share of nothing) are ``null``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from judgelm.data.benchmarks import BENCHMARKS, benchmark_of
from judgelm.data.verdicts import Status, win_array
from judgelm.inference.usage import total_usage
from judgelm.judging.progress import cache_unreadable
from judgelm.judging.store import NO_LABEL, TOP_IDS, TOP_LOGPROBS, Columns, VerdictStore
from judgelm.judging.validate import DATA_NOTES
from judgelm.results.leaderboard import write_leaderboard
from judgelm.results.tables import TINY_NOTE, format_leaderboard, format_table, leaderboard_rows
from judgelm.rundir import RunDir, finite, replaced_atomically, write_text_atomic
from judgelm.scoring.calibration import UnitConfidence, reliability, unit_confidence
from judgelm.scoring.metrics import (
    agreement_without_ties,
    bootstrap_ci,
    cohen_kappa,
    confusion,
    judgelm_metrics,
    kendall,
    length_bias,
    pearson,
    position_bias,
    spearman,
    swap_metrics,
    weighted_mean,
)
from judgelm.scoring.panel import panel_agreement, read_panel
from judgelm.scoring.protocols import PAIR_PROTOCOLS, Graded, Pairs, correlation_protocol
from judgelm.scoring.verdict_policy import (
    Draws,
    choose,
    relabel_confidence,
    retry_summary,
    sample_agreement,
    samples_of,
    status_of,
)

log = logging.getLogger("judgelm.results.merge")

CONFIDENCE_FILE = "confidence.jsonl"


class IncompleteStore(RuntimeError):
    """The store has units that are not done; the message names the shards that own them."""


def missing_by_shard(store: VerdictStore, done: np.ndarray) -> dict[int, int]:
    """Units not done, per owning shard (only shards with missing units)."""
    n_shards = int(store.attrs.get("n_shards", 1))
    missing = {k: int((~done[store.shard_slice(k, n_shards)]).sum()) for k in range(n_shards)}
    return {k: m for k, m in missing.items() if m}


def comparison_of(a: Columns) -> tuple[np.ndarray, int]:
    """Each unit's comparison, the pair of answers both its orders judge: its record and turn as one index, and the
    number of such indices."""
    n_turns = int(a.turn.max(initial=0)) + 1
    return a.record.astype(np.int64) * n_turns + a.turn, len(a.label) * n_turns


def align_orders(a: Columns, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Judged original-order units of ``sel`` and, if the run judged both orders, the swapped unit of each same pair.

    Pairs whose swapped unit is missing, not done or not judged (its prompt was too long) are left out, so both
    arrays always line up and no pair is scored from a verdict that was never given.
    """
    ok = judged(a)
    seq_idx = np.flatnonzero(sel & (a.order == 0))
    rev_idx = np.flatnonzero(sel & (a.order == 1))
    # Align the two orders of each pair by record and turn (units of a record are adjacent, but do not rely on it).
    seq = seq_idx[ok[seq_idx]]
    if not len(rev_idx):
        return seq, None
    pair, n_pairs = comparison_of(a)
    rev_of_pair = np.full(n_pairs, -1, dtype=np.int64)
    rev_of_pair[pair[rev_idx]] = rev_idx
    rev = rev_of_pair[pair[seq]]
    paired = rev >= 0
    paired[paired] = ok[rev[paired]]
    return seq[paired], rev[paired]


def judged(a: Columns) -> np.ndarray:
    """Units with a verdict: done, and not refused for a prompt too long (those have no scores at all, and a
    missing verdict must not count as a tie the way an unparsable one does)."""
    return a.done & (a.status != Status.PROMPT_TOO_LONG)


def pairs_dropped_unjudged(a: Columns, sel: np.ndarray) -> int:
    """Pairs of ``sel`` whose units are all done but at least one was never judged (prompt too long)."""
    pair, n_pairs = comparison_of(a)
    rec = pair[sel]
    n = np.bincount(rec, minlength=n_pairs)
    n_done = np.bincount(rec, weights=a.done[sel], minlength=n_pairs)
    n_judged = np.bincount(rec, weights=judged(a)[sel], minlength=n_pairs)
    return int(((n > 0) & (n_done == n) & (n_judged < n)).sum())


def pair_metrics(a: Columns, with_reference: bool, conf: UnitConfidence | None = None) -> dict[str, Any] | None:
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
    out["parse_failure_rate"] = out["parse_failures"] / max(len(done_units) - out["prompt_too_long"], 1)
    out["pairs_dropped_unjudged"] = pairs_dropped_unjudged(a, sel)
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


def _beyond_judgelm(a: Columns, seq: np.ndarray, gt: np.ndarray, seq_lab: np.ndarray, rev_lab: np.ndarray | None,
                    with_reference: bool) -> dict[str, Any]:
    """The metrics JudgeLM does not report, over the pairs with ground truth (see ``judgelm.scoring.metrics``)."""
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


def calibration_metrics(a: Columns, conf: UnitConfidence, seq: np.ndarray, rev: np.ndarray | None,
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


def score_summary(a: Columns, conf: UnitConfidence | None = None) -> dict[str, Any]:
    """For single-answer and N-answer grading: parse rate, score statistics and, where the ground truth has a
    score per answer (single-answer grading), its correlation with the judge's score."""
    done, ok_units = a.done, judged(a)
    st = a.status[ok_units]
    vals = a.scores[ok_units][st == Status.OK]
    out = {"units": int(len(done)), "units_done": int(done.sum()),
           "prompt_too_long": int((a.status[done] == Status.PROMPT_TOO_LONG).sum()),
           "parse_failures": int((st == Status.PARSE_FAILED).sum()),
           "parse_failure_rate": float((st == Status.PARSE_FAILED).mean()) if len(st) else 0.0,
           "mean_score": float(np.nanmean(vals)) if vals.size else None}
    if a.scores.shape[1] == 1 and np.isfinite(a.gt_scores).any():
        units = np.flatnonzero(ok_units & np.isfinite(a.gt_scores[a.record, 0]))
        x, y = a.scores[units, 0], a.gt_scores[a.record[units], 0]
        out.update(pearson=pearson(x, y), spearman=spearman(x, y), kendall=kendall(x, y))
        if conf is not None:
            ok = conf.available[units]
            out["calibration"] = {"units_with_confidence": int(ok.sum()),
                                  "pearson_expected_score": pearson(conf.expected[units[ok], 0], y[ok])}
    return out


def benchmark_results(a: Columns, mode: str, conf: UnitConfidence | None = None,
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
            done = np.flatnonzero(mine & judged(a))
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


def confidence_of(store: VerdictStore, a: Columns) -> UnitConfidence | None:
    """Per-unit confidence when the run stored score-token log-probabilities and the judge's tokenizer loads."""
    if not store.has_logprobs():
        return None
    from judgelm.inference.models import load_tokenizer

    try:
        tokenizer = load_tokenizer(store.attrs["model"])
    except Exception as e:  # the merge must not fail because the judge has moved; say why calibration is missing
        log.warning("no calibration: cannot load the tokenizer of %s (%s)", store.attrs.get("model"), e)
        return None
    texts = store.verdicts("text").tolist()
    labels = win_array(a.scores) if a.scores.shape[1] == 2 else np.zeros(len(texts), dtype=np.int8)
    return unit_confidence(store.verdicts(TOP_IDS), store.verdicts(TOP_LOGPROBS), texts, labels, a.scores.shape[1],
                           tokenizer)


def _headline(a: Columns, mode: str) -> dict[str, Any]:
    """The few numbers that show how a run's verdicts move with the number of samples."""
    if mode != "pair":
        return {k: v for k, v in score_summary(a).items() if k in ("pearson", "spearman", "parse_failure_rate")}
    g = pair_metrics(a, False) or pair_metrics(a, True) or {}
    return {k: g.get(k) for k in ("agreement", "kappa", "consistency", "parse_failure_rate")}


def apply_policy(store: VerdictStore, a: Columns, conf: UnitConfidence | None, policy: str,
                 mode: str) -> tuple[Columns, UnitConfidence | None, dict[str, Any]]:
    """The verdicts ``policy`` chooses from the stored draws (``judgelm.scoring.verdict_policy``), the judge's
    confidence in the chosen labels, and what the draws show: parse failures before and after re-asks, agreement
    between a unit's samples, and the headline metrics for the first k = 1, 3, 5, ... samples."""
    draws = Draws.read(store, a.scores, a.status)
    expected = None if conf is None else conf.expected
    samples = samples_of(draws)

    def chosen(k: int) -> Columns:
        scores = choose(policy, samples[:, :k], expected)
        return dataclasses.replace(a, scores=scores, status=status_of(scores, a.status))

    out: dict[str, Any] = {"policy": policy, "samples": samples.shape[1], "retries": retry_summary(draws, a.done)}
    if samples.shape[1] > 1:
        out["sample_agreement"] = sample_agreement(samples[a.done])
        ks = sorted({*range(1, samples.shape[1] + 1, 2), samples.shape[1]})
        out["by_k"] = [{"k": k, **_headline(chosen(k), mode)} for k in ks]
    a = chosen(samples.shape[1])
    if conf is not None and a.scores.shape[1] == 2:
        labels, confidence = relabel_confidence(conf.label_probs, a.scores)
        conf = dataclasses.replace(conf, labels=labels, confidence=confidence)
    return a, conf, out


def panel_section(store: VerdictStore, a: Columns, mode: str, policy: str) -> dict[str, Any] | None:
    """With panel judges in the store (``judgelm.judging.panel``): every judge's headline metrics, the panel's by
    majority vote and by mean score, and the agreement between judges, all on the units every judge judged."""
    judges = read_panel(store, a.scores, a.status, a.done, policy)
    if len(judges) < 2:
        return None
    common = np.logical_and.reduce([j.judged for j in judges])

    def on_common(scores: np.ndarray, status: np.ndarray) -> dict[str, Any]:
        # Only the common units, so a judge that saw one answer order is scored on that order alone.
        per_unit = {"record": a.record, "order": a.order, "with_reference": a.with_reference, "scores": scores,
                    "status": status, "truncated": a.truncated, "done": a.done, "turn": a.turn}
        return _headline(dataclasses.replace(a, **{k: v[common] for k, v in per_unit.items()}), mode)

    stacked = np.stack([j.scores for j in judges], axis=1)
    panel = {f"panel:{policy}": choose(policy, stacked) for policy in ("majority", "mean")}
    return {"units": int(common.sum()), "judges": {j.name: on_common(j.scores, j.status) for j in judges},
            **{name: on_common(s, status_of(s, a.status)) for name, s in panel.items()},
            "agreement": panel_agreement(judges, np.flatnonzero(common))}


def compute_metrics(store: VerdictStore, allow_partial: bool = False, policy: str = "primary") -> dict[str, Any]:
    return _compute(store, allow_partial, policy)[0]


def _compute(store: VerdictStore, allow_partial: bool,
             policy: str = "primary") -> tuple[dict[str, Any], UnitConfidence | None]:
    """The metrics, and the per-unit confidence they were derived from (None without log-probabilities)."""
    a = store.columns()
    missing = missing_by_shard(store, a.done)
    n_missing = int((~a.done).sum())
    if n_missing and not allow_partial:
        shards = ", ".join(f"shard {k} ({m} units)" for k, m in sorted(missing.items()))
        raise IncompleteStore(f"{store.path}: {n_missing} of {store.n_units} units are not judged; missing in "
                              f"{shards}. Resume those shards, or merge with allow_partial=true.")
    out: dict[str, Any] = {
        "run": store.attrs.get("run"), "model": store.attrs.get("model"), "data": store.attrs.get("data"),
        "mode": store.attrs.get("mode"), "records": store.n_records, "units": store.n_units,
        "complete": n_missing == 0, "missing_units": n_missing,
        "missing_by_shard": {str(k): v for k, v in missing.items()},
    }
    out["data_notes"] = {k: store.attrs[k] for k in DATA_NOTES if k in store.attrs}
    if not store.attrs.get("imported"):  # imported verdicts were neither judged here nor cached
        out["units_from_cache"] = int(store.cached().sum())
    if "answers_from_cache" in store.attrs:  # an evaluation whose answers were generated first (make evaluate MODELS=)
        out["answers"], out["answers_from_cache"] = store.attrs["answers"], store.attrs["answers_from_cache"]
    if store.attrs.get("tiny_judge"):
        out["note"] = TINY_NOTE
    conf = confidence_of(store, a)
    mode = store.attrs.get("mode", "pair")
    a, conf, out["verdicts"] = apply_policy(store, a, conf, policy, mode)
    if mode == "pair":
        groups = {name: pair_metrics(a, w, conf)
                  for name, w in (("without_reference", False), ("with_reference", True))}
        out["groups"] = {k: v for k, v in groups.items() if v is not None}
    else:
        out["groups"] = {"all": score_summary(a, conf)}
    out["benchmarks"] = benchmark_results(a, mode, conf)
    out["panel"] = panel_section(store, a, mode, policy)
    return finite(out), conf


def write_confidence(path: Path, store: VerdictStore, conf: UnitConfidence) -> None:
    """One JSON line per unit with a derived confidence: the judge's expected scores, its probability for each
    verdict label (pairs), the label the merge chose and the judge's probability of it, and the unit's benchmark and
    ground-truth label, so users can sort or filter verdicts by confidence and fit a temperature on them
    (``judgelm calibrate``)."""
    qid, record, order = store.records("question_id"), store.units("record"), store.units("order")
    with_ref, text, truth = store.units("with_reference"), store.verdicts("text"), store.unit_labels()
    subsets, code = np.unique(store.records("subset"), return_inverse=True)
    benchmark = [benchmark_of(str(s)) for s in subsets]
    with replaced_atomically(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for u in np.flatnonzero(conf.available):
            row = {"unit": int(u), "question_id": qid[record[u]], "order": int(order[u]),
                   "with_reference": bool(with_ref[u]), "benchmark": benchmark[code.ravel()[record[u]]],
                   "verdict": str(text[u]).strip(), "expected_scores": conf.expected[u].tolist(),
                   "top_k_number_mass": float(conf.numeric_mass[u])}
            if np.isfinite(conf.confidence[u]):
                row["p_label"] = dict(zip(("-1", "0", "1"), conf.label_probs[u].tolist()))
                row["label"], row["confidence"] = int(conf.labels[u]), float(conf.confidence[u])
            if truth[u] != NO_LABEL:
                row["truth"] = int(truth[u])
            f.write(json.dumps(row) + "\n")


def run_policy(rd: RunDir) -> str:
    """The verdict policy a run was created with (``merge.policy``); imported runs have no config: ``primary``."""
    if not rd.config.exists():
        return "primary"
    return OmegaConf.select(OmegaConf.load(rd.config), "merge.policy", default="primary")


def merge_run(run_dir: str | Path, allow_partial: bool = False, policy: str | None = None) -> dict[str, Any]:
    """Merge a run: write ``metrics.json`` and ``metrics.md`` (with the benchmark rows), when the run stored
    log-probabilities ``confidence.jsonl`` (``write_confidence``), and for a model evaluation the model
    leaderboard (``judgelm.results.leaderboard``); returns the metrics. ``policy`` overrides the run's
    ``merge.policy``."""
    rd = RunDir(Path(run_dir))
    store = VerdictStore(rd.store)
    m, conf = _compute(store, allow_partial, policy or run_policy(rd))
    usage = total_usage(rd.root)
    if usage is not None:
        m["usage"] = asdict(usage)
    lost = cache_unreadable(rd.progress)
    if lost:
        m["verdict_cache_unreadable"] = lost
    if conf is not None:
        write_confidence(rd.root / CONFIDENCE_FILE, store, conf)
    write_text_atomic(rd.metrics, json.dumps(m, indent=2) + "\n")
    rows = leaderboard_rows(m)
    write_text_atomic(rd.table, format_table(m) + ("\n" + format_leaderboard(rows) if rows else ""))
    if store.record_models() is not None:
        write_leaderboard(rd.root, store)
    return m


