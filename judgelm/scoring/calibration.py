"""Confidence from the judge itself: score distributions from the top-k log-probabilities stored in fast mode.

With ``engine.logprobs_topk=k`` the store holds, for every unit, the k most likely tokens and their log-probabilities
at each of the first generated positions. From them, per unit:

1. The emitted tokens are recovered from the verdict text: at each step, the highest-ranked candidate whose
   decoding extends the text decoded so far (under greedy decoding that is always the top-1 token). A unit whose
   text cannot be rebuilt from its candidates (a sampled token outside the top k) gets no confidence.
2. The score positions are the steps whose token starts each number of the score line. If one token holds the
   start of two scores, the unit gets no confidence.
3. At a score position, each candidate token is read as the number it would start: the emitted token as the
   score the judge wrote (so a ``1`` followed by ``0`` is 10), any other candidate at its face value (``9`` is 9;
   an alternative ``1`` is read as 1 even where the tokenizer splits 10 into digits). Candidates that start no
   number are dropped and the rest renormalised; the mass they had is kept as ``numeric_mass``.
4. ``expected`` is each score's expectation under its distribution. For a pair, treating the two distributions as
   independent (the second is conditioned on the first score the judge actually wrote, not on each alternative),
   ``label_probs`` = P(answer 2 better), P(tie), P(answer 1 better), and ``confidence`` is the probability of the
   label the judge emitted.

Calibration compares confidence with correctness: a reliability curve over equal-width confidence bins, and the
expected calibration error ECE = Σ_b (n_b / N) · |accuracy_b − mean confidence_b|.

Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks") corrects a judge that is sure
too often: the label distribution becomes softmax(log p / T), with T fitted on one labelled benchmark by minimising
the negative log-likelihood of the true labels, then applied unchanged to another (``transfer``). T > 1 softens an
over-confident judge, T < 1 sharpens an under-confident one; the emitted label never changes, only its confidence.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from judgelm.data.verdicts import parse_prediction

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SEPARATORS = " ,"


@dataclass(frozen=True)
class UnitConfidence:
    """Per-unit arrays (one row per unit of the store); rows with ``available`` False are NaN."""

    available: np.ndarray  # bool
    expected: np.ndarray  # float (n_units, n_scores)
    label_probs: np.ndarray  # float (n_units, 3): P(-1), P(0), P(1); NaN for single-answer grading
    confidence: np.ndarray  # float: probability of the emitted label (pairs only)
    numeric_mass: np.ndarray  # float: smallest top-k mass on numbers over the unit's score positions
    labels: np.ndarray | None = None  # int: the verdict label ``confidence`` is about (pairs only)


class _Decoder:
    """``tokenizer.decode`` with a cache: units share prefixes, and most of the work is decoding them."""

    def __init__(self, tokenizer):
        self.tokenizer, self.cache = tokenizer, {}

    def __call__(self, ids: tuple[int, ...]) -> str:
        text = self.cache.get(ids)
        if text is None:
            text = self.cache[ids] = self.tokenizer.decode(list(ids), skip_special_tokens=True)
        return text


def score_starts(text: str, n_scores: int) -> list[int] | None:
    """Character offsets in ``text`` where each score of the first line starts
    (as ``verdicts.parse_scores`` reads it)."""
    if parse_prediction(text, n_scores) is None:
        return None
    pos = len(text) - len(text.lstrip())
    starts = []
    for token in text.strip().split("\n", 1)[0].replace(",", " ").split(" "):
        starts.append(pos)
        pos += len(token) + 1
    return starts


def _read_number(extension: str) -> float | None:
    """The number a candidate's text would start, or None (``9`` → 9, ``7\\n`` → 7, `` `` → None, ``8a`` → None)."""
    m = _NUMBER.match(extension.lstrip(_SEPARATORS))
    if m is None:
        return None
    rest = extension.lstrip(_SEPARATORS)[m.end():]
    return float(m.group()) if not rest or not (rest[0].isalnum() or rest[0] == ".") else None


def unit_distributions(top_ids: np.ndarray, top_logprobs: np.ndarray, text: str, n_scores: int,
                       decode: _Decoder) -> tuple[list[dict[float, float]], float] | None:
    """Per-score ``{value: probability}`` for one unit, and the smallest numeric mass; None when not derivable."""
    starts = score_starts(text, n_scores)
    if starts is None:
        return None
    scores = parse_prediction(text, n_scores)
    emitted: tuple[int, ...] = ()
    done = 0
    dists, mass = [], 1.0
    for step in range(len(top_ids)):
        candidates = [int(c) for c in top_ids[step]]
        chosen, new_len = None, 0
        for c in candidates:
            s = decode(emitted + (c,))
            if len(s) > done and text.startswith(s):
                chosen, new_len = c, len(s)
                break
        if chosen is None:
            return None
        target = len(dists)
        if done <= starts[target] < new_len:
            if target + 1 < n_scores and starts[target + 1] < new_len:
                return None
            if text[done:starts[target]].strip(_SEPARATORS):
                return None  # the token also carries the end of the previous score: alternatives are not scores
            probs: dict[float, float] = {}
            total = 0.0
            for c, lp in zip(candidates, top_logprobs[step]):
                p = math.exp(float(lp)) if np.isfinite(lp) else 0.0
                total += p
                value = scores[target] if c == chosen else _read_number(decode(emitted + (c,))[done:])
                if value is not None:
                    probs[value] = probs.get(value, 0.0) + p
            numeric = sum(probs.values())
            if numeric <= 0:
                return None
            mass = min(mass, numeric)
            dists.append({v: p / numeric for v, p in probs.items()})
            if len(dists) == n_scores:
                return dists, mass
        emitted += (chosen,)
        done = new_len
    return None


