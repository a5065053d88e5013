import numpy as np

from judgelm.data.records import Record
from judgelm.judging.units import SPREAD_GROUP, plan_units, spread_permutation


def spread_records(records: list[Record]) -> list[Record]:
    return [records[i] for i in spread_permutation(records)]


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


def test_records_of_one_question_move_together_in_groups_and_the_groups_are_spread():
    """Every model's answer to a question shares the question's prompt prefix, which the engine computes once per
    call: spread one by one they would land in different chunks."""
    models = 6
    records = [Record(question_id=f"{q}-{m}", question=f"question {q}", answers=("baseline", f"model {m}"))
               for m in range(models) for q in range(100)]  # model by model, as evaluation answers come
    spread = spread_records(records)
    questions = [r.question for r in spread]
    runs = [questions[i:i + models] for i in range(0, len(questions), models)]
    assert all(len(set(run)) == 1 for run in runs) and len({run[0] for run in runs}) == 100
    assert [int(q.split()[1]) for q in questions[::models]] != list(range(100))
    many = spread_records(_records(3 * SPREAD_GROUP))  # one question: groups of SPREAD_GROUP, spread
    ids = [r.question_id for r in many]
    assert sorted(ids) == list(range(3 * SPREAD_GROUP)) != ids
    assert all(np.diff(ids[i:i + SPREAD_GROUP]).min() > 0 for i in range(0, len(ids), SPREAD_GROUP))
