"""From a model evaluation's verdict store to the comparisons and scores the leaderboard is computed from.

A unit's verdict is turned into the judge's preference for the answer in slot 2 *of the record* (the swap of
order-1 units undone): 1 when that answer won, 0 when it lost, 1/2 for a tie or a parse failure, or the judge's
own probability where the store has one (``verdicts/preference``, written by imports of AlpacaEval's weighted
annotator). A comparison's preference is the mean over its judged orders. A comparison is one record, or, for a
multi-turn record, one turn of it: each turn is a comparison of its own, as MT-Bench counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from judgelm.data.verdicts import win_array
from judgelm.judging.store import PREFERENCE, VerdictStore
from judgelm.scoring.ratings import Comparisons


@dataclass(frozen=True)
class Units:
    """The done units of one reference mode, with their record's fields."""

    record: np.ndarray
    order: np.ndarray
    turn: np.ndarray
    scores: np.ndarray
    preference: np.ndarray | None

    def subset(self, keep: np.ndarray) -> Units:
        return replace(self, record=self.record[keep], order=self.order[keep], turn=self.turn[keep],
                       scores=self.scores[keep], preference=None if self.preference is None else self.preference[keep])


@dataclass(frozen=True)
class Scores:
    """Single-answer grading: the judge's score of each record's tested answer (slot 2)."""

    models: list[str]
    model: np.ndarray  # int, indexes models
    question: np.ndarray
    category: np.ndarray
    score: np.ndarray  # NaN where the verdict did not parse
    turn: np.ndarray  # the turn graded (0: the first)

    def subset(self, keep: np.ndarray) -> Scores:
        return replace(self, model=self.model[keep], question=self.question[keep], category=self.category[keep],
                       score=self.score[keep], turn=self.turn[keep])


def reference_modes(store: VerdictStore) -> list[bool | None]:
    """The reference modes to report, without the reference first; ``[None]`` (both, in one table) when both occur
    but no comparison was judged in both: ``prompt.reference=with`` on data where only some questions have a
    reference, FastChat's MT-Bench protocol (math, reasoning and coding with the reference, the rest without)."""
    w = store.units("with_reference")
    modes = sorted({bool(x) for x in np.unique(w)})
    if len(modes) < 2:
        return modes
    key = store.units("record").astype(np.int64) * store.n_turns + store.units("turn")
    return [False, True] if np.intersect1d(key[w], key[~w]).size else [None]


def done_units(store: VerdictStore, with_reference: bool | None, turn: int | None = None) -> Units:
    """The done units of one reference mode (``None``: both) and of one turn (``None``: every turn)."""
    keep = store.done()
    if with_reference is not None:
        keep &= store.units("with_reference") == with_reference
    if turn is not None:
        keep &= store.units("turn") == turn
    pref = store.verdicts(PREFERENCE)[keep] if PREFERENCE in store.extras else None
    return Units(store.units("record")[keep], store.units("order")[keep], store.units("turn")[keep],
                 store.verdicts("scores")[keep], pref)


def _codes(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    names, code = np.unique(values, return_inverse=True)
    return [str(n) for n in names], code.ravel()


def _question_codes(store: VerdictStore, record: np.ndarray, turn: np.ndarray) -> np.ndarray:
    """An integer per (question, turn): a later turn of a conversation is a question of its own."""
    _, question = _codes(store.records("question_id")[record])
    return np.unique(question.astype(np.int64) * store.n_turns + turn, return_inverse=True)[1].ravel()


def comparisons(store: VerdictStore, with_reference: bool | None = False, turn: int | None = None,
                skip_unparsed: bool = False) -> Comparisons:
    """One comparison per record and turn that has at least one judged unit in this reference mode (``None``:
    either) and turn (``None``: every turn). ``skip_unparsed`` leaves out units without a verdict instead of
    counting them as ties (Arena-Hard-Auto's rule)."""
    u = done_units(store, with_reference, turn)
    if skip_unparsed:
        u = u.subset(np.isfinite(u.scores).all(axis=1))
    slot2 = (1 - win_array(u.scores).astype(float)) / 2
    if u.preference is not None:
        slot2 = np.where(np.isnan(u.preference), slot2, u.preference)
    pref_b = np.where(u.order == 1, 1 - slot2, slot2)
    n = store.n_records * store.n_turns
    pair = u.record.astype(np.int64) * store.n_turns + u.turn
    count = np.bincount(pair, minlength=n)
    mean = np.bincount(pair, pref_b, minlength=n) / np.maximum(count, 1)
    lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(lo, pair, pref_b)
    np.maximum.at(hi, pair, pref_b)
    judged = np.flatnonzero(count)
    rec, rec_turn = judged // store.n_turns, judged % store.n_turns
    models = store.record_models()[:, :2]
    names, code = _codes(models[rec].ravel())
    code = code.reshape(-1, 2)
    chars = store.answer_chars_by_turn()[rec, rec_turn, :2]
    consistent = np.where(count[judged] == 2, (lo[judged] == hi[judged]).astype(float), np.nan)
    return Comparisons(models=names, question=_question_codes(store, rec, rec_turn), a=code[:, 0], b=code[:, 1],
                       pref_b=mean[judged], len_a=chars[:, 0], len_b=chars[:, 1],
                       category=store.records("category")[rec], consistent=consistent, record=rec, turn=rec_turn)


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


def arena_games(store: VerdictStore, with_reference: bool | None = False, strong_margin: float = 2.0) -> Games:
    """Every record with a done unit in this reference mode, with its two games (``judgelm.scoring.arena_hard``).
    A unit's scores are the judge's in the order it saw the answers; a difference of ``strong_margin`` is a
    significant verdict (``judgelm.profiles.arena_hard``), a parse failure (NaN scores) an unparsed game. Arena-Hard's
    judge has no multi-turn form (its profile refuses conversations), so a record is one question."""
    u = done_units(store, with_reference)
    diff = u.scores[:, 1] - u.scores[:, 0]  # slot 2 of the unit minus slot 1
    mine = np.where(u.order == 0, diff, -diff)  # the record's slot-2 model, whichever slot it had in the unit
    outcome = np.where(np.isnan(mine), np.nan, (np.sign(mine) + 1) / 2)
    rec = np.unique(u.record)
    pos = np.searchsorted(rec, u.record)
    games = np.full((len(rec), 2), np.nan)
    strong = np.zeros((len(rec), 2), dtype=bool)
    games[pos, u.order] = outcome
    strong[pos, u.order] = np.abs(mine) >= strong_margin
    models = store.record_models()[:, :2]
    names, code = _codes(models[rec].ravel())
    code = code.reshape(-1, 2)
    _, question = _codes(store.records("question_id")[rec])
    return Games(names, rec, code[:, 1], code[:, 0], question, games, strong)


def single_scores(store: VerdictStore, with_reference: bool | None = False) -> Scores:
    """The score of every judged single-answer unit of one reference mode (``None``: either); slot 2's generator
    is the model graded."""
    u = done_units(store, with_reference)
    names, code = _codes(store.record_models()[:, 1][u.record])
    return Scores(models=names, model=code, question=_question_codes(store, u.record, u.turn),
                  category=store.records("category")[u.record], score=u.scores[:, 0].astype(float), turn=u.turn)
