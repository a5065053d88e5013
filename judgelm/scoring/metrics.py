"""Judge metrics, with JudgeLM's exact definitions (reference document §6).

Labels are 1 (answer 1 better), 0 (tie), -1 (answer 2 better). Inputs are already filtered to the pairs that
have a ground truth, as JudgeLM drops rows whose GPT-4 judgement does not parse; prediction parse failures stay
in as ties.

Every function also takes ``w``, a count per row: the merge hands them the distinct rows of a store's pairs with
how often each occurs (``judgelm.scoring.tally``), which gives the same numbers as the rows repeated, in memory
that does not grow with the store.
"""

from __future__ import annotations

import numpy as np

CLASSES = (-1, 0, 1)


def _w(w: np.ndarray | None, n: int) -> np.ndarray:
    """Row counts: ``w``, or one per row."""
    return np.ones(n) if w is None else np.asarray(w, dtype=float)


def wmean(x: np.ndarray, w: np.ndarray | None = None) -> float:
    """The mean of ``x`` with each row counted ``w`` times (NaN over nothing)."""
    w = _w(w, len(x))
    total = w.sum()
    return float(np.dot(w, np.asarray(x, dtype=float)) / total) if total else float("nan")


def wcount(mask: np.ndarray, w: np.ndarray | None = None) -> int:
    """How many rows ``mask`` selects, each counted ``w`` times."""
    return int(np.asarray(mask).sum()) if w is None else int(round(float(np.dot(np.asarray(w), mask))))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """3×3 counts, rows = truth, columns = prediction, both in the order -1, 0, 1."""
    idx = (np.asarray(y_true, dtype=np.int64) + 1) * 3 + (np.asarray(y_pred, dtype=np.int64) + 1)
    if w is None:
        return np.bincount(idx, minlength=9).reshape(3, 3)
    return np.rint(np.bincount(idx, weights=w, minlength=9)).astype(np.int64).reshape(3, 3)


