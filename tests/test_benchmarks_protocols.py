"""Each benchmark's own scoring protocol on hand-computed cases, directly and through the merge of a mixed store."""

import numpy as np
import pytest

from judgelm.data.benchmarks import load_dataset
from judgelm.judging.store import ChunkVerdicts, VerdictStore
from judgelm.judging.units import plan_units
from judgelm.results.merge import compute_metrics, leaderboard_rows
from judgelm.scoring.protocols import (
    Graded,
    Pairs,
    correlation_protocol,
    judgebench_protocol,
    llmbar_protocol,
    rewardbench_protocol,
)


def pairs(gt, seq, rev_original_frame, subsets, categories=None):
    """``rev`` is stored as the judge wrote it (swapped frame), i.e. minus the verdict in the original frame."""
    n = len(gt)
    return Pairs(gt=np.array(gt), seq=np.array(seq), rev=-np.array(rev_original_frame),
                 subset=np.array(subsets, dtype=object), category=np.array(categories or [""] * n, dtype=object))


def row(result, subset):
    return next(r for r in result["rows"] if r["subset"] == subset)


def test_llmbar_averages_the_two_orders_and_the_adversarial_subsets():
    p = pairs(gt=[1, 1, -1, -1, 1, 1, 1], seq=[1, 0, -1, 1, 1, -1, -1], rev_original_frame=[1, 1, -1, 1, 1, -1, 1],
              subsets=["llmbar/Natural"] * 4 + ["llmbar/Adversarial/Manual"] + ["llmbar/Adversarial/GPTOut"] * 2)
    r = llmbar_protocol("llmbar", p, n_boot=50)
    # Natural: original order correct [1, 0, 1, 0] = 1/2, swapped [1, 1, 1, 0] = 3/4 -> 5/8
    assert row(r, "Natural")["score"] == pytest.approx(5 / 8)
    assert r["details"]["Natural"]["correct_both"] == pytest.approx(2 / 4)
    assert r["details"]["Natural"]["positional_agreement"] == pytest.approx(3 / 4)
    # Adversarial: Manual 1.0, GPTOut (0 + 0.5) / 2 = 0.25 -> mean of subsets 0.625, not the pooled 0.5
    assert row(r, "Adversarial/GPTOut")["score"] == pytest.approx(0.25)
    assert row(r, "Adversarial (mean of subsets)")["score"] == pytest.approx(0.625)
    lo, hi = row(r, "Natural")["ci95"]
    assert lo <= 5 / 8 <= hi


def test_judgebench_counts_a_pair_correct_only_when_its_two_verdicts_favour_the_truth():
    # (original, swapped) verdicts in the original frame, truth always answer 1:
    # (1,1) right, (1,0) right, (1,-1) inconsistent -> wrong, (0,0) wrong, (-1,0) wrong, (0,1) right
    p = pairs(gt=[1] * 6, seq=[1, 1, 1, 0, -1, 0], rev_original_frame=[1, 0, -1, 0, 0, 1],
              subsets=["judgebench/gpt-4o"] * 3 + ["judgebench/claude-3.5-sonnet"] * 3,
              categories=["math", "coding", "math", "math", "coding", "coding"])
    r = judgebench_protocol("judgebench", p, n_boot=50)
    assert row(r, "all")["score"] == pytest.approx(3 / 6)
    assert (row(r, "gpt-4o")["score"] == pytest.approx(2 / 3)
            and row(r, "claude-3.5-sonnet")["score"] == pytest.approx(1 / 3))
    assert r["details"]["all"]["by_category"] == {"coding": pytest.approx(2 / 3), "math": pytest.approx(1 / 3)}
    assert r["details"]["all"]["inconsistent"] == pytest.approx(4 / 6)


def test_rewardbench_scores_ties_as_half_and_weights_subsets_officially():
    p = pairs(gt=[1, -1, 1, -1, 1], seq=[1, -1, -1, 0, 0], rev_original_frame=[1, -1, -1, 0, 0],
              subsets=["rewardbench/math-prm"] * 2 + ["rewardbench/hep-go"] + ["rewardbench/alpacaeval-easy"] * 2)
    r = rewardbench_protocol("rewardbench", p, n_boot=50)
    assert r["details"] == {"math-prm": 1.0, "hep-go": 0.0, "alpacaeval-easy": 0.5}
    reasoning = 984 / (984 + 164)  # math-prm carries the weight of the six code subsets together
    assert row(r, "Reasoning")["score"] == pytest.approx(reasoning)
    assert row(r, "Chat")["score"] == pytest.approx(0.5)
    assert row(r, "score (mean of sections)")["score"] == pytest.approx((reasoning + 0.5) / 2)


