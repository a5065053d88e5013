"""A model evaluation through the local Slurm cluster gives the leaderboard the local executor gives."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from launch import evaluate
from tests.test_evaluate_run import answers_file

if TYPE_CHECKING:
    from tests.slurm_cluster import SlurmCluster

pytest_plugins = ["tests.slurm_cluster"]
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]


def evaluate_on(cluster: list[str], tmp_path, judge, answers, name: str) -> dict:
    # Separate runs directories: the second run must judge on Slurm, not read the first run's verdict cache.
    runs = tmp_path / name
    assert evaluate.main([f"model.path={judge}", f"runs_dir={runs}", f"run={name}", "shards=2", *cluster,
                          f"evaluate.answers=[generic:{answers}]", "evaluate.baseline=base", "evaluate.limit=0",
                          "evaluate.reference_verdicts=''", "store.chunk_units=4"]) == 0
    m = json.loads((runs / name / "metrics.json").read_text())
    assert m["units_from_cache"] == 0
    return json.loads((runs / name / "leaderboard.json").read_text())["boards"]


def test_slurm_and_local_evaluations_give_the_same_leaderboard(slurm_cluster: SlurmCluster, tmp_path, random_judge):
    answers = answers_file(tmp_path / "answers.jsonl", ["base", "m1", "m2", "m3"])
    local = evaluate_on(["cluster=local"], tmp_path, random_judge, answers, "local")
    slurm = evaluate_on(["cluster=slurm-ci", f"cluster.partition={slurm_cluster.partition}", "wait=true"], tmp_path,
                        random_judge, answers, "slurm")
    assert {r["model"] for r in slurm["without_reference"]["rows"]} >= {"m1", "m2", "m3"}
    assert slurm == local
