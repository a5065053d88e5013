"""Agreement between several raters (judges of a panel, or samples of one judge), by the textbook formulas.

- Fleiss' kappa (Fleiss 1971): every subject rated by the same number n of raters into categories. With n_ij the
  raters putting subject i in category j, P_i = (Σ_j n_ij² − n) / (n (n − 1)), P̄ its mean, p_j the share of all
  ratings in category j and P̄_e = Σ_j p_j²: κ = (P̄ − P̄_e) / (1 − P̄_e).
- Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"): any number of raters,
  missing ratings allowed. Units with at least two ratings fill the coincidence matrix
  o_ck = Σ_u (number of ordered pairs (c, k) of different raters in u) / (m_u − 1); with n_c = Σ_k o_ck and
  n = Σ n_c,
  α = 1 − (n − 1) Σ o_ck δ²_ck / Σ n_c n_k δ²_ck, δ² = [c ≠ k] (nominal) or (c − k)² (interval).
"""

from __future__ import annotations

import numpy as np


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of ``counts`` (subjects × categories, how many raters chose each); NaN when undefined."""
    counts = np.asarray(counts, dtype=float)
    n = counts.sum(axis=1)
    if len(counts) == 0 or not np.all(n == n[0]) or n[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (at least 2) of ratings for every subject")
    raters = n[0]
    p_i = ((counts ** 2).sum(axis=1) - raters) / (raters * (raters - 1))
    p_j = counts.sum(axis=0) / counts.sum()
    p_e = float((p_j ** 2).sum())
    return float("nan") if p_e == 1 else (float(p_i.mean()) - p_e) / (1 - p_e)


def category_counts(ratings: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """``(subjects, len(categories))`` counts from ``ratings`` (subjects × raters)."""
    return (np.asarray(ratings)[:, :, None] == np.asarray(categories)[None, None, :]).sum(axis=1)


def krippendorff_alpha(ratings: np.ndarray, metric: str = "nominal") -> float:
    """Krippendorff's alpha of ``ratings`` (raters × units, NaN where a rater did not rate); NaN when undefined."""
    data = np.asarray(ratings, dtype=float)
    if metric not in ("nominal", "interval"):
        raise ValueError(f"metric must be nominal or interval, got {metric!r}")
    values = np.unique(data[np.isfinite(data)])
    counts = (data[:, :, None] == values[None, None, :]).sum(axis=0)  # units × values
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]  # only pairable units count
    if not len(counts):
        return float("nan")
    pairs = counts[:, :, None] * counts[:, None, :] - np.einsum("uc,ck->uck", counts, np.eye(len(values)))
    o = (pairs / (m - 1)[:, None, None]).sum(axis=0)
    n_c = o.sum(axis=1)
    delta = (values[:, None] != values[None, :]).astype(float) if metric == "nominal" else \
        (values[:, None] - values[None, :]) ** 2
    expected = (n_c[:, None] * n_c[None, :] * delta).sum()
    return float("nan") if expected == 0 else float(1 - (n_c.sum() - 1) * (o * delta).sum() / expected)
