"""RocketEval's scores from checklist grading (Joinn99/RocketEval-ICLR at e0579ff: ``tools/utils.py``,
``process/score.py``, ``tools/export.py``): pure numpy, scikit-learn for the supervised predictor.

**Item probability.** From the top-k log-probabilities of the judge's first generated token: every candidate token
decoded, stripped and capitalised; ``y`` and ``n`` the largest log-probabilities of candidates reading ``Yes`` and
``No``; ``p = e^y / (e^y + e^n)``, NaN when neither is among the top k (RocketEval's ``get_confidence``).

**Score.** Per question, the vector ``p`` of an answer over the question's items gives its score on RocketEval's 1-10
scale. Unsupervised: ``9 · mean(p) + 1`` (NaN items left out). Supervised, where a strong judge scored some models'
answers to the question: an ``ExtraTreesRegressor(n_estimators=10, max_depth=2, random_state=42)`` fitted on those
answers' ``p`` against their scores, blended with the plain average as ``w · tree(p) + (1 − w) · (9 · mean(p) + 1)``,
with ``w = (KL_max − KL(h ‖ u)) / KL_max``: ``h`` the histogram of the reference scores over their distinct values
(padded with empty bins to 10, or to the number of distinct values when more), ``u`` uniform over those bins,
``KL_max`` the divergence of a single full bin; so a question whose reference scores are all equal trusts the
average alone (w = 0), and the more spread they are, the more the trees.

**Preferences.** Two answers to one question: the one whose score is higher by more than ``tie_margin`` (0.1)
wins, otherwise a tie (RocketEval's ``all_compare``), which makes the comparisons of a pairwise leaderboard.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, kl_div

SCALE, BIAS = 9.0, 1.0
TIE_MARGIN = 0.1


def yes_probability(top_ids: np.ndarray, top_logprobs: np.ndarray, decode: Callable[[int], str]) -> np.ndarray:
    """Per unit, P(Yes) / (P(Yes) + P(No)) at the first generated position (NaN: neither in the top k).
    ``top_ids``/``top_logprobs``: ``(n, steps, k)`` as the store keeps them; ``decode``: one token id to text."""
    ids, lp = top_ids[:, 0, :], top_logprobs[:, 0, :].astype(float)
    unique, inverse = np.unique(ids, return_inverse=True)
    words = np.array([decode(int(t)).strip().capitalize() for t in unique], dtype=object)[inverse.ravel()]
    words = words.reshape(ids.shape)
    lp = np.where(np.isfinite(lp), lp, -np.inf)
    yes = np.where(words == "Yes", lp, -np.inf).max(axis=1)
    no = np.where(words == "No", lp, -np.inf).max(axis=1)
    with np.errstate(invalid="ignore"):
        return np.where(np.isneginf(yes) & np.isneginf(no), np.nan, expit(yes - no))


def average_score(p: np.ndarray) -> np.ndarray:
    """``9 · mean(p) + 1`` per row, NaN items left out (NaN where a row has none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": a row without any probability
        return np.nanmean(p, axis=1) * SCALE + BIAS


def spread_weight(scores: np.ndarray, num_classes: int = 10) -> float:
    """RocketEval's ``kl_uniform_weight``: 1 − KL(histogram of the distinct score values ‖ uniform) / KL_max."""
    _, counts = np.unique(scores, return_counts=True)
    bins = max(num_classes, len(counts))
    hist = np.zeros(bins)
    hist[:len(counts)] = counts / counts.sum()
    uniform = np.full(bins, 1 / bins)
    one_bin = np.zeros(bins)
    one_bin[0] = 1
    kl_max = kl_div(one_bin, uniform).sum()
    return float((kl_max - kl_div(hist, uniform).sum()) / kl_max)


@dataclass(frozen=True)
class QuestionScores:
    score: np.ndarray  # per answer (row of p)
    weight: float  # of the supervised predictor (0: the average alone)


def predict(p: np.ndarray, train: np.ndarray | None = None, target: np.ndarray | None = None) -> QuestionScores:
    """Scores of the answers to one question from their item probabilities ``p`` (answers × items); ``train`` the
    rows with a reference score ``target`` (none: unsupervised)."""
    mean = average_score(p)
    if train is None or len(train) == 0:
        return QuestionScores(mean, 0.0)
    from sklearn.ensemble import ExtraTreesRegressor

    model = ExtraTreesRegressor(n_estimators=10, max_depth=2, random_state=42).fit(p[train], target)
    w = spread_weight(target)
    return QuestionScores(model.predict(p) * w + mean * (1 - w), w)


def preferences(score_a: np.ndarray, score_b: np.ndarray, tie_margin: float = TIE_MARGIN) -> np.ndarray:
    """Preference for ``b`` per pair: 1 when its score is higher by more than ``tie_margin``, 0 when lower, else
    1/2 (NaN where either score is missing)."""
    out = np.where(score_b > score_a + tie_margin, 1.0, np.where(score_a > score_b + tie_margin, 0.0, 0.5))
    return np.where(np.isnan(score_a) | np.isnan(score_b), np.nan, out)
