import numpy as np

from judgelm.data.records import Record
from judgelm.judging.units import plan_units, spread_records


def _records(n: int, ref_every: int = 3) -> list[Record]:
    return [Record(question_id=i, question="q", answers=("a", "b"), reference="r" if i % ref_every == 0 else None)
            for i in range(n)]


def test_spread_keeps_every_unit_and_each_record_together_in_order():
    plan = plan_units(_records(50))
    spread = spread_records(plan)
    before = sorted(zip(plan.record.tolist(), plan.order.tolist(), plan.with_reference.tolist()))
    after = sorted(zip(spread.record.tolist(), spread.order.tolist(), spread.with_reference.tolist()))
    assert before == after and len(spread) == len(plan)
    starts = np.flatnonzero(np.r_[True, spread.record[1:] != spread.record[:-1]])
    assert len(starts) == 50  # each record's units form one run
    for s, e in zip(starts, list(starts[1:]) + [len(spread)]):
        r = spread.record[s]
        mine = np.flatnonzero(plan.record == r)
        assert spread.order[s:e].tolist() == plan.order[mine].tolist()
        assert spread.with_reference[s:e].tolist() == plan.with_reference[mine].tolist()
    assert spread.record.tolist() != sorted(spread.record.tolist())


def test_every_shard_slice_samples_each_part_of_a_concatenated_data_set():
    """A data set of two parts (say short then long prompts): in record order shard 0 would get only the first."""
    n, shards = 3000, 16
    spread = spread_records(plan_units(_records(n)))
    for s in range(shards):
        sl = slice(s * len(spread) // shards, (s + 1) * len(spread) // shards)
        first_part = np.mean(spread.record[sl] < n // 2)
        assert 0.45 <= first_part <= 0.55, (s, first_part)
