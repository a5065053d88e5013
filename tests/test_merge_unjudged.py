"""A unit that was never judged (its prompt was too long) is not a tie: its pair is dropped and counted."""

import numpy as np
import pytest

from judgelm.data.records import Record
from judgelm.data.verdicts import Status
from judgelm.judging.store import ChunkVerdicts, VerdictStore
from judgelm.judging.units import plan_units
from judgelm.results.merge import compute_metrics
from judgelm.results.tables import format_table


def test_pairs_with_an_unjudged_unit_are_dropped_not_scored_as_ties(tmp_path):
    # four pairs, answer 1 better in truth; the judge agrees everywhere it judged
    recs = [Record(question_id=i, question="q", answers=("a", "b"), label=1) for i in range(4)]
    plan = plan_units(recs)  # (r0, o0), (r0, o1), (r1, o0), ...
    n = len(plan)
    scores = np.array([[8, 2] if o == 0 else [2, 8] for o in plan.order], dtype=np.float32)
    status = np.zeros(n, np.int8)
    # record 1: the swapped unit's prompt was too long; record 2: both
    for u in np.flatnonzero(((plan.record == 1) & (plan.order == 1)) | (plan.record == 2)):
        scores[u], status[u] = np.nan, Status.PROMPT_TOO_LONG
    store = VerdictStore.create(tmp_path / "s.zarr", recs, plan, 2, chunk_units=n, attrs={"n_shards": 1})
    store.write_chunk(0, ChunkVerdicts(scores=scores, status=status, text=[""] * n, prompt_tokens=np.zeros(n),
                                       new_tokens=np.zeros(n), truncated=np.zeros(n, bool)), attempt=0)
    m = compute_metrics(VerdictStore(tmp_path / "s.zarr"))
    g = m["groups"]["without_reference"]
    assert g["total_num"] == 2 and g["pairs_dropped_unjudged"] == 2  # records 0 and 3 scored, 1 and 2 dropped
    assert g["agreement"] == pytest.approx(1.0) and g["consistency"] == pytest.approx(1.0)
    assert g["prompt_too_long"] == 3 and g["parse_failure_rate"] == 0.0
    assert m["benchmarks"]["without_reference"]
    assert "| Pairs dropped (a unit not judged) | 2 |" in format_table(m)