def test_correlation_protocol_per_set_ignores_parse_failures():
    gt = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 2.0, 4.0, 3.0])
    score = np.array([2.0, 4.0, 6.0, np.nan, 10.0, 1.0, 1.0, 1.0])
    g = Graded(score=score, gt=gt,
               subset=np.array(["prometheus/mt_bench"] * 5 + ["prometheus/vicuna"] * 3, dtype=object),
               category=np.array([""] * 8, dtype=object))
    r = correlation_protocol("prometheus", g, n_boot=50)
    assert row(r, "mt_bench")["score"] == pytest.approx(1.0)  # linear where parsed
    assert r["details"]["mt_bench"]["parsed"] == 4 and r["details"]["mt_bench"]["graded"] == 5
    assert np.isnan(row(r, "vicuna")["score"])  # a constant judge: no correlation


def store_with_verdicts(tmp_path, spec, mode, scores_of_unit):
    recs = load_dataset(spec).records
    plan = plan_units(recs, mode, "without", "both")
    n = len(plan)
    store = VerdictStore.create(tmp_path / "s.zarr", recs, plan, 2 if mode == "pair" else 1, chunk_units=n,
                                attrs={"n_shards": 1, "mode": mode})
    scores = np.array([scores_of_unit(recs[r], o) for r, o in zip(plan.record, plan.order)], dtype=np.float32)
    store.write_chunk(0, ChunkVerdicts(scores=scores, status=np.zeros(n, np.int8), text=["x"] * n,
                                       prompt_tokens=np.zeros(n), new_tokens=np.zeros(n), truncated=np.zeros(n, bool)),
                      attempt=0)
    return VerdictStore(tmp_path / "s.zarr")


def test_merge_scores_every_benchmark_of_a_mixed_store_with_its_protocol(tmp_path):
    # A judge that always prefers whatever it sees first: right in exactly one order of every unlabelled-tie pair.
    store = store_with_verdicts(tmp_path, "pandalm@4+llmbar@1+mtbench_human@2+judgebench@1+rewardbench@1", "pair",
                                lambda rec, order: (8.0, 2.0))
    m = compute_metrics(store)
    rows = {(r["benchmark"], r["subset"]): r for r in leaderboard_rows(m)}
    pandalm_truth = [r.label for r in load_dataset("pandalm@4").records]
    assert rows["pandalm", "all"]["score"] == pytest.approx(np.mean(np.array(pandalm_truth) == 1))
    for key in [("llmbar", "Natural"), ("llmbar", "Adversarial (mean of subsets)"), ("mtbench_human", "all")]:
        assert rows[key]["score"] == pytest.approx(0.5)  # one order right, one wrong, for every pair
    assert rows["judgebench", "all"]["score"] == 0.0  # inconsistent pairs are wrong
    assert rows["rewardbench", "score (mean of sections)"]["score"] == pytest.approx(0.5)
    assert all(r["consistency"] == 0.0 and r["parse_failure_rate"] == 0.0 for r in rows.values())
    swap = m["benchmarks"]["without_reference"]["llmbar"]["swap"]
    assert swap["prefer_before_rate"] == 1.0  # every change went to the first slot
    group = m["groups"]["without_reference"]
    assert group["flip_to_first_share"] == 1.0 and group["first_slot_both"] == group["total_num"]
    assert set(group["by_subset"]) >= {"pandalm", "llmbar/Natural", "rewardbench/hep-go"}


def test_merge_correlates_single_answer_grades_with_the_ground_truth(tmp_path):
    store = store_with_verdicts(tmp_path, "prometheus@6", "single", lambda rec, order: (2 * rec.gt_scores[0] + 1,))
    m = compute_metrics(store)
    assert m["groups"]["all"]["pearson"] == pytest.approx(1.0)
    rows = {r["subset"]: r for r in leaderboard_rows(m)}
    assert set(rows) == {"all", "mt_bench", "vicuna"} and rows["all"]["n"] == 12
    assert rows["mt_bench"]["score"] == pytest.approx(1.0) and rows["all"]["metric"] == "pearson r"
