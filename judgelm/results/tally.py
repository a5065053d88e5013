"""Distinct rows and how often each occurs, added window by window: what the merge keeps of a store.

Every metric of a judging run depends on a few small per-pair (or per-answer) values: the truth's label, the
judge's label in each order, the subset, which answer is longer, a score. A store of ten million units has only a
few thousand distinct combinations of them, so the merge reads the store one window at a time, adds each window's
rows here and computes every metric from the distinct rows weighted by their counts (the functions of
``judgelm.scoring.metrics`` take the counts as ``w``). The numbers are those of the rows repeated, and memory is
bounded by the window, not the store.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from judgelm.data.benchmarks import BENCHMARKS, benchmark_of
from judgelm.data.verdicts import Status, win_array
from judgelm.judging.store import NO_LABEL, Columns, VerdictStore
from judgelm.scoring.calibration import UnitConfidence
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
    wcount,
    weighted_mean,
    wmean,
)
from judgelm.scoring.protocols import PAIR_PROTOCOLS, Graded, Pairs, correlation_protocol


def _key(v):
    """A hashable, NaN-safe Python value (NaN != NaN would make every NaN row a new key)."""
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def factorize(c) -> tuple[np.ndarray, np.ndarray]:
    """``(values, codes)`` with ``values[codes] == c``, in time linear in ``len(c)`` where it can be: strings
    through a dictionary, small integers and whole-number floats (scores) by their offset, other floats by
    sorting. A ``(values, codes)`` pair is taken as it is."""
    if isinstance(c, tuple):
        return c
    if c.dtype == object or c.dtype.kind == "T":
        return _factorize_strings(c)
    if c.dtype.kind in "biuf" and len(c):
        finite = np.isfinite(c) if c.dtype.kind == "f" else np.ones(len(c), dtype=bool)
        whole = c[finite]
        if len(whole) and (c.dtype.kind != "f" or (whole == np.round(whole)).all()):
            lo, hi = int(whole.min()), int(whole.max())
            if hi - lo < 1 << 16:
                values = np.arange(lo, hi + 1).astype(c.dtype)
                codes = np.where(finite, np.nan_to_num(c).astype(np.int64) - lo, hi - lo + 1)
                return (np.append(values, np.nan) if c.dtype.kind == "f" else values), codes
    values, inv = np.unique(c, return_inverse=True)
    return values, inv.ravel()


def _factorize_strings(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``factorize`` of strings (objects or numpy's StringDType, as zarr reads them) through a dictionary of the
    first string of each run of equal neighbours: a window's records come grouped by subset and category, so it
    looks up a few runs rather than every row, and never sorts strings (what ``np.unique`` would do, 2x slower
    than the dictionary on every row)."""
    if not len(c):
        return np.empty(0, dtype=object), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], c[1:] != c[:-1])))
    table: dict = {}
    heads = np.fromiter((table.setdefault(v, len(table)) for v in c[starts].tolist()), dtype=np.int64,
                        count=len(starts))
    values = np.empty(len(table), dtype=object)
    values[:] = list(table)
    return values, np.repeat(heads, np.diff(np.append(starts, len(c))))


