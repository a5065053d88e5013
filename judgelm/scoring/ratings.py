"""Model-evaluation statistics: pure numpy/scipy over a table of comparisons, no store, no files.

A comparison is one record of a pairwise model evaluation: question, the models in slot 1 (``a``) and slot 2
(``b``), and ``pref_b``, the judge's preference for ``b`` in [0, 1]: 1 ``b`` better, 0 ``a`` better, 1/2 a tie
(a parse failure is a tie, as in JudgeLM's metrics). With both orders judged, ``pref_b`` is the mean over the two
orders, so a judge that flips with the order gives a tie. A judge that gives a probability (AlpacaEval's weighted
annotator) gives a fractional ``pref_b``.

Columns (AlpacaEval's names where it has one; a model's preference ``p`` is ``pref_b`` or ``1 - pref_b``, whichever
slot it is in, over all its comparisons with the baseline, or with every opponent without one):

- ``win_rate`` = 100 × mean(p); ``standard_error`` = 100 × sample standard deviation of p (ddof 1) / sqrt(n);
- ``n_wins`` / ``n_wins_base`` / ``n_draws``: comparisons with p > 1/2, < 1/2, = 1/2; ``n_total`` = n;
  ``discrete_win_rate`` = 100 × (n_wins + n_draws / 2) / n_total;
- ``avg_length``: mean length in characters of the model's answers (each question once), rounded down as
  AlpacaEval's integer column;
- ``length_controlled_winrate``: see ``length_controlled_winrates``;
- ``rating`` with ``rating_ci95``: Bradley–Terry on the Elo scale, see ``bradley_terry``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.special import expit

# scipy.optimize and scipy.stats are imported where they are used: together they take ~0.5 s to import, and the
# evaluation launcher imports this module before it submits anything.

ELO_SCALE = 400 / math.log(10)  # a rating difference of 400 is 10:1 odds
ELO_BASE = 1000.0


@dataclass(frozen=True)
class Comparisons:
    """One entry per comparison; ``a``/``b`` index ``models``, ``question`` is an integer code per question."""

    models: list[str]
    question: np.ndarray  # int
    a: np.ndarray  # int
    b: np.ndarray  # int
    pref_b: np.ndarray  # float in [0, 1]
    len_a: np.ndarray  # answer lengths in characters
    len_b: np.ndarray
    category: np.ndarray  # str
    consistent: np.ndarray  # float: 1 the two orders agree, 0 they do not, NaN only one order judged
    record: np.ndarray | None = None  # the store record of each comparison (for its answer texts), if known
    turn: np.ndarray | None = None  # with ``record``: the turn of the record compared (0: the first)

    def __len__(self) -> int:
        return len(self.pref_b)

    def subset(self, keep: np.ndarray) -> Comparisons:
        def cut(x: np.ndarray | None) -> np.ndarray | None:
            return None if x is None else x[keep]

        return replace(self, question=self.question[keep], a=self.a[keep], b=self.b[keep], pref_b=self.pref_b[keep],
                       len_a=self.len_a[keep], len_b=self.len_b[keep], category=self.category[keep],
                       consistent=self.consistent[keep], record=cut(self.record), turn=cut(self.turn))

    def of_model(self, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(p, own length, opponent's length, question)`` of model ``m`` over its comparisons."""
        in_a, in_b = self.a == m, self.b == m
        p = np.concatenate([1 - self.pref_b[in_a], self.pref_b[in_b]])
        own = np.concatenate([self.len_a[in_a], self.len_b[in_b]])
        other = np.concatenate([self.len_b[in_a], self.len_a[in_b]])
        return p, own, other, np.concatenate([self.question[in_a], self.question[in_b]])


