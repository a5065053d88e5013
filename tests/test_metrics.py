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
