"""The merge: read a run's verdict store, compute the metrics, write ``metrics.json`` and a readable table.

The store is read window by window (``VerdictStore.column_windows``) into the distinct rows its metrics depend on,
with their counts (``judgelm.results.tally``): a store of ten million units merges in seconds, in the memory of a
window (stores with log-probabilities, several draws per unit or panel judges are read whole). Metrics are
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

from judgelm.data.benchmarks import benchmark_of
from judgelm.data.verdicts import win_array
from judgelm.inference.usage import total_usage
from judgelm.judging.progress import cache_unreadable
from judgelm.judging.store import NO_LABEL, TOP_IDS, TOP_LOGPROBS, Columns, IncompleteStore, VerdictStore
from judgelm.judging.validate import DATA_NOTES
from judgelm.results.leaderboard import write_leaderboard
from judgelm.results.tables import TINY_NOTE, format_leaderboard, format_table, leaderboard_rows
from judgelm.results.tally import RunTally, align_orders
from judgelm.rundir import RunDir, finite, replaced_atomically, write_text_atomic
from judgelm.scoring.calibration import UnitConfidence, reliability, unit_confidence
from judgelm.scoring.panel import panel_agreement, read_panel
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
WINDOW_UNITS = 1 << 18
"""Units the merge reads at a time (whole chunks around it): some 20 MB whatever the store's size."""


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


def _headline(a: Columns, mode: str, n_scores: int) -> dict[str, Any]:
    """The few numbers that show how a run's verdicts move with the number of samples."""
    t = RunTally(mode, n_scores).add(a)
    if mode != "pair":
        return {k: v for k, v in t.score_summary().items() if k in ("pearson", "spearman", "parse_failure_rate")}
    g = t.pair_metrics(False) or t.pair_metrics(True) or {}
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
        out["by_k"] = [{"k": k, **_headline(chosen(k), mode, store.n_scores)} for k in ks]
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
                    "status": status, "truncated": a.truncated, "done": a.done, "turn": a.turn,
                    "cached": a.cached}
        return _headline(dataclasses.replace(a, **{k: v[common] for k, v in per_unit.items()}), mode, store.n_scores)

    stacked = np.stack([j.scores for j in judges], axis=1)
    panel = {f"panel:{policy}": choose(policy, stacked) for policy in ("majority", "mean")}
    return {"units": int(common.sum()), "judges": {j.name: on_common(j.scores, j.status) for j in judges},
            **{name: on_common(s, status_of(s, a.status)) for name, s in panel.items()},
            "agreement": panel_agreement(judges, np.flatnonzero(common))}


def compute_metrics(store: VerdictStore, allow_partial: bool = False, policy: str = "primary") -> dict[str, Any]:
    return _compute(store, allow_partial, policy)[0]


def needs_every_unit(store: VerdictStore, policy: str) -> bool:
    """Whether the merge reads the store's columns whole: log-probabilities (calibration, confidence per unit),
    several draws per unit, panel judges or a verdict policy other than the primary verdict need every unit's
    arrays at once. Any other store is read window by window, in memory that does not grow with it."""
    draws = any(name.startswith(("sample_", "retry_")) for name in store.extras)
    return store.has_logprobs() or draws or bool(store.judges()) or policy != "primary"


def _compute(store: VerdictStore, allow_partial: bool,
             policy: str = "primary") -> tuple[dict[str, Any], UnitConfidence | None]:
    """The metrics, and the per-unit confidence they were derived from (None without log-probabilities)."""
    mode = store.attrs.get("mode", "pair")
    conf, a = None, None
    if needs_every_unit(store, policy):
        a = store.columns()
        conf = confidence_of(store, a)
        a, conf, verdicts = apply_policy(store, a, conf, policy, mode)
        tally = RunTally.of(store, mode, conf is not None).add(a, conf)
    else:
        tally = RunTally.of(store, mode)
        for window in store.column_windows(WINDOW_UNITS):
            window = dataclasses.replace(window, status=status_of(window.scores, window.status))
            tally.add(window)
        verdicts = {"policy": policy, "samples": 1, "retries": None}
    missing = {k: int(m) for k, m in enumerate(tally.missing) if m}
    n_missing = sum(missing.values())
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
        out["units_from_cache"] = tally.cached
    if "answers_from_cache" in store.attrs:  # an evaluation whose answers were generated first (make evaluate MODELS=)
        out["answers"], out["answers_from_cache"] = store.attrs["answers"], store.attrs["answers_from_cache"]
    if store.attrs.get("tiny_judge"):
        out["note"] = TINY_NOTE
    out["verdicts"] = verdicts
    if mode == "pair":
        groups = {name: tally.pair_metrics(w) for name, w in (("without_reference", False), ("with_reference", True))}
        out["groups"] = {k: v for k, v in groups.items() if v is not None}
        if conf is not None:
            for name, g in out["groups"].items():
                g["calibration"] = calibration(a, conf, name == "with_reference")
    else:
        out["groups"] = {"all": tally.score_summary()}
    out["benchmarks"] = tally.benchmark_results()
    out["panel"] = panel_section(store, a, mode, policy) if a is not None else None
    return finite(out), conf


def calibration(a: Columns, conf: UnitConfidence, with_reference: bool) -> dict[str, Any]:
    """``calibration_metrics`` for the pairs of one reference mode."""
    seq, rev = align_orders(a, a.with_reference == with_reference)
    labels = a.label_w_reference if with_reference else a.label
    return calibration_metrics(a, conf, seq, rev, labels[a.record[seq]].astype(np.int64))


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


