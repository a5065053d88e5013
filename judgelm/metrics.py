"""Judge metrics, with JudgeLM's exact definitions (reference document §6).

Labels are 1 (answer 1 better), 0 (tie), -1 (answer 2 better). Inputs are already filtered to the pairs that
have a ground truth, as JudgeLM drops rows whose GPT-4 judgement does not parse; prediction parse failures stay
in as ties.
"""

from __future__ import annotations

import numpy as np

CLASSES = (-1, 0, 1)


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """3×3 counts, rows = truth, columns = prediction, both in the order -1, 0, 1."""
    idx = (np.asarray(y_true, dtype=np.int64) + 1) * 3 + (np.asarray(y_pred, dtype=np.int64) + 1)
    return np.bincount(idx, minlength=9).reshape(3, 3)


def macro_prf(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float]:
    """Macro precision, recall and F1 as sklearn computes them with ``average='macro'``.

    The mean runs over the classes present in ``y_true`` or ``y_pred``; a zero denominator scores 0; and F1 is
    the mean of per-class F1 values, not the harmonic mean of the macro precision and recall.
    """
    cm = confusion(y_true, y_pred)
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


def judgelm_metrics(y_true: np.ndarray, seq: np.ndarray, rev: np.ndarray | None = None) -> dict[str, float | int]:
    """JudgeLM's ``eval_model_judgement`` numbers as fractions.

    ``seq`` is the label of the judge's verdict with the answers in their original order, ``rev`` the label of
    its verdict on the swapped pair, in the swapped frame (as the judge wrote it). Keys: ``agreement`` (JudgeLM's
    dict calls it ``accuracy``), ``precision``, ``recall``, ``f1`` and, with ``rev``: ``consistency``,
    ``prefer_before``/``prefer_after`` (counts; JudgeLM spells them ``perfer_*``) and their rates, ``delta_bias``,
    ``total_bias``; plus ``total_num``.
    """
    y_true, seq = np.asarray(y_true), np.asarray(seq)
    n = len(y_true)
    out: dict[str, float | int] = {"total_num": n}
    if n == 0:
        return out
    out["agreement"] = float((y_true == seq).mean())
    out["precision"], out["recall"], out["f1"] = macro_prf(y_true, seq)
    if rev is not None:
        out.update(swap_metrics(seq, np.asarray(rev)))
    return out


def swap_metrics(seq: np.ndarray, rev: np.ndarray) -> dict[str, float | int]:
    """Consistency and position bias from the two orders; no ground truth involved.

    ``s = -seq`` is the original verdict in the swapped frame and ``t = rev``. ``s < t`` means the judge moved
    towards the answer it saw first ("prefer before"), ``s > t`` towards the one it saw second.
    """
    n = len(seq)
    s, t = -seq.astype(np.int64), rev.astype(np.int64)
    before, after = int((s < t).sum()), int((s > t).sum())
    return {
        "consistency": float((s == t).mean()), "prefer_before": before, "prefer_after": after,
        "prefer_before_rate": before / n, "prefer_after_rate": after / n,
        "delta_bias": abs(before - after) / n, "total_bias": (before + after) / n,
    }
