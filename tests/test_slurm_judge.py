"""Judging on the real local Slurm cluster: array + merge, cancel + resubmit, requeue by signal.

Slow end-to-end tests (marked ``slurm``); ``.ci/run`` starts the cluster and runs them once.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from judgelm.judging.progress import read_progress
from judgelm.judging.store import VerdictStore
from judgelm.rundir import RunDir
from launch import judge as launch_judge
from launch import resubmit as launch_resubmit
from launch.status import latest_jobs, read_submissions, status_table
from tests.conftest import build_random_judge, write_pairs

pytest_plugins = ["tests.slurm_cluster"]
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]

VERDICTS = ("scores", "status", "text", "prompt_tokens", "new_tokens", "truncated", "done")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("slurm-judge")


@pytest.fixture(scope="module")
def slow_judge(workdir):
    """Big enough that a shard runs for tens of seconds, so it can be interrupted in the middle."""
    return build_random_judge(workdir / "slow-judge", hidden=192, layers=4)


@pytest.fixture(scope="module")
def data(workdir):
    return write_pairs(workdir / "pairs.jsonl", 40, with_reference_every=4)


SLOW = ("engine.mode=full", "engine.max_new_tokens=96", "store.chunk_units=3")


def run_args(judge, data, runs, name, cluster, *extra):
    # The runs share one runs directory and one data set: without the verdict cache off, every run after the first
    # would take its verdicts from the cache, and nothing here would be judged (or cancelled, or requeued) on Slurm.
    return [f"model.path={judge}", f"data.source={data}", f"run={name}", f"runs_dir={runs}", f"cluster={cluster}",
            "verdict_cache=false", *extra]


@pytest.fixture(scope="module")
def reference_run(workdir, slow_judge, data):
    """The same judging, uninterrupted, on the local executor."""
    assert launch_judge.main(run_args(slow_judge, data, workdir / "runs", "local-ref", "local", "shards=2", *SLOW)) == 0
    return RunDir(workdir / "runs" / "local-ref")


def submit(slurm_cluster, judge, data, runs, name, *extra) -> RunDir:
    args = run_args(judge, data, runs, name, "slurm-ci", f"cluster.partition={slurm_cluster.partition}",
                    "wait=false", *extra)
    assert launch_judge.main(args) == 0
    return RunDir(Path(runs).resolve() / name)


def jobs_of(rd: RunDir) -> tuple[dict[int, str], str]:
    return latest_jobs(read_submissions(rd))


def wait_for_progress(rd: RunDir, shard: int, min_units: int, timeout: float = 240) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = read_progress(rd.shard_progress(shard))
        if p and p.units_done >= min_units:
            assert p.units_done < p.units_total, "the shard finished before it could be interrupted"
            return p.units_done
        time.sleep(0.2)
    raise AssertionError(f"shard {shard} of {rd.name} made no progress in {timeout} s")


def assert_same_verdicts(a: RunDir, b: RunDir) -> None:
    sa, sb = VerdictStore(a.store), VerdictStore(b.store)
    for name in VERDICTS:
        np.testing.assert_array_equal(sa.verdicts(name), sb.verdicts(name), err_msg=name)


def units_judged(rd: RunDir, shard: int) -> list[int]:
    return [a.units_judged for a in read_progress(rd.shard_progress(shard)).attempts]


def test_array_then_merge_matches_local_executor_and_sacct_tells_operators(slurm_cluster, workdir, slow_judge, data,
                                                                           reference_run):
    rd = submit(slurm_cluster, slow_judge, data, workdir / "runs", "slurm-4", "shards=4", "engine.mode=fast",
                "store.chunk_units=8")
    local = RunDir(workdir / "runs" / "local-4")
    assert launch_judge.main(run_args(slow_judge, data, workdir / "runs", "local-4", "local", "shards=4",
                                      "engine.mode=fast", "store.chunk_units=8")) == 0
    shard_jobs, merge = jobs_of(rd)
    slurm_cluster.wait_job(merge, timeout=300)
    ours, theirs = json.loads(rd.metrics.read_text()), json.loads(local.metrics.read_text())
    assert ours["groups"] == theirs["groups"] and ours["complete"]
    assert_same_verdicts(rd, local)
    rows = slurm_cluster.wait_sacct(
        lambda rows: len(rows) == 5 and all(r["JobName"].startswith("judgelm-") for r in rows) and rows,
        job_ids=[*shard_jobs.values(), merge], fields=("JobID", "JobName", "State", "Comment"))
    names = {r["JobID"]: (r["JobName"], r["State"], r["Comment"]) for r in rows}
    cfg_hash = VerdictStore(rd.store).attrs["config_hash"]
    for _k, jid in shard_jobs.items():
        assert names[jid] == ("judgelm-judge:slurm-4", "COMPLETED", f"run=slurm-4 cfg={cfg_hash} shards=4")
    assert names[merge][:2] == ("judgelm-merge:slurm-4", "COMPLETED")
    # each array task logs into its own folder, and ran the code frozen into the run at submission
    log = (rd.logs / shard_jobs[2] / f"{shard_jobs[2]}_0_log.out").read_text()
    assert f"code {rd.root / 'code' / 'judgelm'}" in log
    table = status_table(rd)
    assert "COMPLETED" in table and f"merge job {merge}: COMPLETED" in table


def test_cancelled_shard_fails_the_merge_then_resubmit_completes_the_run(slurm_cluster, workdir, slow_judge, data,
                                                                         reference_run):
    rd = submit(slurm_cluster, slow_judge, data, workdir / "runs", "cancel", "shards=2", *SLOW)
    shard_jobs, merge = jobs_of(rd)
    done_before = wait_for_progress(rd, 1, 3)
    subprocess.run(["scancel", shard_jobs[1]], check=True)
    slurm_cluster.wait_job(merge, timeout=300)
    rows = {r["JobID"]: r["State"] for r in slurm_cluster.sacct([shard_jobs[1], merge], ("JobID", "State"))}
    assert rows[shard_jobs[1]].startswith("CANCELLED")
    assert rows[merge] == "FAILED"  # afterany: it ran, found shard 1 incomplete, and said so
    err = (rd.logs / merge / f"{merge}_0_log.err").read_text()
    assert "missing in shard 1" in err
    table = status_table(rd)
    line = next(x for x in table.splitlines() if x.startswith("1 "))
    assert "CANCELLED" in line and f"/{VerdictStore(rd.store).shard_units(1, 2)}" in line

    assert launch_resubmit.main(["run=cancel", f"runs_dir={workdir / 'runs'}", "cluster=slurm-ci",
                                 f"cluster.partition={slurm_cluster.partition}", "wait=true"]) == 0
    subs = read_submissions(rd)
    assert subs[-1]["shards"] == [1]  # only the incomplete shard went again
    assert_same_verdicts(rd, reference_run)
    judged = units_judged(rd, 1)
    assert judged[0] >= done_before and sum(judged) == VerdictStore(rd.store).shard_units(1, 2)
    assert json.loads(rd.metrics.read_text())["groups"] == json.loads(reference_run.metrics.read_text())["groups"]


def test_requeue_signal_stops_after_the_chunk_and_the_shard_resumes(slurm_cluster, workdir, slow_judge, data,
                                                                    reference_run):
    rd = submit(slurm_cluster, slow_judge, data, workdir / "runs", "requeue", "shards=2", *SLOW)
    shard_jobs, merge = jobs_of(rd)
    wait_for_progress(rd, 0, 3)
    subprocess.run(["scancel", "--signal=USR2", shard_jobs[0]], check=True)
    slurm_cluster.wait_job(merge, timeout=400)
    attempts = read_progress(rd.shard_progress(0)).attempts
    assert [a.state for a in attempts] == ["interrupted", "finished"]
    assert sum(a.units_judged for a in attempts) == VerdictStore(rd.store).shard_units(0, 2)
    history = slurm_cluster.sacct([shard_jobs[0]], ("JobID", "State"), duplicates=True)
    assert [r["State"] for r in history if r["JobID"] == shard_jobs[0]] == ["REQUEUED", "COMPLETED"]
    assert_same_verdicts(rd, reference_run)
