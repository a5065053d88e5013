"""Reading scores out of a judge's text, the way JudgeLM does (reference document §3.2–3.3).

The parse is deliberately as strict as JudgeLM's ``parse_score``: only the first line, commas become spaces, a
split on single spaces, and exactly the expected number of tokens that ``float`` accepts. Anything else is a
failure, and for pairwise metrics a failure counts as a tie. Being more lenient here would change the metrics
against the published numbers, so leniency is not offered.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np


class Status(IntEnum):
    """Outcome of one judgement unit, stored per unit in the verdict store."""

    OK = 0  # the first line parsed into the expected number of scores
    PARSE_FAILED = 1  # the judge answered but the first line did not parse (counts as a tie)
    PROMPT_TOO_LONG = 2  # rejected before judging: the prompt left no room for the answer


def parse_scores(text: str, n: int = 2) -> tuple[float, ...] | None:
    """Scores from the first line of ``text``, or ``None`` when it does not hold exactly ``n`` numbers.

    ``n=2`` is JudgeLM's ``parse_score``; ``n=1`` reads single-answer grading (the model continues after the
    pre-filled ``10``); ``n>2`` reads N-answer grading. The text is not stripped here: JudgeLM strips
    predictions before parsing but not ground-truth judgements, so callers decide (see ``parse_prediction``).
    """
    tokens = text.split("\n", 1)[0].replace(",", " ").split(" ")
    if len(tokens) != n:
        return None
    try:
        return tuple(float(t) for t in tokens)
    except ValueError:
        return None


def parse_prediction(text: str, n: int = 2) -> tuple[float, ...] | None:
    """Parse a judge's generated text; JudgeLM strips its predictions before saving them."""
    return parse_scores(text.strip(), n)


def win(scores: Sequence[float] | None, threshold: float = 0.0) -> int:
    """JudgeLM's ``translate_score_to_win_list`` for one pair: 1 (answer 1 better), -1 (answer 2), 0 (tie).

    A failed parse is a tie, as in JudgeLM's metrics.
    """
    if scores is None:
        return 0
    s1, s2 = scores
    if s1 - s2 > threshold:
        return 1
    if s2 - s1 > threshold:
        return -1
    return 0


def win_array(scores: np.ndarray) -> np.ndarray:
    """Vectorised ``win`` over an ``(N, 2)`` float array where NaN marks a failed parse (a tie)."""
    diff = scores[:, 0] - scores[:, 1]
    out = np.zeros(len(scores), dtype=np.int8)
    out[diff > 0] = 1
    out[diff < 0] = -1
    return out
