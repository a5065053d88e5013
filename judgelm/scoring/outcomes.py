"""From a model evaluation's verdict store to the comparisons and scores the leaderboard is computed from.

A unit's verdict is turned into the judge's preference for the answer in slot 2 *of the record* (the swap of
order-1 units undone): 1 when that answer won, 0 when it lost, 1/2 for a tie or a parse failure, or the judge's
own probability where the store has one (``verdicts/preference``, written by imports of AlpacaEval's weighted
annotator). A record's preference is the mean over its judged orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from judgelm.data.verdicts import win_array
from judgelm.judging.store import PREFERENCE, VerdictStore
from judgelm.scoring.ratings import Comparisons


@dataclass(frozen=True)
class Units:
    """The done units of one reference mode, with their record's fields."""

    record: np.ndarray
    order: np.ndarray
    scores: np.ndarray
    preference: np.ndarray | None


@dataclass(frozen=True)
class Scores:
    """Single-answer grading: the judge's score of each record's tested answer (slot 2)."""

    models: list[str]
    model: np.ndarray  # int, indexes models
    question: np.ndarray
    category: np.ndarray
    score: np.ndarray  # NaN where the verdict did not parse


def reference_modes(store: VerdictStore) -> list[bool]:
    """The reference modes the run judged, without the reference first."""
    return sorted({bool(x) for x in np.unique(store.units("with_reference"))})


def done_units(store: VerdictStore, with_reference: bool) -> Units:
    keep = store.done() & (store.units("with_reference") == with_reference)
    pref = store.verdicts(PREFERENCE)[keep] if PREFERENCE in store.extras else None
    return Units(store.units("record")[keep], store.units("order")[keep], store.verdicts("scores")[keep], pref)


def _codes(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    names, code = np.unique(values, return_inverse=True)
    return [str(n) for n in names], code.ravel()


def comparisons(store: VerdictStore, with_reference: bool = False, skip_unparsed: bool = False) -> Comparisons:
    """One comparison per record that has at least one judged unit in this reference mode. ``skip_unparsed``
    leaves out units without a verdict instead of counting them as ties (Arena-Hard-Auto's rule)."""
    u = done_units(store, with_reference)
    if skip_unparsed:
        keep = np.isfinite(u.scores).all(axis=1)
        u = Units(u.record[keep], u.order[keep], u.scores[keep], None if u.preference is None else u.preference[keep])
    slot2 = (1 - win_array(u.scores).astype(float)) / 2
    if u.preference is not None:
        slot2 = np.where(np.isnan(u.preference), slot2, u.preference)
    pref_b = np.where(u.order == 1, 1 - slot2, slot2)
    n = store.n_records
    count = np.bincount(u.record, minlength=n)
    mean = np.bincount(u.record, pref_b, minlength=n) / np.maximum(count, 1)
    lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(lo, u.record, pref_b)
    np.maximum.at(hi, u.record, pref_b)
    rec = np.flatnonzero(count)
    models = store.record_models()[:, :2]
    names, code = _codes(models[rec].ravel())
    code = code.reshape(-1, 2)
    chars = store.records("answer_chars")[:, :2][rec]
    _, question = _codes(store.records("question_id")[rec])
    consistent = np.where(count[rec] == 2, (lo[rec] == hi[rec]).astype(float), np.nan)
    return Comparisons(models=names, question=question, a=code[:, 0], b=code[:, 1], pref_b=mean[rec],
                       len_a=chars[:, 0], len_b=chars[:, 1], category=store.records("category")[rec],
                       consistent=consistent, record=rec)


@dataclass(frozen=True)
class Games:
    """Arena-Hard-style games per record of a pairwise evaluation: the model in slot 2 (``model``) against the one
    in slot 1 (``opponent``, the baseline), game 1 judged in the given order, game 2 swapped."""

    models: list[str]
    record: np.ndarray
    model: np.ndarray
    opponent: np.ndarray
    question: np.ndarray
    games: np.ndarray  # (n, 2) the model's outcome per game: 1, 1/2, 0; NaN unparsed or not judged
    strong: np.ndarray  # (n, 2) bool: the verdict was a significant one (store score difference 2)


def arena_games(store: VerdictStore, with_reference: bool = False, strong_margin: float = 2.0) -> Games:
    """Every record with a done unit in this reference mode, with its two games (``judgelm.scoring.arena_hard``).
    A unit's scores are the judge's in the order it saw the answers; a difference of ``strong_margin`` is a
    significant verdict (``judgelm.profiles.arena_hard``), a parse failure (NaN scores) an unparsed game."""
    keep = store.done() & (store.units("with_reference") == with_reference)
    record, order, scores = store.units("record")[keep], store.units("order")[keep], store.verdicts("scores")[keep]
    diff = scores[:, 1] - scores[:, 0]  # slot 2 of the unit minus slot 1
    mine = np.where(order == 0, diff, -diff)  # the record's slot-2 model, whichever slot it had in the unit
    outcome = np.where(np.isnan(mine), np.nan, (np.sign(mine) + 1) / 2)
    rec = np.unique(record)
    pos = np.searchsorted(rec, record)
    games = np.full((len(rec), 2), np.nan)
    strong = np.zeros((len(rec), 2), dtype=bool)
    games[pos, order] = outcome
    strong[pos, order] = np.abs(mine) >= strong_margin
    models = store.record_models()[:, :2]
    names, code = _codes(models[rec].ravel())
    code = code.reshape(-1, 2)
    _, question = _codes(store.records("question_id")[rec])
    return Games(names, rec, code[:, 1], code[:, 0], question, games, strong)


def single_scores(store: VerdictStore) -> Scores:
    """The score of every judged single-answer unit (slot 2's generator is the model graded)."""
    u = done_units(store, False)
    names, code = _codes(store.record_models()[:, 1][u.record])
    _, question = _codes(store.records("question_id")[u.record])
    return Scores(models=names, model=code, question=question,
                  category=store.records("category")[u.record], score=u.scores[:, 0].astype(float))
