"""Which judgements a run makes: one unit per (record, turn, reference mode, answer order).

JudgeLM's protocol judges every pair in both orders (for swap consistency) and, where a reference exists, both
without and with it (reported separately). A multi-turn record is judged once per turn, as MT-Bench does: turn
``t``'s unit shows the conversation up to that turn and is judged on its last reply. Units of one record are
adjacent, so they usually share a chunk, and both orders of a pair, having the same prompt length, usually share a
batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from judgelm.data.records import Record
from judgelm.profiles.prompts import Mode

REFERENCE_POLICIES = ("both", "without", "with")
ORDER_POLICIES = ("both", "original")


@dataclass(frozen=True)
class UnitPlan:
    """Parallel arrays, one entry per unit."""

    record: np.ndarray  # int32 index into the run's records
    order: np.ndarray  # int8: 0 = answers as given, 1 = answers 1 and 2 swapped
    with_reference: np.ndarray  # bool: the prompt includes the record's reference answer
    turn: np.ndarray  # int8: the turn judged, 0 = the first (the only one of a single-turn record)

    def __len__(self) -> int:
        return len(self.record)


def check_answer_counts(records: list[Record], mode: Mode) -> None:
    """Refuse, before anything is submitted, records the mode cannot judge.

    Pairwise and single-answer prompts hold exactly two answers; an N-answer run asks every prompt for the same N
    scores, so its records must all have the same number of answers.
    """
    want = 2 if mode is not Mode.MULTI else (len(records[0].answers) if records else 2)
    for r in records:
        if len(r.answers) != want:
            rule = "exactly 2 answers" if mode is not Mode.MULTI else f"the same number of answers ({want})"
            raise ValueError(f"record {r.question_id!r} has {len(r.answers)} answers; "
                             f"{mode.value} grading needs {rule}")


def plan_units(records: list[Record], mode: Mode | str = Mode.PAIR, reference: str = "both",
               orders: str = "both") -> UnitPlan:
    """Lay out the units for ``records``.

    ``reference``: ``both`` judges without the reference and, where a record has one, with it too; ``without``
    never shows it; ``with`` shows it where there is one. ``orders``: ``both`` adds the swapped order, which only
    pairwise judging has (single-answer grading always puts the gold answer in slot 1).
    """
    mode = Mode(mode)
    check_answer_counts(records, mode)
    if reference not in REFERENCE_POLICIES:
        raise ValueError(f"reference must be one of {REFERENCE_POLICIES}, got {reference!r}")
    if orders not in ORDER_POLICIES:
        raise ValueError(f"orders must be one of {ORDER_POLICIES}, got {orders!r}")
    order_values = (0, 1) if orders == "both" and mode is Mode.PAIR else (0,)
    rec, order, ref, turn = [], [], [], []
    for i, r in enumerate(records):
        has_ref = r.reference is not None
        ref_modes = {"both": (False, True) if has_ref else (False,), "without": (False,), "with": (has_ref,)}[reference]
        for t in range(r.n_turns):
            for w in ref_modes:
                for o in order_values:
                    rec.append(i)
                    order.append(o)
                    ref.append(w)
                    turn.append(t)
    return UnitPlan(np.asarray(rec, dtype=np.int32), np.asarray(order, dtype=np.int8), np.asarray(ref, dtype=bool),
                    np.asarray(turn, dtype=np.int8))


_GOLDEN = (5 ** 0.5 - 1) / 2


def spread_order(group: np.ndarray) -> np.ndarray:
    """The permutation that spreads ``group`` (a group of records or a question index per unit) as
    ``spread_permutation`` does: groups ordered by ``frac(g × golden ratio)``, each group's units adjacent and in
    their order."""
    return np.argsort((group.astype(np.float64) * _GOLDEN) % 1.0, kind="stable")


SPREAD_GROUP = 8
"""Most records of one question kept together by ``spread_permutation`` (a data set of few questions is still
spread; a model evaluation's models per question usually fit)."""


def spread_permutation(records: list[Record]) -> np.ndarray:
    """The file index of each record, in the order that spreads them: any contiguous run of records (and so of
    their units) samples all of them.

    Shards own contiguous runs of chunks, and data sets are often concatenations of parts with very different
    prompt lengths (a benchmark suite, a file sorted by source): in the file's order one shard would get the longest
    part and finish last, holding up the merge. Groups of records are ordered by ``frac(g × golden ratio)``, whose
    every stretch is spread almost evenly over ``0..n`` (the three-distance theorem), so each shard gets its share
    of every part. Records of one question (every model's answer to it in a model evaluation) form a group, up to
    ``SPREAD_GROUP`` in file order: their prompts share the question, and the engine computes a shared prefix once
    per call, so a chunk must hold them together (the default ``make evaluate``'s four chunks could share 180k
    prompt positions with its records spread one by one, 403k in this order, as many as one call over all). The
    store keeps the records in this order, so a chunk's units read one short run of records (a record is found by
    its ``question_id``, never by its place in the file).
    """
    seen: dict[str, int] = {}
    groups: dict[tuple[str, int], int] = {}
    group = np.empty(len(records), dtype=np.int64)
    for i, r in enumerate(records):
        k = seen[r.question] = seen.get(r.question, -1) + 1
        group[i] = groups.setdefault((r.question, k // SPREAD_GROUP), len(groups))
    return spread_order(group)