def label_probabilities(d1: dict[float, float], d2: dict[float, float]) -> tuple[float, float, float]:
    """P(answer 2 better), P(tie), P(answer 1 better) for independent score distributions."""
    lose = tie = win = 0.0
    for a, pa in d1.items():
        for b, pb in d2.items():
            if a > b:
                win += pa * pb
            elif a < b:
                lose += pa * pb
            else:
                tie += pa * pb
    return lose, tie, win


def unit_confidence(top_ids: np.ndarray, top_logprobs: np.ndarray, texts: list[str], labels: np.ndarray,
                    n_scores: int, tokenizer) -> UnitConfidence:
    """Confidence for every unit; ``labels`` are the emitted verdict labels (ignored for single-answer grading)."""
    n = len(texts)
    decode = _Decoder(tokenizer)
    available = np.zeros(n, dtype=bool)
    expected = np.full((n, n_scores), np.nan)
    label_probs = np.full((n, 3), np.nan)
    confidence = np.full(n, np.nan)
    numeric_mass = np.full(n, np.nan)
    for u in range(n):
        got = unit_distributions(top_ids[u], top_logprobs[u], texts[u], n_scores, decode)
        if got is None:
            continue
        dists, numeric_mass[u] = got
        available[u] = True
        expected[u] = [sum(v * p for v, p in d.items()) for d in dists]
        if n_scores == 2:
            label_probs[u] = label_probabilities(*dists)
            confidence[u] = label_probs[u][int(labels[u]) + 1]
    return UnitConfidence(available, expected, label_probs, confidence, numeric_mass,
                          np.asarray(labels) if n_scores == 2 else None)


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Reliability curve (non-empty bins) and ECE of ``confidence`` against boolean ``correct``."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    n = len(confidence)
    if n == 0:
        return {"n": 0, "ece": None, "bins": []}
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        sel = which == b
        if not sel.any():
            continue
        conf, acc, count = float(confidence[sel].mean()), float(correct[sel].mean()), int(sel.sum())
        ece += count / n * abs(acc - conf)
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "confidence": conf, "accuracy": acc,
                     "count": count})
    return {"n": n, "ece": ece, "mean_confidence": float(confidence.mean()), "accuracy": float(correct.mean()),
            "bins": bins}


_FLOOR = 1e-6  # a label the top-k candidates gave no mass: kept possible, so one such unit cannot make NLL infinite


def temper(label_probs: np.ndarray, temperature: float) -> np.ndarray:
    """``(n, 3)`` label distributions softened (T > 1) or sharpened (T < 1): softmax(log p / T) per row."""
    logits = np.log(np.clip(label_probs, _FLOOR, 1.0)) / temperature
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(label_probs: np.ndarray, truth: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the mean negative log-likelihood of ``truth`` (labels -1, 0, 1)."""
    from scipy.optimize import minimize_scalar

    rows, cols = np.arange(len(truth)), np.asarray(truth, dtype=np.int64) + 1

    def nll(log_t: float) -> float:
        return float(-np.log(temper(label_probs, math.exp(log_t))[rows, cols]).mean())

    return math.exp(minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded").x)


def transfer(fit_probs: np.ndarray, fit_truth: np.ndarray, probs: np.ndarray, labels: np.ndarray,
             truth: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Fit a temperature on one labelled set, apply it to another: that set's reliability before and after."""
    if not len(fit_truth) or not len(truth):
        raise ValueError("temperature scaling needs verdicts with confidence and ground truth in both sets")
    t = fit_temperature(fit_probs, fit_truth)
    rows, cols = np.arange(len(labels)), np.asarray(labels, dtype=np.int64) + 1
    correct = np.asarray(labels) == np.asarray(truth)
    return {"temperature": t, "fit_units": int(len(fit_truth)), "units": int(len(truth)),
            "before": reliability(probs[rows, cols], correct, n_bins),
            "after": reliability(temper(probs, t)[rows, cols], correct, n_bins)}


def read_labelled(path: str | Path, benchmark: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label distributions, verdict labels and true labels of the verdicts in a run's ``confidence.jsonl`` that
    have all three (of ``benchmark`` only, if given)."""
    probs, labels, truth = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if "p_label" in row and "truth" in row and (not benchmark or row.get("benchmark") == benchmark):
                probs.append([row["p_label"][k] for k in ("-1", "0", "1")])
                labels.append(row["label"])
                truth.append(row["truth"])
    return np.array(probs, dtype=float).reshape(-1, 3), np.array(labels, dtype=np.int64), np.array(truth, np.int64)
