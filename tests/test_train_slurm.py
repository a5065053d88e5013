"""Training through the local Slurm cluster: a 2-task ZeRO-3 job is signalled, requeued, resumed and exported."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from judgelm.config import REPO_ROOT
from tests.test_train_fixtures import micro_overrides, write_micro_data

if TYPE_CHECKING:
    from tests.slurm_cluster import SlurmCluster

pytest_plugins = ["tests.slurm_cluster"]
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(400)]


def test_zero3_job_is_requeued_by_signal_resumes_and_exports(slurm_cluster: SlurmCluster, tmp_path):
    data = write_micro_data(tmp_path / "train.jsonl")
    args = micro_overrides(tmp_path, data, "slurm-z3", epochs=20, log_every=1, cluster="slurm-ci", wait="true",
                           backend="deepspeed", deepspeed_config="configs/deepspeed/zero3.json",
                           **{"resources.cpu_tasks": 2})  # 200 steps, 2 tasks
    proc = subprocess.Popen([sys.executable, "-m", "launch.train", *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = tmp_path / "runs" / "slurm-z3"
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            metrics = run / "metrics.jsonl"
            if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
                break
            time.sleep(0.1)
        else:
            pytest.fail("training did not start")
        job_id = re.search(r'"job_ids": \["(\d+)"\]', (run / "jobs.jsonl").read_text()).group(1)
        # What Slurm sends before the time limit (--signal=USR2@...), to every task of the job.
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    assert "finished at step 200/200" in out

    attempts = slurm_cluster.wait_sacct(lambda rows: rows and rows[-1]["State"] == "COMPLETED", timeout=60,
                                        job_ids=job_id, fields=("JobName", "State", "Comment"), duplicates=True)
    assert [a["State"] for a in attempts] == ["REQUEUED", "COMPLETED"]
    assert {a["JobName"] for a in attempts} == {"judgelm-train:slurm-z3"}
    assert re.fullmatch(r"run=slurm-z3 cfg=[0-9a-f]{12}", attempts[-1]["Comment"])

    log = (run / "train.log").read_text()
    assert log.count("deepspeed on 2 × cpu") == 2
    stopped = int(re.search(r"stopping at step (\d+) on request", log).group(1))
    assert f"resumed from step-{stopped:08d}" in log
    steps = [int(s) for s in re.findall(r'"step": (\d+)', (run / "metrics.jsonl").read_text())]
    assert steps == list(range(1, 201))
    assert (run / "model" / "model.safetensors").is_file() and (run / "model" / "tokenizer.json").is_file()
