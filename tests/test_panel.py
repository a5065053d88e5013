"""Panels of judges in one store: a model judged by shards, imported verdicts, ground-truth labels as a judge."""

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from judgelm.data.records import Record
from judgelm.judging.external import GenericFields, read_verdicts
from judgelm.judging.panel import add_model_judge, import_judge, label_judge
from judgelm.judging.shard import run_shard
from judgelm.judging.store import ChunkVerdicts, VerdictStore
from judgelm.judging.units import plan_units
from judgelm.results.merge import merge_run
from judgelm.rundir import RunDir
from launch import panel as launch_panel
from tests.conftest import write_pairs
from tests.test_judge_run import new_run

LABELS = [1, -1, 0, 1]
# The model's scores per unit, record by record, original order then swapped: labels 1 -1 | 1 -1 | 0 1 | 1 -1
MODEL = np.array([[8, 3], [3, 8], [7, 2], [2, 7], [5, 5], [6, 5], [9, 1], [1, 9]], dtype=np.float32)


def model_run(tmp_path):
    recs = [Record(question_id=f"r{i}", question=f"q{i}", answers=("a", "b"), label=lab)
            for i, lab in enumerate(LABELS)]
    plan = plan_units(recs, "pair", "without", "both")
    assert plan.record.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and plan.order.tolist() == [0, 1] * 4
    store = VerdictStore.create(tmp_path / "verdicts.zarr", recs, plan, 2, chunk_units=3,
                                attrs={"n_shards": 1, "mode": "pair", "model": "/models/tiny-judge"})
    for c in range(store.n_chunks):
        sl = store.chunk_slice(c)
        n = sl.stop - sl.start
        store.write_chunk(c, ChunkVerdicts(scores=MODEL[sl], status=np.zeros(n, np.int8), text=["x"] * n,
                                           prompt_tokens=np.zeros(n), new_tokens=np.zeros(n),
                                           truncated=np.zeros(n, bool)), attempt=0)
    return store


def test_the_labels_as_a_judge_agree_fully_and_give_the_hand_computed_kappa(tmp_path):
    store = model_run(tmp_path)
    assert label_judge(store, "human") == 8
    panel = merge_run(tmp_path)["panel"]
    assert panel["units"] == 8
    human, model = panel["judges"]["human"], panel["judges"]["run:tiny-judge"]
    assert human["agreement"] == 1.0 and human["kappa"] == 1.0 and human["consistency"] == 1.0
    assert model["agreement"] == 0.75
    assert model["kappa"] == pytest.approx(cohen_kappa_score(LABELS, [1, 1, 0, 1]))
    # the two raters agree on 5 of 8 units; the 16 labels are 7 × 1, 3 × 0, 6 × -1: Pe = 94 / 256,
    # κ = (5/8 − 94/256) / (1 − 94/256) = 11/27; α = 1 − (16 − 1) · 6 / (256 − 94) = 4/9 (6 ordered pairs
    # disagree)
    agreement = panel["agreement"]
    assert agreement["fleiss_kappa"] == pytest.approx(11 / 27)
    assert agreement["krippendorff_alpha_nominal"] == pytest.approx(4 / 9)
    assert agreement["pairwise_agreement"] == {"run:tiny-judge | human": 5 / 8}


def test_an_imported_judge_is_compared_on_the_units_it_judged(tmp_path):
    store = model_run(tmp_path)
    verdicts = tmp_path / "gpt.jsonl"
    verdicts.write_text("".join(json.dumps({"id": f"{i}", "s1": s1, "s2": s2}) + "\n"
                                for i, s1, s2 in [(0, 9, 2), (1, 1, 8), (2, 4, 4), (4, 5, 1)]))
    original = read_verdicts(verdicts, "generic", GenericFields(scores=("s1", "s2")))
    assert import_judge(store, "gpt", original, attrs={"model": "gpt"}, id_prefix="r") == (3, 1)
    label_judge(store, "human")
    panel = merge_run(tmp_path)["panel"]
    # record "4" is not in the run; records 0-2 in the original order are the only units every judge judged
    assert panel["units"] == 3
    assert panel["judges"]["gpt"]["agreement"] == 1.0 and panel["judges"]["run:tiny-judge"]["agreement"] == 2 / 3
    assert panel["panel:majority"]["agreement"] == 1.0  # gpt and the labels outvote the model on record 1
    assert set(store.judges()) == {"gpt", "human"}
    with pytest.raises(ValueError, match="already has a judge 'gpt'"):
        label_judge(store, "gpt")


def test_a_second_model_fills_its_own_arrays_through_its_own_shards(tmp_path, random_judge):
    data = write_pairs(tmp_path / "pairs.jsonl", 6)
    rd = new_run(tmp_path, random_judge, data, "panel", "shards=2", "store.chunk_units=3")
    for k in range(2):
        run_shard(rd.root, k, 2, threads=1)
    store = VerdictStore(rd.store, mode="r+")
    second = add_model_judge(store, "second", str(random_judge))
    assert not second.done().any()
    run_shard(rd.root, 0, 2, threads=1, judge="second")
    assert second.done().sum() == store.shard_units(0, 2) and store.done().all()  # the run's own arrays untouched
    run_shard(rd.root, 1, 2, threads=1, judge="second")
    np.testing.assert_array_equal(second.verdicts("text"), store.verdicts("text"))  # same model, same greedy text
    assert (RunDir(rd.root).progress / "second" / "shard-0001.json").exists()
    panel = merge_run(rd.root)["panel"]
    assert panel["units"] == 12 and panel["agreement"]["pairwise_agreement"] == {"run:random-judge | second": 1.0}
    label_judge(store, "human")
    with pytest.raises(ValueError, match="imported verdicts: there is nothing to judge"):
        run_shard(rd.root, 0, 2, judge="human")


def test_make_panel_adds_a_model_and_the_labels_then_merges(tmp_path, random_judge, capsys):
    data = write_pairs(tmp_path / "pairs.jsonl", 4)
    rd = new_run(tmp_path, random_judge, data, "p", "shards=2", "store.chunk_units=2")
    for k in range(2):
        run_shard(rd.root, k, 2, threads=1)
    assert launch_panel.main([f"run={rd.root}", "judge=twin", f"model={random_judge}", "cluster.executor=debug"]) == 0
    assert launch_panel.main([f"run={rd.root}", "judge=human", "labels=true"]) == 0
    out = capsys.readouterr().out
    assert "judge human: 8 units labelled" in out and "Panel of 3 judges on the 8 units" in out
    assert "| twin |" in out and "| human | 100.00 |" in out
    assert json.loads((rd.root / "jobs.jsonl").read_text().splitlines()[-1])["judge"] == "twin"
    assert launch_panel.main([f"run={rd.root}", "judge=human", "labels=true"]) == 2
    assert launch_panel.main([f"run={rd.root}", "labels=true", f"model={random_judge}"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {rd.store} already has a judge 'human'; choose another name",
                   "error: give judge=NAME and exactly one of model=DIR, verdicts=FILE or labels=true"]