class Tally:
    """Rows of the columns ``names`` (numbers or strings), counted."""

    def __init__(self, *names: str):
        self.names = names
        self.counts: dict[tuple, int] = {}

    def add(self, mask: np.ndarray | None = None, **columns) -> None:
        """Count the rows ``mask`` selects (default all) of equal-length ``columns`` (one per name: an array, or
        ``(values, codes)`` for ``values[codes]``)."""
        factors = [factorize(columns[n] if isinstance(columns[n], tuple) else np.asarray(columns[n]))
                   for n in self.names]
        if mask is not None:
            factors = [(values, codes[mask]) for values, codes in factors]
        if not len(factors[0][1]):
            return
        code, size = np.zeros(len(factors[0][1]), dtype=np.int64), 1
        for values, codes in factors:
            code, size = code * len(values) + codes, size * len(values)
        if size <= 1 << 22:  # few possible rows: count them by their code, no sorting
            counts = np.bincount(code, minlength=size)
            distinct = np.flatnonzero(counts)
            counts = counts[distinct]
        else:
            distinct, counts = np.unique(code, return_counts=True)
        digits = []
        for values, _ in reversed(factors):  # the code's last digit is the last column's
            distinct, d = np.divmod(distinct, len(values))
            digits.append(values[d])
        for *row, n in zip(*reversed(digits), counts.tolist()):
            key = tuple(_key(v) for v in row)
            self.counts[key] = self.counts.get(key, 0) + n

    def __len__(self) -> int:
        return sum(self.counts.values())

    def table(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The distinct rows, sorted (so that the numbers do not depend on the windows they came in), as one array
        per column (NaN restored; strings as objects), and their counts."""
        keys = sorted(self.counts, key=lambda k: tuple((v is None, 0 if v is None else v) for v in k))
        cols = {}
        for j, name in enumerate(self.names):
            values = [k[j] for k in keys]
            if values and all(isinstance(v, str) for v in values):
                cols[name] = np.array(values, dtype=object)
            elif values and all(isinstance(v, bool) for v in values):
                cols[name] = np.array(values, dtype=bool)
            elif values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                cols[name] = np.array(values, dtype=np.int64)
            else:
                cols[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
        return cols, np.array([self.counts[k] for k in keys], dtype=float)


MISSING = 9  # the swapped label of a pair whose swapped unit is absent or not judged


def judged(a: Columns) -> np.ndarray:
    """Units with a verdict: done, and not refused for a prompt too long (those have no scores at all, and a
    missing verdict must not count as a tie the way an unparsable one does)."""
    return a.done & (a.status != Status.PROMPT_TOO_LONG)


def comparison_of(a: Columns) -> tuple[np.ndarray, int]:
    """Each unit's comparison, the pair of answers both its orders judge: its record and turn as one index, and the
    number of such indices."""
    n_turns = int(a.turn.max(initial=0)) + 1
    return a.record.astype(np.int64) * n_turns + a.turn, len(a.label) * n_turns


def pairs_of(a: Columns, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Judged original-order units of ``sel`` and the judged swapped unit of the same comparison (-1: none)."""
    ok = judged(a)
    seq_idx = np.flatnonzero(sel & (a.order == 0))
    rev_idx = np.flatnonzero(sel & (a.order == 1))
    # Align the two orders of each pair by record and turn (units of a record are adjacent, but do not rely on it).
    seq = seq_idx[ok[seq_idx]]
    pair, n_pairs = comparison_of(a)
    rev_of_pair = np.full(n_pairs, -1, dtype=np.int64)
    rev_of_pair[pair[rev_idx]] = rev_idx
    rev = rev_of_pair[pair[seq]]
    found = rev >= 0
    rev[found] = np.where(ok[rev[found]], rev[found], -1)
    return seq, rev


def align_orders(a: Columns, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Judged original-order units of ``sel`` and, if the run judged both orders, the swapped unit of each same pair.

    Pairs whose swapped unit is missing, not done or not judged (its prompt was too long) are left out, so both
    arrays always line up and no pair is scored from a verdict that was never given.
    """
    seq, rev = pairs_of(a, sel)
    if not (sel & (a.order == 1)).any():
        return seq, None
    paired = rev >= 0
    return seq[paired], rev[paired]


def pairs_dropped_unjudged(a: Columns, sel: np.ndarray) -> int:
    """Pairs of ``sel`` whose units are all done but at least one was never judged (prompt too long)."""
    pair, n_pairs = comparison_of(a)
    rec = pair[sel]
    n = np.bincount(rec, minlength=n_pairs)
    n_done = np.bincount(rec, weights=a.done[sel], minlength=n_pairs)
    n_judged = np.bincount(rec, weights=judged(a)[sel], minlength=n_pairs)
    return int(((n > 0) & (n_done == n) & (n_judged < n)).sum())


def _at(strings: dict[str, tuple], rows: np.ndarray) -> dict[str, tuple]:
    """Per-record string columns (values, codes) taken at ``rows``."""
    return {name: (values, codes[rows]) for name, (values, codes) in strings.items()}


class RunTally:
    """What the metrics of a run need of its store, added window by window (``VerdictStore.column_windows``)."""

    def __init__(self, mode: str, n_scores: int, shard_starts: np.ndarray | None = None, expected: bool = False):
        """``shard_starts``: each shard's first unit (for the missing units per shard); ``expected``: the run kept
        log-probabilities, so graded answers come with the judge's expected score (``add``'s ``conf``)."""
        self.mode, self.n_scores, self.expected = mode, n_scores, expected
        self.shard_starts = np.zeros(1, dtype=np.int64) if shard_starts is None else shard_starts
        self.missing = np.zeros(len(self.shard_starts), dtype=np.int64)  # units not done, per shard
        self.cached = 0
        self.units = Tally("with_reference", "benchmark", "order", "done", "status", "truncated")
        self.pairs = Tally("with_reference", "benchmark", "subset", "category", "gt", "seq", "rev", "longer",
                           "gt_scored")
        self.scores = Tally("paired", "x", "y")  # pairs without reference with a ground truth, per answer
        self.graded = Tally("with_reference", "benchmark", "subset", "category", "x", "y", "e")  # single answers
        self.dropped = {False: 0, True: 0}
        self.score_sum, self.score_n, self.gt_scored = 0.0, 0, False
        self._benchmarks: dict[str, str] = {}

    @classmethod
    def of(cls, store: VerdictStore, mode: str, expected: bool = False) -> RunTally:
        n_shards = int(store.attrs.get("n_shards", 1))
        return cls(mode, store.n_scores, np.array([store.shard_slice(k, n_shards).start for k in range(n_shards)]),
                   expected)

    def add(self, a: Columns, conf: UnitConfidence | None = None) -> RunTally:
        """One window of whole records (``conf``: the confidence of its units)."""
        done = a.done
        shard = np.searchsorted(self.shard_starts, a.start + np.flatnonzero(~done), side="right") - 1
        self.missing += np.bincount(shard, minlength=len(self.missing))
        self.cached += int(a.cached.sum())
        subsets, subset = factorize(a.subset)  # per record, as codes: strings are compared once per window
        categories, category = factorize(a.category)
        benchmarks, bench = factorize(np.array([self._benchmark(str(s)) for s in subsets], dtype=object))
        bench = bench[subset]
        self.units.add(with_reference=a.with_reference, benchmark=(benchmarks, bench[a.record]), order=a.order,
                       done=done, status=a.status, truncated=a.truncated)
        ok = judged(a)
        self.gt_scored |= bool(np.isfinite(a.gt_scores).any())
        vals = a.scores[ok][a.status[ok] == Status.OK]
        self.score_sum += float(np.nansum(vals))
        self.score_n += int(np.isfinite(vals).sum())
        strings = {"benchmark": (benchmarks, bench), "subset": (subsets, subset), "category": (categories, category)}
        if self.mode == "pair":
            for w in (False, True):
                self._add_pairs(a, a.with_reference == w, w, strings)
        elif self.mode == "single":
            u = np.flatnonzero(ok)
            rec = a.record[u]
            self.graded.add(with_reference=a.with_reference[u], **_at(strings, rec), x=a.scores[u, 0],
                            y=a.gt_scores[rec, 0],
                            e=np.full(len(u), np.nan) if conf is None else conf.expected[a.start + u, 0])
        return self

    def _benchmark(self, subset: str) -> str:
        if subset not in self._benchmarks:
            self._benchmarks[subset] = benchmark_of(subset)
        return self._benchmarks[subset]

    def _add_pairs(self, a: Columns, sel: np.ndarray, with_reference: bool, strings: dict) -> None:
        self.dropped[with_reference] += pairs_dropped_unjudged(a, sel)
        seq, rev = pairs_of(a, sel)
        rec = a.record[seq]
        labels = a.label_w_reference if with_reference else a.label
        gt = labels[rec].astype(np.int64)
        rev_label = np.full(len(seq), MISSING, dtype=np.int64)
        rev_label[rev >= 0] = win_array(a.scores[rev[rev >= 0]])
        self.pairs.add(with_reference=np.full(len(seq), with_reference), **_at(strings, rec), gt=gt,
                       seq=win_array(a.scores[seq]).astype(np.int64), rev=rev_label,
                       longer=np.sign(a.answer_chars[rec, 0].astype(np.int64) - a.answer_chars[rec, 1]),
                       gt_scored=np.isfinite(a.gt_scores[rec]).all(axis=1))
        if not with_reference and self.gt_scored:
            has_gt = gt != NO_LABEL
            self.scores.add(paired=np.repeat(rev[has_gt] >= 0, a.scores.shape[1]),
                            x=a.scores[seq[has_gt]].ravel(), y=a.gt_scores[rec[has_gt]].ravel())

    # --- the numbers --------------------------------------------------------------------------------------------

    def unit_counts(self, with_reference: bool | None = None) -> dict[str, int]:
        """Units of one reference mode (None: all), done, and among the done ones parse failures, prompts too long
        and truncated prompts."""
        u, w = self.units.table()
        if not len(w):
            return {"units": 0, "units_done": 0, "parse_failures": 0, "prompt_too_long": 0, "truncated_prompts": 0}
        mine = np.ones(len(w), dtype=bool) if with_reference is None else u["with_reference"] == with_reference
        done = mine & u["done"].astype(bool)
        return {"units": wcount(mine, w), "units_done": wcount(done, w),
                "parse_failures": wcount(done & (u["status"] == Status.PARSE_FAILED), w),
                "prompt_too_long": wcount(done & (u["status"] == Status.PROMPT_TOO_LONG), w),
                "truncated_prompts": wcount(done & u["truncated"].astype(bool), w)}

    def aligned(self, with_reference: bool, benchmark: str | None = None) -> tuple[dict, np.ndarray, bool]:
        """The pairs of one reference mode (and benchmark) as ``align_orders`` gives them, their counts, and whether
        that mode has a swapped order at all (then a pair counts only with its judged swapped unit)."""
        u, uw = self.units.table()
        swapped = (u["with_reference"] == with_reference) & (u["order"] == 1) if len(uw) else np.zeros(0, bool)
        if benchmark is not None and len(uw):
            swapped &= u["benchmark"] == benchmark
        has_rev = wcount(swapped, uw) > 0
        p, w = self.pairs.table()
        if not len(w):
            return {k: np.zeros(0) for k in self.pairs.names}, w, has_rev
        keep = p["with_reference"] == with_reference
        if benchmark is not None:
            keep &= p["benchmark"] == benchmark
        if has_rev:
            keep &= p["rev"] != MISSING
        return {k: v[keep] for k, v in p.items()}, w[keep], has_rev

    def pair_metrics(self, with_reference: bool) -> dict[str, Any] | None:
        """Metrics for the pairwise units of one reference mode; ``None`` if the run has no such units."""
        out: dict[str, Any] = self.unit_counts(with_reference)
        if not out["units"]:
            return None
        out["parse_failure_rate"] = out["parse_failures"] / max(out["units_done"] - out["prompt_too_long"], 1)
        out["pairs_dropped_unjudged"] = self.dropped[with_reference]
        p, w, has_rev = self.aligned(with_reference)
        gt, seq = p["gt"].astype(np.int64), p["seq"].astype(np.int64)
        rev = p["rev"].astype(np.int64) if has_rev else None
        has_gt = gt != NO_LABEL
        out["pairs"] = wcount(np.ones(len(w), dtype=bool), w)
        out["pairs_without_ground_truth"] = wcount(~has_gt, w)
        if has_gt.any():
            g, r, wg = gt[has_gt], None if rev is None else rev[has_gt], w[has_gt]
            out.update(judgelm_metrics(g, seq[has_gt], r, wg))
            if r is not None:  # the swapped run scored against the truth, after undoing the swap
                out["agreement_swapped"] = wmean(g == -r, wg)
            out.update(self._beyond_judgelm({k: v[has_gt] for k, v in p.items()}, wg, r, with_reference))
        elif rev is not None and out["pairs"]:
            out.update(swap_metrics(seq, rev, w))
            out["total_num"] = out["pairs"]
        if rev is not None and out["pairs"]:
            out.update(position_bias(seq, rev, w))
        return out

    def _beyond_judgelm(self, p: dict, w: np.ndarray, rev: np.ndarray | None, with_reference: bool) -> dict:
        """The metrics JudgeLM does not report, over the pairs with ground truth (see ``judgelm.scoring.metrics``)."""
        gt, seq = p["gt"].astype(np.int64), p["seq"].astype(np.int64)
        correct = (seq == gt).astype(float)
        out: dict[str, Any] = {"kappa": cohen_kappa(gt, seq, w), "confusion": confusion(gt, seq, w).tolist(),
                               "agreement_ci95": list(bootstrap_ci(weighted_mean, correct, w=w))}
        out["agreement_without_ties"], out["pairs_without_ties"] = agreement_without_ties(gt, seq, w)
        out.update(length_bias(gt, seq, p["longer"], np.zeros(len(gt)), w))
        if not with_reference and p["gt_scored"].astype(bool).any():
            # Per answer: the judge's score of each answer against the ground truth's score of it.
            s, sw = self.scores.table()
            keep = s["paired"].astype(bool) if rev is not None else np.ones(len(sw), dtype=bool)
            out["score_pearson"] = pearson(s["x"][keep], s["y"][keep], sw[keep])
            out["score_spearman"] = spearman(s["x"][keep], s["y"][keep], sw[keep])
        for key, column in (("by_subset", p["subset"]), ("by_category", p["category"])):
            named = sorted(str(v) for v in set(column) if str(v))
            if len(named) > 1:
                out[key] = {v: judgelm_metrics(gt[column == v], seq[column == v],
                                               None if rev is None else rev[column == v], w[column == v])
                            for v in named}
        return out

    def score_summary(self) -> dict[str, Any]:
        """For single-answer and N-answer grading: parse rate, score statistics and, where the ground truth has a
        score per answer (single-answer grading), its correlation with the judge's score."""
        c = self.unit_counts()
        n_judged = c["units_done"] - c["prompt_too_long"]
        out: dict[str, Any] = {
            "units": c["units"], "units_done": c["units_done"], "prompt_too_long": c["prompt_too_long"],
            "parse_failures": c["parse_failures"], "parse_failure_rate": c["parse_failures"] / n_judged if n_judged
            else 0.0, "mean_score": self.score_sum / self.score_n if self.score_n else None}
        if self.n_scores == 1 and self.gt_scored:
            g, w = self.graded.table()
            keep = np.isfinite(g["y"]) if len(w) else np.zeros(0, dtype=bool)
            x, y, e, w = g["x"][keep], g["y"][keep], g["e"][keep], w[keep]
            out.update(pearson=pearson(x, y, w), spearman=spearman(x, y, w), kendall=kendall(x, y, w))
            if self.expected:
                out["calibration"] = {"units_with_confidence": wcount(np.isfinite(e), w),
                                      "pearson_expected_score": pearson(e, y, w)}
        return out

    def benchmark_results(self, n_boot: int = 1000) -> dict[str, dict[str, Any]]:
        """Each benchmark of the store scored with its own protocol, per reference mode, with its parse-failure
        rate."""
        u, uw = self.units.table()
        out: dict[str, dict[str, Any]] = {}
        for group, with_reference in (("without_reference", False), ("with_reference", True)):
            sel = u["with_reference"] == with_reference if len(uw) else np.zeros(0, dtype=bool)
            if not sel.any():
                continue
            results = {}
            for name in sorted(set(u["benchmark"][sel])):
                ok = sel & (u["benchmark"] == name) & u["done"].astype(bool) & (u["status"] != Status.PROMPT_TOO_LONG)
                n_ok = wcount(ok, uw)
                failure_rate = wcount(ok & (u["status"] == Status.PARSE_FAILED), uw) / n_ok if n_ok else None
                protocol = BENCHMARKS[name].protocol if name in BENCHMARKS else "judgelm"
                result = (self._pair_protocol(name, protocol, with_reference, n_boot) if self.mode == "pair"
                          else self._graded_protocol(name, with_reference, n_boot) if self.mode == "single"
                          else None)
                if result is None:
                    continue
                for row in result["rows"]:
                    row["reference"] = with_reference
                    row["parse_failure_rate"] = failure_rate
                results[name] = result
            if results:
                out[group] = results
        return out

    def _pair_protocol(self, name: str, protocol: str, with_reference: bool, n_boot: int) -> dict | None:
        p, w, has_rev = self.aligned(with_reference, name)
        keep = p["gt"] != NO_LABEL
        if not keep.any():
            return None
        pairs = Pairs(gt=p["gt"][keep].astype(np.int64), seq=p["seq"][keep].astype(np.int64),
                      rev=p["rev"][keep].astype(np.int64) if has_rev else None, subset=p["subset"][keep],
                      category=p["category"][keep], w=w[keep])
        result = PAIR_PROTOCOLS.get(protocol, PAIR_PROTOCOLS["judgelm"])(name, pairs, n_boot)
        if pairs.rev is not None:
            result["swap"] = swap_metrics(pairs.seq, pairs.rev, pairs.w)
        return result

    def _graded_protocol(self, name: str, with_reference: bool, n_boot: int) -> dict | None:
        g, w = self.graded.table()
        if not len(w):
            return None
        keep = (g["with_reference"] == with_reference) & (g["benchmark"] == name) & np.isfinite(g["y"])
        if not keep.any():
            return None
        graded = Graded(score=g["x"][keep], gt=g["y"][keep], subset=g["subset"][keep], category=g["category"][keep],
                        expected=g["e"][keep] if self.expected else None, w=w[keep])
        return correlation_protocol(name, graded, n_boot)
