"""The metrics beyond JudgeLM's (judgelm/scoring/metrics.py), on hand-computed cases and against scikit-learn and
SciPy."""

import numpy as np
import pytest

from judgelm.scoring.metrics import (
    agreement_without_ties,
    bootstrap_ci,
    cohen_kappa,
    grouped_mean,
    kendall,
    length_bias,
    macro_prf,
    pearson,
    position_bias,
    spearman,
    weighted_grouped_mean,
    weighted_mean,
    weighted_pearson,
)


def test_kappa_hand_case():
    # truth [1,1,-1,-1], judge [1,-1,-1,-1]: p_o = 3/4; marginals truth (1: 1/2, -1: 1/2), judge (1: 1/4, -1: 3/4)
    # p_e = 1/2*1/4 + 1/2*3/4 = 1/2 -> kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2
    assert cohen_kappa(np.array([1, 1, -1, -1]), np.array([1, -1, -1, -1])) == pytest.approx(0.5)
    # a judge that always says the majority class has kappa 0 although its agreement is 2/3
    assert cohen_kappa(np.array([1, 1, -1]), np.array([1, 1, 1])) == pytest.approx(0.0)
    assert cohen_kappa(np.array([0, 0]), np.array([0, 0])) == 1.0  # one class on both sides: defined as agreement


def test_kappa_precision_recall_f1_match_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(5, 300))
        y_true = rng.choice([-1, 0, 1], size=n, p=[0.45, 0.1, 0.45])
        y_pred = np.where(rng.random(n) < 0.6, y_true, rng.choice([-1, 0, 1], size=n))
        if len(set(y_true) | set(y_pred)) > 1:
            assert cohen_kappa(y_true, y_pred) == pytest.approx(sk.cohen_kappa_score(y_true, y_pred))
        p, r, f, _ = sk.precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
        assert macro_prf(y_true, y_pred) == pytest.approx((p, r, f))


def test_agreement_without_ties_drops_ties_on_either_side():
    y_true = np.array([1, 1, 0, -1, -1, 1])
    y_pred = np.array([1, 0, 1, -1, 1, -1])
    # kept: pairs 0, 3, 4, 5 (no tie on either side): correct 0 and 3 -> 2/4
    assert agreement_without_ties(y_true, y_pred) == (pytest.approx(0.5), 4)
    value, n = agreement_without_ties(np.array([1, 0]), np.array([0, 1]))
    assert n == 0 and np.isnan(value)


def test_correlations_match_scipy_and_ignore_failed_parses():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.integers(1, 11, 60).astype(float)
    y = x + rng.normal(0, 3, 60)
    x_failed = x.copy()
    x_failed[[3, 17]] = np.nan
    keep = np.isfinite(x_failed)
    assert pearson(x_failed, y) == pytest.approx(stats.pearsonr(x[keep], y[keep]).statistic)
    assert spearman(x_failed, y) == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic)
    assert kendall(x_failed, y) == pytest.approx(stats.kendalltau(x[keep], y[keep]).statistic)
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)  # monotone, not linear
    assert np.isnan(pearson([5, 5, 5, 5], [1, 2, 3, 4]))  # a constant judge has no correlation


def test_position_bias_splits_the_changed_verdicts_by_slot():
    seq = np.array([1, 1, -1, 0, 1, -1])
    rev = np.array([-1, 1, -1, 1, 0, 1])  # as written for the swapped pair
    # -seq = [-1, -1, 1, 0, -1, 1] against rev: pairs 0 and 5 agree; 1, 3, 4 moved towards the first slot
    # (-seq < rev), 2 towards the second. Slot 1 won both orders in pair 1, slot 2 in pair 2.
    m = position_bias(seq, rev)
    assert (m["flips"], m["first_slot_both"], m["second_slot_both"]) == (4, 1, 1)
    assert m["flip_to_first_share"] == pytest.approx(3 / 4)
    assert np.isnan(position_bias(np.array([1]), np.array([-1]))["flip_to_first_share"])


def test_length_bias_compares_the_judge_with_the_truth():
    len1 = np.array([100, 10, 50, 50, 20])
    len2 = np.array([10, 100, 50, 10, 30])  # longer: 1, 2, equal, 1, 2
    y_true = np.array([1, 1, 1, -1, 0])  # longer wins: yes, no, (equal), no, (tie) -> 1/3
    y_pred = np.array([1, -1, -1, 1, 0])  # longer wins: yes, yes, (equal), yes, (tie) -> 3/3
    m = length_bias(y_true, y_pred, len1, len2)
    assert m["longer_wins_truth"] == pytest.approx(1 / 3) and m["longer_wins_judge"] == pytest.approx(1.0)
    assert m["length_bias"] == pytest.approx(2 / 3)
    assert (m["length_pairs_judge"], m["length_pairs_truth"]) == (3, 3)


def test_grouped_mean_weights_group_means_not_items():
    values = np.array([1.0, 1.0, 1.0, 0.0])
    groups = np.array([0, 0, 0, 1])
    assert grouped_mean(values, groups, np.array([1.0, 1.0])) == pytest.approx(0.5)  # mean of (1, 0)
    assert grouped_mean(values, groups, np.array([3.0, 1.0])) == pytest.approx(0.75)
    assert grouped_mean(values[:3], groups[:3], np.array([1.0, 1.0])) == pytest.approx(1.0)  # absent group skipped


def test_bootstrap_interval_is_reproducible_and_shrinks_with_more_data():
    rng = np.random.default_rng(1)
    small = (rng.random(50) < 0.7).astype(float)
    large = (rng.random(5000) < 0.7).astype(float)
    lo, hi = bootstrap_ci(weighted_mean, small)
    assert lo < small.mean() < hi
    assert (lo, hi) == bootstrap_ci(weighted_mean, small)  # fixed seed
    lo2, hi2 = bootstrap_ci(weighted_mean, large)
    assert hi2 - lo2 < (hi - lo) / 4
    # analytic check: the standard error of a proportion, 1.96 * sqrt(p(1-p)/n)
    p = large.mean()
    assert (hi2 - lo2) / 2 == pytest.approx(1.96 * np.sqrt(p * (1 - p) / len(large)), rel=0.15)
    assert np.isnan(bootstrap_ci(weighted_mean, np.array([1.0]))).all()  # undefined for a single item


def test_count_bootstrap_matches_resampling_items():
    """Multinomial counts over distinct rows give the same interval as resampling the items themselves."""
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 3, 400)
    values = (rng.random(400) < np.array([0.2, 0.5, 0.9])[codes]).astype(float)
    w = np.array([1.0, 2.0, 1.0])
    fast = bootstrap_ci(weighted_grouped_mean(w), np.stack([codes, values], axis=1), n_boot=4000)
    slow = [grouped_mean(values[i], codes[i], w) for i in (rng.integers(0, 400, 400) for _ in range(4000))]
    assert fast == pytest.approx(tuple(np.quantile(slow, [0.025, 0.975])), abs=0.01)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    x[:5] = np.nan  # unparsed scores are left out of each resample
    fast = bootstrap_ci(weighted_pearson, np.stack([x, y], axis=1), n_boot=4000)
    slow = [pearson(x[i], y[i]) for i in (rng.integers(0, 300, 300) for _ in range(4000))]
    assert fast == pytest.approx(tuple(np.quantile(slow, [0.025, 0.975])), abs=0.02)
