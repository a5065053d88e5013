"""The score parse mirrors JudgeLM's parse_score exactly, edge cases included (reference §3.2)."""

import numpy as np
import pytest

from judgelm.data.verdicts import parse_prediction, parse_scores, win, win_array


@pytest.mark.parametrize("text, expected", [
    ("8 7\nAssistant 1 is better", (8.0, 7.0)),
    ("8,7\nexplanation", (8.0, 7.0)),  # a comma becomes a space
    ("8.5 9\n", (8.5, 9.0)),
    ("10 10", (10.0, 10.0)),  # no newline at all: the whole text is the first line
    ("8, 7\n", None),  # comma + space gives two spaces -> three tokens
    ("8  7\n", None),  # repeated spaces are not collapsed
    (" 8 7\n", None),  # leading space (ground truth is not stripped)
    ("Assistant 1: 8\n", None),
    ("10\n", None),  # one number where two are expected
    ("8 7 6\n", None),
    ("eight 7\n", None),
    ("\n8 7", None),  # the score line must be the first line
    ("", None),
])
def test_parse_scores_two(text, expected):
    assert parse_scores(text) == expected


def test_predictions_are_stripped_before_parsing_like_judgelm():
    assert parse_prediction(" 8 7\nexpl") == (8.0, 7.0)
    assert parse_scores(" 8 7\nexpl") is None


def test_single_and_multi_counts():
    # Single-answer grading: the prompt pre-fills "10", the model continues with " 7\n...".
    assert parse_prediction(" 7\nThe answer misses a step.", n=1) == (7.0,)
    assert parse_prediction("7 8", n=1) is None
    assert parse_prediction("9 8 7 6\nexpl", n=4) == (9.0, 8.0, 7.0, 6.0)
    assert parse_prediction("9 8 7\nexpl", n=4) is None


def test_win_labels_and_failure_is_a_tie():
    assert win((8, 7)) == 1 and win((7, 8)) == -1 and win((7, 7)) == 0
    assert win(None) == 0
    assert win((7.5, 7.0), threshold=1.0) == 0
    arr = np.array([[8, 7], [7, 8], [5, 5], [np.nan, np.nan]], dtype=np.float32)
    assert win_array(arr).tolist() == [1, -1, 0, 0]