def head_to_head(p: np.ndarray) -> dict[str, Any]:
    """AlpacaEval's win-rate columns from a model's preferences ``p`` (see the module docs)."""
    n = len(p)
    wins, losses = int((p > 0.5).sum()), int((p < 0.5).sum())
    draws = n - wins - losses
    return {"win_rate": 100 * float(p.mean()) if n else None,
            "standard_error": 100 * float(p.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
            "n_wins": wins, "n_wins_base": losses, "n_draws": draws, "n_total": n,
            "discrete_win_rate": (wins + draws / 2) / n * 100 if n else None}  # AlpacaEval's order of operations


# --- Bradley–Terry --------------------------------------------------------------------------------------------

def win_matrix(c: Comparisons, weight: np.ndarray | None = None) -> np.ndarray:
    """``W[i, j]``: how often model i beat model j, a tie counting one half to each (optionally weighted)."""
    w = np.ones(len(c)) if weight is None else weight
    out = np.zeros((len(c.models), len(c.models)))
    np.add.at(out, (c.b, c.a), w * c.pref_b)
    np.add.at(out, (c.a, c.b), w * (1 - c.pref_b))
    return out


def bt_strengths(wins: np.ndarray, l2: float = 1e-4) -> np.ndarray:
    """Maximum-likelihood Bradley–Terry strengths β (natural log-odds): P(i beats j) = σ(β_i − β_j).

    Minimises ``−Σ W_ij log σ(β_i − β_j) + l2/2 · Σ β_i²``: Chatbot Arena's logistic regression without intercept,
    ties as half wins; the tiny ridge term only keeps a model that never wins (or never loses) finite.
    """
    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        d = beta[:, None] - beta[None, :]
        nll = float((wins * np.logaddexp(0, -d)).sum()) + l2 / 2 * float(beta @ beta)
        g = wins * expit(-d)
        return nll, -g.sum(axis=1) + g.sum(axis=0) + l2 * beta

    def hess(beta: np.ndarray) -> np.ndarray:
        p = expit(beta[:, None] - beta[None, :])
        c = (wins + wins.T) * p * (1 - p)  # curvature of each pair's term
        return np.diag(c.sum(axis=1) + l2) - c

    from scipy import optimize

    # Newton steps (the problem is small and convex); L-BFGS crawls when a model never wins.
    res = optimize.minimize(loss, np.zeros(len(wins)), jac=True, hess=hess, method="trust-exact",
                            options={"gtol": 1e-9})
    return res.x


def to_elo(beta: np.ndarray, anchor: int | None = None) -> np.ndarray:
    """Strengths on the Elo scale: 1000 for the ``anchor`` model (the baseline), or on average without one."""
    ref = beta[anchor] if anchor is not None else beta.mean()
    return ELO_BASE + ELO_SCALE * (beta - ref)


def bradley_terry(c: Comparisons, anchor: int | None = None, n_boot: int = 200, seed: int = 0,
                  l2: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Elo-scale ratings and their bootstrap 95 % intervals ``(M, 2)``, resampling whole questions."""
    ratings = to_elo(bt_strengths(win_matrix(c), l2), anchor)
    questions = np.unique(c.question)
    code = np.searchsorted(questions, c.question)
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, len(c.models)))
    for k in range(n_boot):
        counts = rng.multinomial(len(questions), np.full(len(questions), 1 / len(questions)))
        boot[k] = to_elo(bt_strengths(win_matrix(c, counts[code].astype(float)), l2), anchor)
    ci = np.percentile(boot, [2.5, 97.5], axis=0).T if n_boot else np.full((len(c.models), 2), np.nan)
    return ratings, ci


# --- length control -------------------------------------------------------------------------------------------

def length_controlled_winrates(c: Comparisons, baseline: int, difficulty_l2: float = 1.0) -> dict[int, float]:
    """Length-controlled win rate of every model against the baseline (AlpacaEval 2's idea, our own fit).

    One logistic model with soft targets (the preferences p) is fitted jointly to all models' comparisons with the
    baseline: ``logit P(model m wins on question q) = θ_m + φ_m · tanh(Δ / σ_m) + d_q``, where Δ is the model's
    answer length minus the baseline's (characters), σ_m the sample standard deviation of Δ over the model's
    comparisons, and ``d_q`` a difficulty per question shared by all models, with an L2 penalty
    ``difficulty_l2 / 2 · Σ d_q²`` (a standard-normal prior, which keeps it identifiable). The length-controlled
    win rate is 100 × the mean over the model's questions of ``σ(θ_m + d_q)``: the prediction at zero length
    difference. The baseline's own is 50 by definition.
    """
    rows = [(m, *c.of_model(m)) for m in range(len(c.models)) if m != baseline]
    rows = [r for r in rows if len(r[1])]
    if not rows:
        return {baseline: 50.0}
    model = np.concatenate([np.full(len(r[1]), k) for k, r in enumerate(rows)])
    p = np.concatenate([r[1] for r in rows])
    delta = [r[2].astype(float) - r[3] for r in rows]
    t = np.concatenate([np.tanh(d / (d.std(ddof=1) if len(d) > 1 and d.std(ddof=1) > 0 else 1.0)) for d in delta])
    questions, q = np.unique(np.concatenate([r[4] for r in rows]), return_inverse=True)
    k, nq = len(rows), len(questions)

    def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        theta, phi, d = x[:k], x[k:2 * k], x[2 * k:]
        z = theta[model] + phi[model] * t + d[q]
        nll = float((np.logaddexp(0, z) - p * z).sum()) + difficulty_l2 / 2 * float(d @ d)
        r = expit(z) - p
        return nll, np.concatenate([np.bincount(model, r, k), np.bincount(model, r * t, k),
                                    np.bincount(q, r, nq) + difficulty_l2 * d])

    from scipy import optimize

    x = optimize.minimize(loss, np.zeros(2 * k + nq), jac=True, method="L-BFGS-B",
                          options={"gtol": 1e-9, "maxiter": 10_000}).x
    out = {baseline: 50.0}
    for j, r in enumerate(rows):
        out[r[0]] = 100 * float(expit(x[j] + x[2 * k + q[model == j]]).mean())
    return out


# --- tables ---------------------------------------------------------------------------------------------------

def win_rate_matrix(c: Comparisons) -> list[list[float | None]]:
    """``[i][j]``: 100 × model i's mean preference over its comparisons with model j (None: never compared)."""
    w = win_matrix(c)
    n = w + w.T
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = 100 * w / n
    return [[None if n[i, j] == 0 else float(rate[i, j]) for j in range(len(w))] for i in range(len(w))]


def order_consistency(c: Comparisons) -> dict[str, dict[str, Any]]:
    """Per model pair judged in both orders: the share of comparisons whose two verdicts agree once unswapped."""
    out = {}
    both = ~np.isnan(c.consistent)
    for i, j in itertools.combinations(range(len(c.models)), 2):
        sel = both & (((c.a == i) & (c.b == j)) | ((c.a == j) & (c.b == i)))
        if sel.any():
            out[f"{c.models[i]} vs {c.models[j]}"] = {"consistency": float(c.consistent[sel].mean()),
                                                       "n": int(sel.sum())}
    return out


def by_category(c: Comparisons, baseline: int | None) -> dict[str, dict[str, float]]:
    """Win rate per category and model (against the baseline, or every opponent), for data with categories."""
    out: dict[str, dict[str, float]] = {}
    for cat in sorted(set(c.category.tolist()) - {""}):
        part = c.subset(c.category == cat)
        for m, name in enumerate(c.models):
            p = part.of_model(m)[0]
            if m != baseline and len(p):
                out.setdefault(cat, {})[name] = 100 * float(p.mean())
    return out if len(out) > 1 else {}


def avg_length(c: Comparisons, m: int) -> int | None:
    _, own, _, question = c.of_model(m)
    _, first = np.unique(question, return_index=True)
    return int(own[first].mean()) if len(first) else None


def mean_with_interval(x: np.ndarray) -> dict[str, Any]:
    """Mean, and its normal-approximation 95 % interval (mean ± 1.96 standard errors)."""
    n = len(x)
    mean = float(x.mean()) if n else None
    half = 1.96 * float(x.std(ddof=1)) / math.sqrt(n) if n > 1 else None
    return {"mean": mean, "ci95": [mean - half, mean + half] if half is not None else None, "n": n}


# --- comparing leaderboards -----------------------------------------------------------------------------------

def rank_agreement(ours: dict[str, float], theirs: dict[str, float]) -> dict[str, Any]:
    """Spearman and Kendall correlations of two leaderboards over their common models, and the pairs of models
    in opposite orders (``[higher here, higher there]``; a tie in either is not a flip)."""
    from scipy import stats

    common = sorted(set(ours) & set(theirs))
    x, y = np.array([ours[m] for m in common]), np.array([theirs[m] for m in common])
    constant = len(common) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0
    flips = [[a, b] if x[i] > x[j] else [b, a] for (i, a), (j, b) in itertools.combinations(enumerate(common), 2)
             if np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) < 0]
    return {"models": common, "spearman": None if constant else float(stats.spearmanr(x, y).statistic),
            "kendall": None if constant else float(stats.kendalltau(x, y).statistic), "flips": flips}
