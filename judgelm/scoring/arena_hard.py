"""Arena-Hard-Auto's statistics (lmarena/arena-hard-auto at 196f6b8, ``show_result.py`` and ``utils/math_utils.py``;
v0.1's Elo variant from its ``show_result.py``/``utils_math.py`` at 0489bf3), on battles: pure numpy/scipy.

**Battles.** A model is judged against its opponent (the baseline) in two games per question: game 1 with the
baseline as Assistant A, game 2 swapped. Each game gives the model an outcome of 1 (it won), 1/2 (tie) or 0, and
a significant verdict (``>>``) counts as ``weight`` = 3 identical battles, a slight one or a tie as one. v2.0 drops a
question whose either game did not parse (``drop="question"``, its ``load_judgments``); v0.1 dropped the unparsed
game alone (``drop="game"``). Rows are laid out as the authors' code lays them out (v2.0: per question game 2's
rows, then game 1's), so that with the same seed the bootstrap draws the same rows as theirs.

**Score (v2.0).** Per model, the mean outcome of its battles, bootstrapped ``rounds`` times by resampling the
model's own battles with replacement (models in name order, numpy's legacy ``RandomState(seed)``, as pandas'
``groupby().sample`` draws from numpy's global state); the score is the mean of the bootstrap means, the interval
their ``(1 − level)/2`` and ``(1 + level)/2`` quantiles (defaults 100 rounds, level 0.90: the 5th and 95th
percentiles). The baseline is 50 by definition.

**Style-controlled score (v2.0).** A Bradley–Terry logistic regression without intercept, with soft outcomes, on
all battles: ``logit P(model beats opponent) = β_model − β_opponent + γ · s``, where ``s`` are the four battle style
features standardised over the battles (``judgelm.scoring.style``). The baseline's β is fixed at 0 (theirs is left
free and cancels); the fit is the exact maximum-likelihood solution (theirs is 50 L-BFGS steps in float32, equal to
it within 1e-4 here). Standardising centres the features, so the score is the win rate at the
board's average style difference, not at equal style (``center=False``, not theirs, reads it at equal style).
Bootstrap: ``rounds`` resamples of all battle rows (``RandomState(seed).randint``, as theirs),
one fit each; the model's style-controlled score is the median over rounds of σ(β_model − β_baseline), the
interval the same quantiles as above; the style coefficients reported are their medians.

**Freezing.** Adding a model moves every style-controlled score: the standardisation and γ are fitted on all
battles. ``StyleFit`` (the normalisation and the coefficients of one leaderboard) can be saved and passed back:
with the normalisation frozen the features of later battles are standardised with the old constants, with the
coefficients frozen too each model's β is fitted alone with ``γ · s`` as a fixed offset and bootstrapped over its
own battles (a stream seeded by the seed and its name), so against one baseline a model's score no longer depends
on which other models are on the board.

**Elo (v0.1).** The same regression without style features, on the Elo scale: ``1000 + 400 · log10(e) ·
(β_model − β_baseline)``; bootstrap by resampling the battle rows, interval the 2.5th and 97.5th percentiles; the
score v0.1 printed is the win rate against the baseline these Elo ratings predict, ``1 / (1 + 10^((R_b − R_m)/400))``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from judgelm.scoring.ratings import ELO_BASE, ELO_SCALE
from judgelm.scoring.style import FEATURES, StyleNorm

WEIGHT = 3


@dataclass(frozen=True)
class Battles:
    """One row per battle as counted (a significant verdict is ``weight`` rows); ``model``/``opponent`` index
    ``models``, ``outcome`` is the model's (1 won, 1/2 tie, 0 lost), ``style`` the raw battle features."""

    models: list[str]
    model: np.ndarray
    opponent: np.ndarray
    outcome: np.ndarray
    question: np.ndarray
    style: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.outcome)


