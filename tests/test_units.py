import numpy as np

from judgelm.data.records import Record
from judgelm.judging.units import plan_units, spread_records


def _records(n: int, ref_every: int = 3) -> list[Record]:
    return [Record(question_id=i, question="q", answers=("a", "b"), reference="r" if i % ref_every == 0 else None)
            for i in range(n)]


def test_spread_keeps_every_record_and_the_units_of_each_together_in_record_order():
    records = _records(50)
    spread = spread_records(records)
    assert sorted(r.question_id for r in spread) == list(range(50))
    assert [r.question_id for r in spread] != list(range(50))
    plan = plan_units(spread)
    assert (np.diff(plan.record) >= 0).all()  # a chunk of units reads one run of records


def test_every_shard_slice_samples_each_part_of_a_concatenated_data_set():
    """A data set of two parts (say short then long prompts): in record order shard 0 would get only the first."""
    n, shards = 3000, 16
    records = spread_records(_records(n))
    plan = plan_units(records)
    original = np.array([r.question_id for r in records])[plan.record]
    for s in range(shards):
        sl = slice(s * len(plan) // shards, (s + 1) * len(plan) // shards)
        first_part = np.mean(original[sl] < n // 2)
        assert 0.45 <= first_part <= 0.55, (s, first_part)
