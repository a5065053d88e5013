"""Turning a unit's stored draws into its verdict, at merge time: change the policy, merge again, judge nothing.

A unit's draws are its primary verdict, its re-asks after a parse failure and, with ``engine.samples=k``, k
samples (sample 0 being the primary one); ``judgelm.judging.resample`` draws them and ``store.draw_arrays`` lays them
out. First the re-asks stand in for the primary verdict: it becomes the first attempt that parsed. Then the policy
chooses from the k samples (an unparsed sample is NaN and never counts):

- ``primary``: sample 0, what the merge reports without samples;
- ``majority``: pairs take the verdict label (1, 0, -1) most samples gave, its scores the mean of those samples'
  scores; equal counts make a tie, scored by the mean of all parsed scores on both sides. Single-answer and N-answer
  grading take the median of each score;
- ``mean``: the mean of each score over the parsed samples;
- ``first_parseable``: the first sample that parsed;
- ``expected``: the expected scores from sample 0's score-token log-probabilities (``judgelm.scoring.calibration``),
  where they exist, else the primary verdict.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from judgelm.data.verdicts import Status, win_array
from judgelm.judging.config import check_policy
from judgelm.judging.store import NOT_ASKED, VerdictStore
from judgelm.scoring.agreement import category_counts, fleiss_kappa, krippendorff_alpha


@dataclass(frozen=True)
class Draws:
    """A run's draws, read once: every array has one row per unit."""

    scores: np.ndarray  # (n, n_scores) primary verdict, NaN when unparsed
    status: np.ndarray  # (n,) primary status
    retry_scores: np.ndarray | None  # (n, R, n_scores)
    retry_status: np.ndarray | None  # (n, R), NOT_ASKED where no re-ask was made
    sample_scores: np.ndarray | None  # (n, k, n_scores), sample 0 = the primary verdict

    @classmethod
    def read(cls, store: VerdictStore, scores: np.ndarray, status: np.ndarray) -> Draws:
        names = set(store.attrs.get("extra_arrays", []))

        def get(name: str) -> np.ndarray | None:
            return store.verdicts(name) if name in names else None

        return cls(scores, status, get("retry_scores"), get("retry_status"), get("sample_scores"))


def after_retries(d: Draws) -> tuple[np.ndarray, np.ndarray]:
    """Primary scores and status with each failed verdict replaced by the first re-ask that parsed."""
    scores, status = d.scores.copy(), d.status.copy()
    if d.retry_status is None:
        return scores, status
    ok = d.retry_status == Status.OK
    rows = np.flatnonzero(ok.any(axis=1) & (status == Status.PARSE_FAILED))
    first = ok[rows].argmax(axis=1)
    scores[rows], status[rows] = d.retry_scores[rows, first], Status.OK
    return scores, status


def samples_of(d: Draws, k: int | None = None) -> np.ndarray:
    """``(n, k, n_scores)``: the first ``k`` samples (all when None), sample 0 after re-asks."""
    primary = after_retries(d)[0]
    samples = primary[:, None] if d.sample_scores is None else d.sample_scores[:, :k].copy()
    samples[:, 0] = primary
    return samples


def _majority_pairs(samples: np.ndarray) -> np.ndarray:
    parsed = np.isfinite(samples).all(axis=2)
    diff = samples[:, :, 0] - samples[:, :, 1]
    votes = np.stack([((np.sign(diff) == lab) & parsed).sum(axis=1) for lab in (-1, 0, 1)], axis=1)
    top = votes.max(axis=1, keepdims=True)
    split = (votes == top).sum(axis=1) > 1
    label = np.where(split, 0, votes.argmax(axis=1) - 1)
    chosen = parsed & (np.sign(diff) == label[:, None])
    with warnings.catch_warnings():  # units without a parsed sample stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanmean(np.where(chosen[:, :, None], samples, np.nan), axis=1)
        tie = np.nanmean(samples, axis=(1, 2))
    out[split] = tie[split, None]
    out[top[:, 0] == 0] = np.nan
    return out


def choose(policy: str, samples: np.ndarray, expected: np.ndarray | None = None) -> np.ndarray:
    """``(n, n_scores)`` verdict scores from ``samples`` (n, k, n_scores) under ``policy``; NaN: nothing parsed."""
    check_policy(policy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if policy == "majority":
            return _majority_pairs(samples) if samples.shape[2] == 2 else np.nanmedian(samples, axis=1)
        if policy == "mean":
            return np.nanmean(samples, axis=1)
    if policy == "first_parseable":
        parsed = np.isfinite(samples).all(axis=2)
        return samples[np.arange(len(samples)), parsed.argmax(axis=1)]
    if policy == "expected":
        if expected is None:
            raise ValueError("merge.policy=expected needs score-token log-probabilities: judge with "
                             "engine.logprobs_topk=5 (make benchmark keeps them by default)")
        return np.where(np.isfinite(expected).all(axis=1)[:, None], expected, samples[:, 0])
    return samples[:, 0].copy()


def status_of(scores: np.ndarray, primary_status: np.ndarray) -> np.ndarray:
    """OK where the chosen verdict has scores; a unit rejected before judging stays rejected."""
    status = np.where(np.isfinite(scores).all(axis=1), Status.OK, Status.PARSE_FAILED).astype(np.int8)
    status[primary_status == Status.PROMPT_TOO_LONG] = Status.PROMPT_TOO_LONG
    return status


def retry_summary(d: Draws, done: np.ndarray) -> dict[str, float | int] | None:
    """Parse failures of the done units before and after the re-asks; None when the run made none."""
    if d.retry_status is None:
        return None
    after = after_retries(d)[1][done]
    asked = (d.retry_status[done] != NOT_ASKED).sum(axis=1)
    n = max(int(done.sum()), 1)
    before = int((d.status[done] == Status.PARSE_FAILED).sum())
    return {"failures_before": before, "failure_rate_before": before / n,
            "failures_after": int((after == Status.PARSE_FAILED).sum()),
            "failure_rate_after": float((after == Status.PARSE_FAILED).sum() / n),
            "units_re_asked": int((asked > 0).sum()), "re_asks": int(asked.sum())}


def sample_agreement(samples: np.ndarray) -> dict[str, float | None]:
    """How much a unit's samples agree with each other: for pairs, the mean share of samples giving the unit's most
    common label, the share of unanimous units and Fleiss' kappa with samples as raters (an unparsed sample
    counts as a tie, as in the metrics); for graded scores, Krippendorff's interval alpha of the first score."""
    if samples.shape[2] != 2:
        return {"krippendorff_alpha_interval": krippendorff_alpha(samples[:, :, 0].T, "interval")}
    labels = np.stack([win_array(samples[:, s]) for s in range(samples.shape[1])], axis=1)
    counts = category_counts(labels, np.array([-1, 0, 1]))
    modal = counts.max(axis=1) / samples.shape[1]
    kappa = fleiss_kappa(counts) if samples.shape[1] > 1 and len(samples) else None
    return {"mean_modal_share": float(modal.mean()) if len(modal) else None,
            "unanimous_share": float((modal == 1).mean()) if len(modal) else None, "fleiss_kappa": kappa}


def relabel_confidence(label_probs: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The verdict labels the policy chose, and the judge's probability of each (from sample 0's
    log-probabilities)."""
    labels = win_array(scores)
    return labels, label_probs[np.arange(len(scores)), labels.astype(np.int64) + 1]