def battles_from_games(models: list[str], model: np.ndarray, opponent: np.ndarray, question: np.ndarray,
                       games: np.ndarray, strong: np.ndarray, style: np.ndarray | None = None,
                       weight: int = WEIGHT, drop: str = "question") -> tuple[Battles, int]:
    """Battles of ``n`` (model, question) pairs from their two games. ``games``: ``(n, 2)`` outcomes of the model in
    game 1 (baseline as A) and game 2 (NaN: unparsed); ``strong``: ``(n, 2)`` significant verdicts; ``style``: the
    pair's battle features. Returns the battles and the number of pairs (``question``) or games (``game``)
    dropped for a verdict that did not parse."""
    ok = np.isfinite(games)
    if drop == "question":
        keep_pair = ok.all(axis=1)
        dropped = int((~keep_pair).sum())
        order = [1, 0]  # show_result.load_judgments: game 2's scores, then game 1's
        reps = np.where(strong[:, order], weight, 1) * keep_pair[:, None]
        outcome = games[:, order]
    elif drop == "game":
        dropped = int((~ok).sum())
        reps = np.where(strong, weight, 1) * ok
        outcome = games
    else:
        raise ValueError(f"drop must be 'question' or 'game', got {drop!r}")
    reps = reps.astype(int).ravel()
    pair = np.repeat(np.repeat(np.arange(len(games)), 2), reps)
    return Battles(models, model[pair], opponent[pair], np.repeat(np.nan_to_num(outcome).ravel(), reps),
                   question[pair], None if style is None else style[pair]), dropped


def interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``(1 - level)/2`` and ``(1 + level)/2`` quantiles over axis 0 (linear interpolation, as pandas)."""
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return lo, hi


def bootstrap_scores(b: Battles, rounds: int = 100, level: float = 0.90, seed: int = 0) -> dict[int, tuple]:
    """v2.0's score of each model: ``{model: (score, lower, upper)}`` as fractions (module docs)."""
    rs = np.random.RandomState(seed)
    present = sorted(set(b.model.tolist()), key=lambda m: b.models[m])
    rows = [b.outcome[b.model == m] for m in present]
    means = np.empty((rounds, len(present)))
    for r in range(rounds):
        for j, x in enumerate(rows):
            means[r, j] = x[rs.randint(0, len(x), size=len(x))].mean()
    lo, hi = interval(means, level)
    return {m: (float(means[:, j].mean()), float(lo[j]), float(hi[j])) for j, m in enumerate(present)}