def macro_prf(y_true: np.ndarray, y_pred: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float, float]:
    """Macro precision, recall and F1 as sklearn computes them with ``average='macro'``.

    The mean runs over the classes present in ``y_true`` or ``y_pred``; a zero denominator scores 0; and F1 is
    the mean of per-class F1 values, not the harmonic mean of the macro precision and recall.
    """
    cm = confusion(y_true, y_pred, w)
    tp = np.diag(cm).astype(float)
    pred_n, true_n = cm.sum(axis=0).astype(float), cm.sum(axis=1).astype(float)
    present = (pred_n + true_n) > 0
    if not present.any():
        return 0.0, 0.0, 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(pred_n > 0, tp / pred_n, 0.0)
        r = np.where(true_n > 0, tp / true_n, 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return float(p[present].mean()), float(r[present].mean()), float(f[present].mean())


def judgelm_metrics(y_true: np.ndarray, seq: np.ndarray, rev: np.ndarray | None = None,
                    w: np.ndarray | None = None) -> dict[str, float | int]:
    """JudgeLM's ``eval_model_judgement`` numbers as fractions.

    ``seq`` is the label of the judge's verdict with the answers in their original order, ``rev`` the label of
    its verdict on the swapped pair, in the swapped frame (as the judge wrote it). Keys: ``agreement`` (JudgeLM's
    dict calls it ``accuracy``), ``precision``, ``recall``, ``f1`` and, with ``rev``: ``consistency``,
    ``prefer_before``/``prefer_after`` (counts; JudgeLM spells them ``perfer_*``) and their rates, ``delta_bias``,
    ``total_bias``; plus ``total_num``.
    """
    y_true, seq = np.asarray(y_true), np.asarray(seq)
    n = wcount(np.ones(len(y_true), dtype=bool), w)
    out: dict[str, float | int] = {"total_num": n}
    if n == 0:
        return out
    out["agreement"] = wmean(y_true == seq, w)
    out["precision"], out["recall"], out["f1"] = macro_prf(y_true, seq, w)
    if rev is not None:
        out.update(swap_metrics(seq, np.asarray(rev), w))
    return out


def swap_metrics(seq: np.ndarray, rev: np.ndarray, w: np.ndarray | None = None) -> dict[str, float | int]:
    """Consistency and position bias from the two orders; no ground truth involved.

    ``s = -seq`` is the original verdict in the swapped frame and ``t = rev``. ``s < t`` means the judge moved
    towards the answer it saw first ("prefer before"), ``s > t`` towards the one it saw second.
    """
    s, t = -seq.astype(np.int64), rev.astype(np.int64)
    n = wcount(np.ones(len(s), dtype=bool), w)
    before, after = wcount(s < t, w), wcount(s > t, w)
    return {
        "consistency": wmean(s == t, w), "prefer_before": before, "prefer_after": after,
        "prefer_before_rate": before / n, "prefer_after_rate": after / n,
        "delta_bias": abs(before - after) / n, "total_bias": (before + after) / n,
    }


# --- beyond JudgeLM ---------------------------------------------------------------------------------------------------
# Each function documents its formula; all take the filtered arrays described at the top of this module.

def cohen_kappa(y_true: np.ndarray, y_pred: np.ndarray, w: np.ndarray | None = None) -> float:
    """Cohen's kappa between judge and ground truth: ``(p_o - p_e) / (1 - p_e)``.

    ``p_o`` is the agreement and ``p_e = Σ_c P_true(c) P_pred(c)`` the agreement two independent raters with the same
    label frequencies would reach by chance. 1 is perfect, 0 chance level. When both raters use a single class,
    ``p_e = 1`` and kappa is undefined; we return 1.0 if they agree everywhere, else 0.0 (sklearn returns NaN).
    """
    cm = confusion(y_true, y_pred, w).astype(float)
    n = cm.sum()
    if n == 0:
        return float("nan")
    p_o = np.trace(cm) / n
    p_e = float((cm.sum(axis=1) * cm.sum(axis=0)).sum() / n ** 2)
    if p_e >= 1.0:
        return 1.0 if p_o == 1.0 else 0.0
    return float((p_o - p_e) / (1 - p_e))


def agreement_without_ties(y_true: np.ndarray, y_pred: np.ndarray,
                           w: np.ndarray | None = None) -> tuple[float, int]:
    """Agreement over the pairs where neither the truth nor the judge says tie (MT-Bench's "w/o tie"), and their count.

    Benchmarks without tie labels make every judge tie an error; this separates "picks the wrong answer" from
    "declines to pick".
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    keep = (y_true != 0) & (y_pred != 0)
    n = wcount(keep, w)
    return (wmean((y_true == y_pred)[keep], None if w is None else np.asarray(w)[keep]) if n else float("nan")), n


def pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Pearson's r over the finite pairs; NaN when fewer than 3 or either side is constant."""
    x, y, w = _finite_pairs(x, y, w)
    if w is None:
        if len(x) < 3 or x.std() == 0 or y.std() == 0:
            return float("nan")
        return float(np.corrcoef(x, y)[0, 1])
    n = w.sum()
    if n < 3:
        return float("nan")
    dx, dy = x - np.dot(w, x) / n, y - np.dot(w, y) / n
    vx, vy = np.dot(w, dx * dx), np.dot(w, dy * dy)
    if vx == 0 or vy == 0:
        return float("nan")
    return float(np.clip(np.dot(w, dx * dy) / np.sqrt(vx * vy), -1.0, 1.0))


def _midranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Each row's rank among the rows repeated ``w`` times, ties sharing their average (scipy's ``rankdata``)."""
    values, inv = np.unique(x, return_inverse=True)
    counts = np.bincount(inv.ravel(), weights=w, minlength=len(values))
    below = np.cumsum(counts) - counts
    return (below + (counts + 1) / 2)[inv.ravel()]


def spearman(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Spearman's rho: Pearson's r of the ranks (ties get their average rank)."""
    x, y, w = _finite_pairs(x, y, w)
    if w is None:
        from scipy.stats import rankdata  # here only: importing scipy.stats costs the merge 1.6 s it does not need

        if len(x) < 3:
            return float("nan")
        return pearson(rankdata(x), rankdata(y))
    if w.sum() < 3:
        return float("nan")
    return pearson(_midranks(x, w), _midranks(y, w), w)


