"""JudgeLM's metric formulas (reference §6) on hand-computed cases, and against scikit-learn."""

import numpy as np
import pytest

from judgelm.scoring.metrics import confusion, judgelm_metrics, macro_prf, swap_metrics


def test_hand_computed_agreement_precision_recall_f1():
    y_true = np.array([1, 1, 0, -1, -1, 1])
    y_pred = np.array([1, 0, 0, -1, 1, 1])
    m = judgelm_metrics(y_true, y_pred)
    # per class (P, R, F1): 1 -> (2/3, 2/3, 2/3); 0 -> (1/2, 1, 2/3); -1 -> (1, 1/2, 2/3)
    assert m["agreement"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["recall"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert m["f1"] == pytest.approx(2 / 3)  # mean of per-class F1, not the harmonic mean of P and R
    assert m["total_num"] == 6


def test_absent_classes_are_left_out_and_zero_division_scores_zero():
    # Only classes 1 (truth) and 0 (prediction) occur; -1 must not enter the mean.
    p, r, f = macro_prf(np.array([1, 1, 1]), np.array([0, 0, 0]))
    assert (p, r, f) == (0.0, 0.0, 0.0)
    p, r, f = macro_prf(np.array([1, 1, 0]), np.array([1, 1, 1]))
    # class 1: P=2/3, R=1, F1=0.8; class 0: P=0 (never predicted), R=0, F1=0
    assert (p, r, f) == pytest.approx((1 / 3, 1 / 2, 0.4))


def test_swap_consistency_and_position_bias():
    seq = np.array([1, 0, -1, 1])  # original order
    rev = np.array([-1, 0, 1, 1])  # swapped order, in the swapped frame
    m = swap_metrics(seq, rev)
    # -seq = [-1, 0, 1, -1]: the last pair moved towards the answer shown first in the swapped run
    assert m["consistency"] == pytest.approx(3 / 4)
    assert (m["prefer_before"], m["prefer_after"]) == (1, 0)
    assert m["delta_bias"] == pytest.approx(1 / 4) and m["total_bias"] == pytest.approx(1 / 4)
    assert m["total_bias"] == pytest.approx(1 - m["consistency"])


def test_matches_sklearn_on_random_labels():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 200))
        y_true = rng.choice([-1, 0, 1], size=n, p=[0.45, 0.1, 0.45])
        y_pred = rng.choice([-1, 0, 1], size=n, p=rng.dirichlet([1, 1, 1]))
        p, r, f, _ = sk.precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
        assert macro_prf(y_true, y_pred) == pytest.approx((p, r, f))
        assert judgelm_metrics(y_true, y_pred)["agreement"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
        assert confusion(y_true, y_pred).tolist() == sk.confusion_matrix(y_true, y_pred, labels=[-1, 0, 1]).tolist()


def test_distinct_rows_with_counts_give_the_numbers_of_the_rows_repeated():
    """The merge hands every metric the distinct rows of a store and their counts (``w``): the same numbers, the
    same bootstrap interval, as the rows themselves."""
    from judgelm.scoring import metrics as m

    rng = np.random.default_rng(3)
    n = 3000
    gt, seq, rev = rng.integers(-1, 2, n), rng.integers(-1, 2, n), rng.integers(-1, 2, n)
    x = rng.integers(1, 6, n).astype(float)
    y = x + rng.integers(-2, 3, n)
    x[rng.random(n) < 0.05] = np.nan
    rows, w = np.unique(np.stack([gt, seq, rev, np.nan_to_num(x, nan=-9), y], axis=1), axis=0, return_counts=True)
    g, s, r, xs, ys = rows.T
    xs = np.where(xs == -9, np.nan, xs)
    g, s, r = g.astype(np.int64), s.astype(np.int64), r.astype(np.int64)
    assert m.judgelm_metrics(g, s, r, w) == pytest.approx(m.judgelm_metrics(gt, seq, rev))
    assert m.cohen_kappa(g, s, w) == pytest.approx(m.cohen_kappa(gt, seq))
    assert (m.confusion(g, s, w) == m.confusion(gt, seq)).all()
    assert m.position_bias(s, r, w) == pytest.approx(m.position_bias(seq, rev))
    assert m.agreement_without_ties(g, s, w) == pytest.approx(m.agreement_without_ties(gt, seq))
    assert m.length_bias(g, s, r, np.zeros(len(r)), w) == pytest.approx(m.length_bias(gt, seq, rev, np.zeros(n)),
                                                                         nan_ok=True)
    for f in (m.pearson, m.spearman, m.kendall):
        assert f(xs, ys, w) == pytest.approx(f(x, y), abs=1e-12)
    assert m.bootstrap_ci(m.weighted_mean, (g == s).astype(float), w=w) == m.bootstrap_ci(m.weighted_mean,
                                                                                           (gt == seq).astype(float))
