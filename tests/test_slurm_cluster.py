"""End-to-end tests against the real local Slurm cluster (``slurm/start-cluster.sh``).

They check the cluster features the project relies on, through the same path production uses
(submitit's AutoExecutor with cluster="slurm", sbatch, sacct): job names and states in accounting,
job arrays, dependencies, and GPU requests. About 15 s on a warm cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.slurm_cluster import SlurmCluster

# Registers the slurm_cluster fixture even without a conftest that does it (a no-op if one does).
# Only through pytest_plugins, not a plain import: then pytest imports the module itself and can
# rewrite its asserts, and a conftest naming the same plugin does not create a second fixture.
pytest_plugins = ["tests.slurm_cluster"]
parse_time = datetime.fromisoformat  # sacct timestamps: 2026-01-31T12:00:00

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]


# Job payloads: module-level, so that submitit pickles them by reference and the job imports this
# module (the executor puts the repository root on the job's PYTHONPATH).
def job_info(x: int) -> dict:
    return {
        "y": x * x,
        "job_id": os.environ.get("SLURM_JOB_ID"),
        "array_task": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "python": sys.executable,
    }


def slow_square(x: int) -> int:
    import time

    time.sleep(3)  # long enough that the dependent job is submitted while the array still runs
    return x * x


def gpu_env() -> dict:
    return {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "SLURM_GPUS_ON_NODE")}


def test_submitit_job_result_and_accounting(slurm_cluster: SlurmCluster, tmp_path):
    ex = slurm_cluster.executor(tmp_path, name="judgelm-ci-single")
    job = ex.submit(job_info, 7)
    res = job.result()
    assert res["y"] == 49
    assert res["job_id"] == job.job_id
    assert res["python"] == sys.executable, "the job must run the submitting interpreter"
    # sacct first shows the job under the placeholder name "allocation", and may still say
    # RUNNING right after the end: wait for both the final state and the real name.
    rows = slurm_cluster.wait_sacct(
        lambda rows: len(rows) == 1 and rows[0]["State"] == "COMPLETED" and rows[0]["JobName"] == "judgelm-ci-single",
        job_ids=job.job_id, fields=["JobID", "JobName", "State", "ExitCode"])
    assert rows[0]["ExitCode"] == "0:0"


def test_array_then_afterany_dependency(slurm_cluster: SlurmCluster, tmp_path):
    ex = slurm_cluster.executor(tmp_path / "array", name="judgelm-ci-array", slurm_array_parallelism=3)
    jobs = ex.map_array(slow_square, [1, 2, 3])
    array_id = jobs[0].job_id.split("_")[0]
    assert [j.job_id for j in jobs] == [f"{array_id}_{i}" for i in range(3)]
    dep_ex = slurm_cluster.executor(tmp_path / "dep", name="judgelm-ci-after",
                                    slurm_additional_parameters={"dependency": f"afterany:{array_id}"})
    dep = dep_ex.submit(job_info, 5)

    assert [j.result() for j in jobs] == [1, 4, 9]
    assert dep.result()["y"] == 25

    rows = slurm_cluster.wait_sacct(
        lambda rows: len(rows) == 4 and all(r["State"] == "COMPLETED" for r in rows),
        job_ids=[array_id, dep.job_id], fields=["JobID", "State", "Submit", "Eligible", "Start", "End"])
    tasks = [r for r in rows if r["JobID"].startswith(f"{array_id}_")]
    (after,) = [r for r in rows if r["JobID"] == dep.job_id]
    assert len(tasks) == 3, rows
    array_end = max(parse_time(r["End"]) for r in tasks)
    # The dependency really held the job back: submitted while the array ran, started after it.
    assert parse_time(after["Submit"]) < array_end, rows
    assert parse_time(after["Start"]) >= array_end, rows
    assert parse_time(after["Eligible"]) >= array_end, rows


def test_fake_gpu_request_schedules(slurm_cluster: SlurmCluster, tmp_path):
    if slurm_cluster.gpus < 1:
        pytest.skip("the cluster has no (fake) GPUs: start it with SLURM_CI_GPUS=2")
    ex = slurm_cluster.executor(tmp_path, name="judgelm-ci-gpu", gpus_per_node=1)
    job = ex.submit(gpu_env)
    env = job.result()
    assert env["SLURM_GPUS_ON_NODE"] == "1", env
    assert env["CUDA_VISIBLE_DEVICES"] in {str(i) for i in range(slurm_cluster.gpus)}, env
    slurm_cluster.wait_sacct(lambda rows: len(rows) == 1 and "gres/gpu=1" in rows[0]["AllocTRES"],
                             job_ids=job.job_id, fields=["JobID", "AllocTRES"])


def test_failed_batch_job_reaches_terminal_state(slurm_cluster: SlurmCluster, tmp_path):
    out = subprocess.run(
        ["sbatch", "--parsable", "-J", "judgelm-ci-fail", "-o", str(tmp_path / "%j.out"), "--wrap", "exit 3"],
        check=True, capture_output=True, text=True).stdout
    job_id = out.strip().split(";")[0]
    assert slurm_cluster.wait_job(job_id, timeout=60) == {job_id: "FAILED"}
    (row,) = slurm_cluster.sacct(job_id, ["JobID", "State", "ExitCode"])
    assert row["ExitCode"] == "3:0", row