def kendall(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Kendall's tau-b (the variant that corrects for ties, as Prometheus reports it)."""
    x, y, w = _finite_pairs(x, y, w)
    if w is None:
        from scipy.stats import kendalltau  # as in spearman: counted rows need no scipy

        if len(x) < 3 or x.std() == 0 or y.std() == 0:
            return float("nan")
        return float(kendalltau(x, y).statistic)
    return _kendall_counts(x, y, w)


def _kendall_counts(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Tau-b from distinct (x, y) rows and their counts: (P − Q) / √((P + Q + T)(P + Q + U)), with P and Q the
    concordant and discordant pairs of rows and T, U those tied in x only and in y only (scipy's definition)."""
    if w.sum() < 3:
        return float("nan")
    xv, xi = np.unique(x, return_inverse=True)
    yv, yi = np.unique(y, return_inverse=True)
    table = np.zeros((len(xv), len(yv)))
    np.add.at(table, (xi.ravel(), yi.ravel()), w)
    if len(xv) < 2 or len(yv) < 2:
        return float("nan")
    # below[i, j]: rows with x < xv[i] and y < yv[j]; the pairs of a cell with those are concordant, with the rows
    # of x < xv[i], y > yv[j] discordant.
    below = np.cumsum(np.cumsum(table, axis=0), axis=1)
    below = np.pad(below, ((1, 0), (1, 0)))[:-1, :-1]
    left = np.cumsum(table, axis=0) - table  # x < xv[i], same y column
    lower_x = np.cumsum(table.sum(axis=1)) - table.sum(axis=1)  # rows with x < xv[i]
    concordant = float((table * below).sum())
    discordant = float((table * (lower_x[:, None] - below - left)).sum())
    n = table.sum()
    pairs = n * (n - 1) / 2
    tied_x = float((table.sum(axis=1) * (table.sum(axis=1) - 1) / 2).sum())
    tied_y = float((table.sum(axis=0) * (table.sum(axis=0) - 1) / 2).sum())
    denom = np.sqrt((pairs - tied_x) * (pairs - tied_y))
    return float((concordant - discordant) / denom) if denom > 0 else float("nan")


def _finite_pairs(x: np.ndarray, y: np.ndarray,
                  w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep], None if w is None else np.asarray(w, dtype=float)[keep]


def position_bias(seq: np.ndarray, rev: np.ndarray, w: np.ndarray | None = None) -> dict[str, float | int]:
    """Which slot wins when the judge changes its mind with the order.

    With ``seq`` in the original frame and ``rev`` as written for the swapped pair, a consistent judge has
    ``rev = -seq``. Among the pairs where it does not (``flips``): ``first_slot_both`` counts pairs where the answer
    in slot 1 won in both orders, ``second_slot_both`` where slot 2 won both times (the rest involve a tie), and
    ``flip_to_first_share`` = prefer_before / (prefer_before + prefer_after) (see ``swap_metrics``): 0.5 is an
    unbiased flipper, 1.0 always moves towards the first slot. NaN when there are no flips.
    """
    seq, rev = np.asarray(seq, dtype=np.int64), np.asarray(rev, dtype=np.int64)
    s, t = -seq, rev
    before, after = wcount(s < t, w), wcount(s > t, w)
    return {"flips": before + after, "first_slot_both": wcount((seq == 1) & (rev == 1), w),
            "second_slot_both": wcount((seq == -1) & (rev == -1), w),
            "flip_to_first_share": before / (before + after) if before + after else float("nan")}


def length_bias(y_true: np.ndarray, y_pred: np.ndarray, len1: np.ndarray, len2: np.ndarray,
                w: np.ndarray | None = None) -> dict[str, float | int]:
    """How often the longer answer wins, for the judge and for the ground truth.

    Over pairs whose answers differ in length (characters): ``longer_wins_judge`` is the share of the judge's
    decisive verdicts (not ties) that pick the longer answer, ``longer_wins_truth`` the same share among decisive
    ground-truth labels. ``length_bias`` = judge − truth: above 0 the judge favours length more than the labels
    justify. NaN where a side has no decisive verdict.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    longer = np.sign(np.asarray(len1, dtype=np.int64) - np.asarray(len2, dtype=np.int64))  # 1: answer 1 is longer
    differ = longer != 0

    def share(y: np.ndarray) -> tuple[float, int]:
        sel = differ & (y != 0)
        n = wcount(sel, w)
        return (wmean((y == longer)[sel], None if w is None else np.asarray(w)[sel]) if n else float("nan")), n

    judge, n_judge = share(y_pred)
    truth, n_truth = share(y_true)
    return {"longer_wins_judge": judge, "longer_wins_truth": truth, "length_bias": judge - truth,
            "length_pairs_judge": n_judge, "length_pairs_truth": n_truth}


def grouped_mean(values: np.ndarray, groups: np.ndarray, weights: np.ndarray, w: np.ndarray | None = None) -> float:
    """Σ_g w_g · mean(values in g) / Σ_g w_g over the groups present: how benchmarks average their subsets.

    ``groups`` holds small integer codes into ``weights``. One group with weight 1 is the plain mean; equal weights
    give LLMBar's average over subsets; RewardBench weights subsets by its official example counts.
    """
    values, groups = np.asarray(values, dtype=float), np.asarray(groups, dtype=np.int64)
    if not len(values):
        return float("nan")
    counts = np.bincount(groups, weights=_w(w, len(values)), minlength=len(weights))
    sums = np.bincount(groups, weights=values * _w(w, len(values)), minlength=len(weights))
    present = counts > 0
    gw = np.asarray(weights, dtype=float)[present]
    return float((gw * sums[present] / counts[present]).sum() / gw.sum())


def bootstrap_ci(stat, keys: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05, w: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval over ``n`` items resampled with replacement.

    Each item is described by a row of ``keys`` (what the statistic depends on: a 0/1 correctness, a (subset,
    value) pair, an (x, y) score pair), counted ``w`` times (default once). Resampling n items with replacement is
    the same, in distribution, as drawing multinomial counts over the distinct rows, so ``stat(rows, weights)``
    gets the K distinct rows and a ``(n_boot, K)`` matrix of counts and returns one value per resample. This keeps
    a bootstrap over a million pairs to a few milliseconds. The seed is fixed so an interval is reproducible from
    the store alone; undefined resamples (NaN) are dropped; fewer than two items give ``(nan, nan)``.
    """
    keys = np.asarray(keys, dtype=float)
    if keys.ndim == 1:
        keys = keys[:, None]
    w = _w(w, len(keys))
    n = int(round(float(w.sum())))
    if n < 2:
        return float("nan"), float("nan")
    # Distinct rows via one integer code per row (np.unique along an axis is slow on large arrays).
    code = np.zeros(len(keys), dtype=np.int64)
    for col in keys.T:
        values, inv = np.unique(col, return_inverse=True)
        code = code * len(values) + inv.ravel()
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    rows = keys[first]
    counts = np.rint(np.bincount(inverse.ravel(), weights=w, minlength=len(rows)))
    weights = np.random.default_rng(seed).multinomial(n, counts / n, size=n_boot).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = np.asarray(stat(rows, weights), dtype=float)
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return float("nan"), float("nan")
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def weighted_mean(rows: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``bootstrap_ci`` statistic: the mean of the items' single key."""
    return w @ rows[:, 0] / w.sum(axis=1)


def weighted_grouped_mean(weights_by_group: np.ndarray):
    """``bootstrap_ci`` statistic for keys ``(group code, value)``: ``grouped_mean`` of each resample."""
    def stat(rows: np.ndarray, w: np.ndarray) -> np.ndarray:
        member = rows[:, 0][None, :] == np.arange(len(weights_by_group))[:, None]  # (G, K)
        counts, sums = w @ member.T, w @ (member * rows[:, 1]).T  # (B, G)
        gw = np.where(counts > 0, weights_by_group[None, :], 0.0)
        return (gw * np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)).sum(axis=1) / gw.sum(axis=1)
    return stat


def weighted_pearson(rows: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``bootstrap_ci`` statistic for keys ``(x, y)``: Pearson's r over the finite pairs of each resample."""
    finite = np.isfinite(rows).all(axis=1)
    x, y, w = rows[finite, 0], rows[finite, 1], w[:, finite]
    total = w.sum(axis=1)
    mx, my = w @ x / total, w @ y / total
    vx, vy = w @ (x * x) / total - mx ** 2, w @ (y * y) / total - my ** 2
    cov = w @ (x * y) / total - mx * my
    ok = (total >= 3) & (vx > 1e-12) & (vy > 1e-12)
    return np.where(ok, cov / np.sqrt(np.abs(vx * vy)), np.nan)
