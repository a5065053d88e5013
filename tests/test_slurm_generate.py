"""``make evaluate MODELS=…`` through the local Slurm cluster: generation arrays, the build job, the judging array
after it and the merge, named and commented for their run and model; a cancelled generation task is named by
``make status`` while the judging waits, ``make resubmit`` finishes the DAG, and the leaderboard is the local
executor's."""

from __future__ import annotations

import json
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from judgelm.rundir import RunDir
from launch import evaluate
from launch import resubmit as launch_resubmit
from launch.sacct import pending_reasons
from launch.status import status_table
from launch.submission import read_submissions

if TYPE_CHECKING:
    from tests.slurm_cluster import SlurmCluster

pytest_plugins = ["tests.slurm_cluster"]
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(1200)]


def args(judge, models, runs, name, *extra) -> list[str]:
    # Separate runs directories: the Slurm run must generate and judge, not read the local run's caches.
    return [f"model.path={judge}", f"runs_dir={runs}", f"run={name}", "shards=2", "store.chunk_units=2",
            f"evaluate.generate=[{','.join(str(m) for m in models)}]", "evaluate.limit=2",
            "generation.engine.max_new_tokens=6", "generation.shards=2", "generation.store.chunk_units=1", *extra]


def leaderboard(rd: RunDir) -> dict:
    return json.loads((rd.root / "leaderboard.json").read_text())["boards"]


def wait_for(predicate, timeout: float = 600, every: float = 2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def test_evaluate_models_through_slurm(slurm_cluster: SlurmCluster, tmp_path, random_judge, random_chat_models):
    assert evaluate.main(args(random_judge, random_chat_models, tmp_path / "local", "ev", "cluster=local")) == 0
    local = leaderboard(RunDir(tmp_path / "local" / "ev"))

    # Submitted, not waited for; the jobs may start only after a minute, so one generation task can be cancelled
    # before it runs.
    cluster = ["cluster=slurm-ci", f"cluster.partition={slurm_cluster.partition}"]
    assert evaluate.main(args(random_judge, random_chat_models, tmp_path / "slurm", "ev", *cluster, "wait=false",
                              "cluster.additional_parameters={begin: now+60}")) == 0
    rd = RunDir(tmp_path / "slurm" / "ev")
    gen_b = RunDir(rd.generated / "chat-b")
    array_b = read_submissions(gen_b)[0]["array_job_id"]
    subprocess.run(["scancel", f"{array_b}_1"], check=True)

    build = next(s for s in read_submissions(rd) if s["kind"] == "build")["job_ids"][0]
    judging = next(s for s in read_submissions(rd) if s["kind"] == "judge")
    assert wait_for(lambda: pending_reasons([build]).get(build) == "DependencyNeverSatisfied")
    table = status_table(rd)
    assert f"chat-b shard 1 (job {array_b}_1, run ev/generated/chat-b) CANCELLED" in table, table
    assert f"build job {build}: PENDING (DependencyNeverSatisfied)" in table
    assert "make resubmit RUN=ev" in table
    dependency = subprocess.run(["squeue", "-h", "-j", judging["array_job_id"], "-o", "%E"], capture_output=True,
                                text=True, check=True).stdout
    assert f"afterok:{build}" in dependency  # the judging array waits for the build job

    assert launch_resubmit.main(["run=ev", f"runs_dir={tmp_path / 'slurm'}", "wait=true", *cluster]) == 0
    assert leaderboard(rd) == local

    subs = {r.name: read_submissions(r) for r in (rd, RunDir(rd.generated / "chat-a"), gen_b)}
    assert len(subs["chat-a"]) == 1 and len(subs["chat-b"]) == 2 and subs["chat-b"][1]["shards"] == [1]
    ids = [j for runs in subs.values() for s in runs for j in [s["array_job_id"] or s["job_ids"][0],
                                                                 s.get("merge_job_id")] if j]
    # The launcher sees a job end before slurmdbd does: wait until the accounting has every job's end.
    rows = slurm_cluster.wait_sacct(lambda rows: rows and not any(r["State"].split(" ")[0] in ("PENDING", "RUNNING",
                                                                  "COMPLETING") for r in rows), timeout=120,
                                    job_ids=ids, fields=("JobID", "JobName", "State", "Comment"))
    states: dict[str, set[str]] = {}
    for r in rows:
        states.setdefault(r["JobName"], set()).add(r["State"].split(" ")[0])
    assert states["judgelm-generate:ev/generated/chat-a"] == {"COMPLETED"}
    assert states["judgelm-generate:ev/generated/chat-b"] == {"COMPLETED"}  # the cancelled task never ran
    for name in ("judgelm-build:ev", "judgelm-judge:ev"):  # the first waited in vain and was cancelled by resubmit
        assert states[name] == {"CANCELLED", "COMPLETED"}, (name, states[name])
    assert "COMPLETED" in states["judgelm-merge:ev"]
    comments = {r["JobName"]: r["Comment"] for r in rows}
    assert "run=ev/generated/chat-a model=chat-a" in comments["judgelm-generate:ev/generated/chat-a"]
    assert "run=ev models=chat-a,chat-b" in comments["judgelm-judge:ev"]
    assert "models=chat-a,chat-b" in comments["judgelm-build:ev"]