def fit_bt(b: Battles, weight: np.ndarray, anchor: int, style: np.ndarray | None = None,
           offset: np.ndarray | None = None, l2: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood ``(β, γ)`` of ``logit = β_model − β_opponent + γ·style + offset`` with soft outcomes and
    row weights, β of ``anchor`` fixed at 0 (a model that never wins stays finite by the tiny ridge ``l2``)."""
    n_models = len(b.models)
    x = np.zeros((len(b), n_models))
    np.add.at(x, (np.arange(len(b)), b.model), 1.0)
    np.add.at(x, (np.arange(len(b)), b.opponent), -1.0)
    free = [m for m in range(n_models) if m != anchor]
    x = np.column_stack([x[:, free]] + ([style] if style is not None else []))
    y, w = b.outcome, weight.astype(float)
    off = np.zeros(len(b)) if offset is None else offset

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta + off
        r = w * (expit(z) - y)
        return float((w * (np.logaddexp(0, z) - y * z)).sum() + l2 / 2 * theta @ theta), x.T @ r + l2 * theta

    def hess(theta: np.ndarray) -> np.ndarray:
        p = expit(x @ theta + off)
        return (x * (w * p * (1 - p))[:, None]).T @ x + l2 * np.eye(x.shape[1])

    from scipy import optimize  # where it is used, as in judgelm.scoring.ratings

    theta = optimize.minimize(loss, np.zeros(x.shape[1]), jac=True, hess=hess, method="trust-exact",
                              options={"gtol": 1e-10}).x
    beta = np.zeros(n_models)
    beta[free] = theta[:len(free)]
    return beta, theta[len(free):]


@dataclass(frozen=True)
class StyleFit:
    """What a style-controlled leaderboard fitted and can freeze: the normalisation and the coefficients."""

    norm: StyleNorm
    coefficients: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {**self.norm.to_json(), "coefficients": list(self.coefficients)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> StyleFit:
        return cls(StyleNorm.from_json(obj), tuple(obj.get("coefficients") or ()))


@dataclass(frozen=True)
class StyleControlled:
    """Per model over the bootstrap: β (natural log-odds against the anchor) and the win rate against it."""

    beta: np.ndarray  # (rounds, n_models)
    fit: StyleFit
    frozen: str  # "", "normalization" or "all"

    def winrate(self, level: float) -> dict[int, tuple[float, float, float]]:
        """``{model: (median, lower, upper)}`` of σ(β_model − β_anchor) (v2.0's style-controlled score)."""
        p = expit(self.beta)
        lo, hi = interval(p, level)
        med = np.quantile(p, 0.5, axis=0)
        return {m: (float(med[m]), float(lo[m]), float(hi[m])) for m in range(p.shape[1])}

    def elo(self, level: float, center: bool = False) -> dict[int, tuple[float, float, float]]:
        """``{model: (median, lower, upper)}`` on the Elo scale, 1000 for the anchor (or the mean with ``center``)."""
        beta = self.beta - self.beta.mean(axis=1, keepdims=True) if center else self.beta
        r = ELO_BASE + ELO_SCALE * beta
        lo, hi = interval(r, level)
        med = np.quantile(r, 0.5, axis=0)
        return {m: (float(med[m]), float(lo[m]), float(hi[m])) for m in range(r.shape[1])}


def style_controlled(b: Battles, anchor: int, rounds: int = 100, seed: int = 0, frozen: StyleFit | None = None,
                     freeze: str = "normalization", center: bool = True) -> StyleControlled:
    """Bootstrap fits of the style-controlled regression (module docs). ``frozen`` with ``freeze`` =
    ``normalization`` standardises with its constants, ``all`` also keeps its coefficients fixed."""
    if b.style is None:
        raise ValueError("style control needs the battles' style features")
    if freeze not in ("normalization", "all"):
        raise ValueError(f"style freeze must be 'normalization' or 'all', got {freeze!r}")
    norm = frozen.norm if frozen is not None else StyleNorm.fit(b.style, center=center)
    s = norm.apply(b.style)
    fixed = frozen is not None and freeze == "all"
    if fixed and len(frozen.coefficients) != len(FEATURES):
        raise ValueError("the frozen style fit has no coefficients to keep; freeze the normalization only")
    offset = s @ np.asarray(frozen.coefficients) if fixed else None
    if fixed and (b.opponent == anchor).all():
        return StyleControlled(_separate_fits(b, anchor, offset, rounds, seed), frozen, freeze)
    idx = np.random.RandomState(seed).randint(0, len(b), size=(rounds, len(b)))
    betas, gammas = [], []
    for r in range(rounds):
        w = np.bincount(idx[r], minlength=len(b))
        beta, gamma = fit_bt(b, w, anchor, None if fixed else s, offset)
        betas.append(beta)
        gammas.append(gamma)
    coefficients = frozen.coefficients if fixed else tuple(map(float, np.quantile(np.array(gammas), 0.5, axis=0)))
    return StyleControlled(np.array(betas), StyleFit(norm, coefficients),
                           "" if frozen is None else freeze)


def _separate_fits(b: Battles, anchor: int, offset: np.ndarray, rounds: int, seed: int) -> np.ndarray:
    """With the coefficients frozen and every battle against the anchor, each model's β is its own one-parameter
    fit; its bootstrap resamples its own battles with a stream seeded by ``seed`` and its name, so a model's score
    is the same whichever other models are on the board."""
    beta = np.zeros((rounds, len(b.models)))
    for m in sorted(set(b.model.tolist()) - {anchor}):
        rows = np.flatnonzero(b.model == m)
        pair = Battles([b.models[anchor], b.models[m]], np.ones(len(rows), dtype=int), np.zeros(len(rows), dtype=int),
                       b.outcome[rows], b.question[rows])
        rs = np.random.RandomState([seed, zlib.crc32(b.models[m].encode())])
        for r in range(rounds):
            w = np.bincount(rs.randint(0, len(rows), size=len(rows)), minlength=len(rows))
            beta[r, m] = fit_bt(pair, w, 0, offset=offset[rows])[0][1]
    return beta


def elo_v01(b: Battles, anchor: int, rounds: int = 100, level: float = 0.95,
            seed: int = 0) -> dict[int, dict[str, float]]:
    """v0.1's Elo of each model with its bootstrap interval, and the win rates against the anchor they predict."""
    point = ELO_BASE + ELO_SCALE * fit_bt(b, np.ones(len(b)), anchor)[0]
    rs = np.random.RandomState(seed)
    boot = np.array([ELO_BASE + ELO_SCALE * fit_bt(b, np.bincount(rs.randint(0, len(b), size=len(b)),
                                                                   minlength=len(b)), anchor)[0]
                     for _ in range(rounds)])
    lo, hi = interval(boot, level)

    def winrate(r: float, base: float) -> float:
        return float(1 / (1 + 10 ** ((base - r) / 400)))

    return {m: {"elo": float(point[m]), "elo_lower": float(lo[m]), "elo_upper": float(hi[m]),
                "score": winrate(point[m], point[anchor]), "lower": winrate(lo[m], point[anchor]),
                "upper": winrate(hi[m], point[anchor])} for m in range(len(b.models))}
