"""How each benchmark scores a judge, as its authors do, on the verdicts of one reference mode.

Every protocol turns the pairs (or graded answers) of one benchmark into leaderboard rows: a headline number per
reported subset with a bootstrap 95 % interval (pairs resampled, the whole aggregate recomputed; see
``metrics.bootstrap_ci``) and a few extras. Verdict labels are 1 (answer 1 better), 0 (tie, also a parse failure)
and -1; ``seq`` is the verdict on the original order and ``rev`` the verdict on the swapped pair as the judge wrote
it, so ``-rev`` is that verdict in the original frame. Without the swapped order, protocols that need it use the
one order they have.

- ``judgelm`` (PandaLM, JudgeLM val, user files): JudgeLM's agreement on the original order, with macro P/R/F1,
  consistency, Cohen's kappa and agreement without ties in the details.
- ``llmbar`` (LLMBar, MT-Bench human pairs): per subset, the accuracy of each order averaged over both orders
  (LLMBar's ``correct_average``); a tie is wrong, as the labels have none. LLMBar's Adversarial score is the
  unweighted mean of its four subsets.
- ``judgebench``: per pair, +1 for each order whose verdict is correct and -1 for each that picks the wrong answer
  (ties add 0); the pair is correct when the sum is positive, so an inconsistent pair (one right, one wrong) and a
  double tie count as wrong (JudgeBench's ``compute_final_metrics``). Reported per response-model set and overall,
  with JudgeBench's knowledge/reasoning/math/coding split in the details.
- ``rewardbench``: each order scores 1 when the judge prefers the chosen answer, 0.5 on a tie or parse failure, 0
  otherwise (RewardBench's ``process_shuffled`` for generative judges), averaged over both orders; a section is the
  mean of its subsets weighted by RewardBench's example counts, the score the mean of the sections.
- ``correlation`` (Prometheus, single-answer grading): Pearson's r between the judge's score and the ground-truth
  score per set, with Spearman's rho and Kendall's tau; parse failures are left out and counted. Where the run kept
  score-token log-probabilities, the same for the judge's expected score (``judgelm.scoring.calibration``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from judgelm.data.benchmarks.rewardbench import EXAMPLE_COUNTS, SECTION_OF, SECTIONS
from judgelm.scoring.metrics import (
    agreement_without_ties,
    bootstrap_ci,
    cohen_kappa,
    grouped_mean,
    judgelm_metrics,
    kendall,
    pearson,
    spearman,
    wcount,
    weighted_grouped_mean,
    weighted_mean,
    weighted_pearson,
    wmean,
)


@dataclass(frozen=True)
class Pairs:
    """The judged pairs of one benchmark and one reference mode that have a ground truth."""

    gt: np.ndarray  # int64
    seq: np.ndarray  # int64
    rev: np.ndarray | None  # int64, as the judge wrote it for the swapped pair
    subset: np.ndarray  # str (object)
    category: np.ndarray  # str (object)
    w: np.ndarray | None = None  # how many pairs each row stands for (the merge's distinct rows); None: one each

    def __len__(self) -> int:
        return len(self.gt)

    def count(self, sel: np.ndarray) -> np.ndarray | None:
        """The counts of the rows ``sel`` selects (None: one each)."""
        return None if self.w is None else self.w[sel]

    def orders(self) -> list[np.ndarray]:
        """The verdicts of each judged order, in the original frame."""
        return [self.seq] if self.rev is None else [self.seq, -self.rev]


@dataclass(frozen=True)
class Graded:
    """Single-answer grades of one benchmark and one reference mode that have a ground-truth score."""

    score: np.ndarray  # float, NaN where the judge's output did not parse
    gt: np.ndarray  # float
    subset: np.ndarray
    category: np.ndarray
    expected: np.ndarray | None = None  # the judge's expected score from its log-probabilities (NaN: unavailable)
    w: np.ndarray | None = None  # how many answers each row stands for; None: one each

    def __len__(self) -> int:
        return len(self.gt)

    def count(self, sel: np.ndarray) -> np.ndarray | None:
        return None if self.w is None else self.w[sel]


def _row(benchmark: str, subset: str, metric: str, score: float, ci: tuple[float, float], n: int,
         **extra: Any) -> dict[str, Any]:
    """A leaderboard row: the score over all ``n`` items and its bootstrap interval."""
    return {"benchmark": benchmark, "subset": subset, "metric": metric, "score": score if n else float("nan"),
            "ci95": list(ci), "n": n, **extra}


def _mean_row(benchmark: str, subset: str, metric: str, values: np.ndarray, n_boot: int,
              w: np.ndarray | None = None, **extra: Any) -> dict:
    n = wcount(np.ones(len(values), dtype=bool), w)
    score = wmean(values, w) if n else float("nan")
    return _row(benchmark, subset, metric, score, bootstrap_ci(weighted_mean, values, n_boot, w=w), n, **extra)


def _weighted_row(benchmark: str, subset: str, metric: str, values: np.ndarray, names: np.ndarray,
                  weights: dict[str, float], n_boot: int, w: np.ndarray | None = None, **extra: Any) -> dict:
    """A row whose score is a weighted mean of per-subset means (``metrics.grouped_mean``)."""
    keys = list(weights)
    codes = np.array([keys.index(s) for s in names], dtype=np.int64)
    gw = np.array([weights[k] for k in keys], dtype=float)
    ci = bootstrap_ci(weighted_grouped_mean(gw), np.stack([codes, values], axis=1), n_boot, w=w)
    return _row(benchmark, subset, metric, grouped_mean(values, codes, gw, w), ci,
                wcount(np.ones(len(values), dtype=bool), w), **extra)


def _consistency(p: Pairs, sel: np.ndarray) -> float | None:
    return None if p.rev is None or not sel.any() else wmean(p.seq[sel] == -p.rev[sel], p.count(sel))


def _short(benchmark: str, subset: str) -> str:
    """``llmbar/Natural`` → ``Natural``; a benchmark without subsets → ``""``."""
    return (subset[len(benchmark) + 1:] if subset.startswith(benchmark + "/")
            else ("" if subset == benchmark else subset))


def judgelm_protocol(benchmark: str, p: Pairs, n_boot: int) -> dict[str, Any]:
    correct = (p.seq == p.gt).astype(float)
    groups = [("all", np.ones(len(p), dtype=bool))]
    subsets = sorted(set(p.subset))
    if len(subsets) > 1:
        groups += [(_short(benchmark, s), p.subset == s) for s in subsets]
    rows, details = [], {}
    for name, sel in groups:
        w = p.count(sel)
        m = judgelm_metrics(p.gt[sel], p.seq[sel], None if p.rev is None else p.rev[sel], w)
        m["kappa"] = cohen_kappa(p.gt[sel], p.seq[sel], w)
        m["agreement_without_ties"], m["pairs_without_ties"] = agreement_without_ties(p.gt[sel], p.seq[sel], w)
        details[name] = m
        rows.append(_mean_row(benchmark, name, "agreement", correct[sel], n_boot, w, f1=m.get("f1"),
                              consistency=m.get("consistency")))
    return {"protocol": "judgelm", "rows": rows, "details": details}


def llmbar_protocol(benchmark: str, p: Pairs, n_boot: int) -> dict[str, Any]:
    per_order = [(o == p.gt).astype(float) for o in p.orders()]
    value = np.mean(per_order, axis=0)
    rows, details = [], {}
    names = np.array([_short(benchmark, s) for s in p.subset], dtype=object)
    for name in sorted(set(names), key=lambda s: (s.startswith("Adversarial"), s)):
        sel = names == name
        w = p.count(sel)
        details[name or "all"] = {"correct_original": wmean(per_order[0][sel], w),
                                  "correct_swapped": wmean(per_order[-1][sel], w) if p.rev is not None else None,
                                  "correct_both": wmean(np.min(per_order, axis=0)[sel], w),
                                  "positional_agreement": _consistency(p, sel)}
        rows.append(_mean_row(benchmark, name or "all", "accuracy (both orders)", value[sel], n_boot, w,
                              consistency=_consistency(p, sel)))
    adversarial = np.array([n.startswith("Adversarial/") for n in names])
    if adversarial.any():
        weights = {n: 1.0 for n in sorted(set(names[adversarial]))}
        rows.append(_weighted_row(benchmark, "Adversarial (mean of subsets)", "accuracy (both orders)",
                                  value[adversarial], names[adversarial], weights, n_boot, p.count(adversarial),
                                  consistency=_consistency(p, adversarial)))
    return {"protocol": "llmbar", "rows": rows, "details": details}


def judgebench_protocol(benchmark: str, p: Pairs, n_boot: int) -> dict[str, Any]:
    votes = sum((o == p.gt).astype(int) - (o == -p.gt).astype(int) for o in p.orders())
    correct = (votes > 0).astype(float)
    names = np.array([_short(benchmark, s) for s in p.subset], dtype=object)
    rows, details = [], {}
    for name, sel in [("all", np.ones(len(p), dtype=bool))] + [(n, names == n) for n in sorted(set(names) - {""})]:
        details[name] = {"by_category": {cat: wmean(correct[sel & (p.category == cat)],
                                                    p.count(sel & (p.category == cat)))
                                         for cat in sorted(set(p.category[sel]))},
                         "inconsistent": None if p.rev is None else wmean(p.seq[sel] != -p.rev[sel], p.count(sel))}
        rows.append(_mean_row(benchmark, name, "accuracy (both orders agree)", correct[sel], n_boot, p.count(sel),
                              consistency=_consistency(p, sel)))
    return {"protocol": "judgebench", "rows": rows, "details": details}


def rewardbench_protocol(benchmark: str, p: Pairs, n_boot: int) -> dict[str, Any]:
    value = np.mean([np.where(o == p.gt, 1.0, np.where(o == 0, 0.5, 0.0)) for o in p.orders()], axis=0)
    names = np.array([_short(benchmark, s) for s in p.subset], dtype=object)
    details = {n: wmean(value[names == n], p.count(names == n)) for n in sorted(set(names))}
    sections = np.array([SECTION_OF.get(n, "") for n in names], dtype=object)
    present = [s for s in SECTIONS if (sections == s).any()]
    rows = []
    for section in present:
        sel = sections == section
        rows.append(_weighted_row(benchmark, section, "accuracy (both orders)", value[sel], names[sel],
                                  {n: EXAMPLE_COUNTS[n] for n in SECTIONS[section]}, n_boot, p.count(sel),
                                  consistency=_consistency(p, sel)))
    if present:
        # The score is the plain mean of the sections; folding each section's total weight into its subsets'
        # weights makes it one weighted mean of subset means, which the bootstrap can recompute.
        judged = set(names)
        weights = {n: EXAMPLE_COUNTS[n] / sum(EXAMPLE_COUNTS[m] for m in SECTIONS[s] if m in judged)
                   for s in present for n in SECTIONS[s] if n in judged}
        sel = sections != ""
        rows.append(_weighted_row(benchmark, "score (mean of sections)", "accuracy (both orders)", value[sel],
                                  names[sel], weights, n_boot, p.count(sel), consistency=_consistency(p, sel)))
    return {"protocol": "rewardbench", "rows": rows, "details": details}


def correlation_protocol(benchmark: str, g: Graded, n_boot: int) -> dict[str, Any]:
    names = np.array([_short(benchmark, s) for s in g.subset], dtype=object)
    rows, details = [], {}
    for name, sel in [("all", np.ones(len(g), dtype=bool))] + [(n, names == n) for n in sorted(set(names) - {""})]:
        x, y, w = g.score[sel], g.gt[sel], g.count(sel)
        parsed = np.isfinite(x)
        details[name] = {"pearson": pearson(x, y, w), "spearman": spearman(x, y, w), "kendall": kendall(x, y, w),
                         "parsed": wcount(parsed, w), "graded": wcount(np.ones(len(x), dtype=bool), w),
                         "mean_score": wmean(x[parsed], None if w is None else w[parsed]) if parsed.any() else None}
        rows.append(_row(benchmark, name, "pearson r", details[name]["pearson"],
                         bootstrap_ci(weighted_pearson, np.stack([x, y], axis=1), n_boot, w=w),
                         details[name]["graded"], spearman=details[name]["spearman"],
                         kendall=details[name]["kendall"]))
        if g.expected is not None:  # a judge whose top score never varies can still rank answers by expectation
            e = g.expected[sel]
            details[name]["pearson_expected_score"] = pearson(e, y, w)
            details[name]["spearman_expected_score"] = spearman(e, y, w)
            rows.append(_row(benchmark, name, "pearson r (expected score)", details[name]["pearson_expected_score"],
                             bootstrap_ci(weighted_pearson, np.stack([e, y], axis=1), n_boot, w=w),
                             details[name]["graded"], spearman=details[name]["spearman_expected_score"]))
    return {"protocol": "correlation", "rows": rows, "details": details}


PAIR_PROTOCOLS = {"judgelm": judgelm_protocol, "llmbar": llmbar_protocol, "judgebench": judgebench_protocol,
                  "rewardbench": rewardbench_protocol}
