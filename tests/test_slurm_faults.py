"""Operator faults on the real local Slurm cluster (issue 23): each ends with 0 units lost, 0 judged twice and verdicts
identical to an uninterrupted run.

slurmctld restarted in the middle of an array; the node set DOWN and back while tasks run; the merge job killed
while writing; two ``make resubmit`` of one run at once; a task that hits its time limit; a 16-shard array with
random SIGKILLs and scancels over three resubmits. Each test that touches the cluster leaves it as it found it
(slurmctld up, the node up), even when it fails (``restore_cluster``). In CI they run one after another on the one
cluster; to develop them without disturbing a shared cluster, start a second one (slurm/README.md, "Knobs") and
point the tests at it with ``SLURM_CI_STATE_DIR`` and ``SLURM_CONF`` (and the same ``SLURM_CI_*`` knobs it was
started with: a restart re-renders its configs from them).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from judgelm.judging.progress import read_progress, write_progress
from judgelm.judging.run import incomplete_shards
from judgelm.judging.shard import run_shard
from judgelm.judging.store import VerdictStore
from judgelm.results.merge import merge_run
from judgelm.rundir import RunDir
from launch import resubmit as launch_resubmit
from tests.conftest import build_random_judge, write_pairs
from tests.slurm_cluster import START_SCRIPT, is_terminal
from tests.test_judge_run import new_run
from tests.test_slurm_judge import assert_same_verdicts, jobs_of, submit, wait_for_progress

pytest_plugins = ["tests.slurm_cluster"]
pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(1200)]
REPO = Path(__file__).resolve().parents[1]
SLOW = ("engine.mode=full", "engine.max_new_tokens=64", "store.chunk_units=2")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("slurm-faults")


@pytest.fixture(scope="module")
def judge(workdir):
    """Slow enough that a shard is still judging when the fault comes."""
    return build_random_judge(workdir / "judge", hidden=192, layers=4)


@pytest.fixture(scope="module")
def data(workdir):
    return write_pairs(workdir / "pairs.jsonl", 16)


def reference(workdir: Path, judge: Path, data: Path, name: str, *args: str) -> RunDir:
    """The same run judged without interruption, here, one shard after the other (same shards, same chunks)."""
    rd = new_run(workdir / "ref", judge, data, name, "verdict_cache=false", *args)
    n_shards = VerdictStore(rd.store).attrs["n_shards"]
    for k in range(n_shards):
        run_shard(rd.root, k, n_shards, threads=1)
    merge_run(rd.root)
    return rd


def assert_whole(rd: RunDir, ref: RunDir) -> None:
    """0 lost (every unit done, the merge complete), 0 judged twice (no chunk committed by two attempts), verdicts
    identical to the uninterrupted run."""
    store = VerdictStore(rd.store)
    assert store.done().all() and store.verify() == []
    n_shards = store.attrs["n_shards"]
    judged = sum(a.units_judged for k in range(n_shards) for a in read_progress(rd.shard_progress(k)).attempts)
    # An attempt killed between a commit and its progress file counts one chunk short; none may count one twice.
    assert judged <= store.n_units, f"{judged - store.n_units} units judged twice"
    assert_same_verdicts(rd, ref)
    assert json.loads(rd.metrics.read_text())["complete"]
    assert json.loads(rd.metrics.read_text())["groups"] == json.loads(ref.metrics.read_text())["groups"]


def sinfo_state(node: str) -> str:
    out = subprocess.run(["sinfo", "-h", "-n", node, "-o", "%t"], capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def controller_answers() -> bool:
    return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=60).returncode == 0


def start_cluster() -> None:
    """slurm/start-cluster.sh starts whichever daemon is not running and leaves the others alone."""
    out = subprocess.run(["bash", str(START_SCRIPT)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.fixture
def restore_cluster(slurm_cluster):
    """Whatever the test did or wherever it failed: slurmctld up and the node taking jobs again."""
    if os.geteuid() != 0:
        pytest.skip("restarting slurmctld and setting the node down needs root")
    yield slurm_cluster
    if not controller_answers():
        start_cluster()
    if sinfo_state(slurm_cluster.node).rstrip("*~#") in ("down", "drain", "drng", "fail", "failg"):
        subprocess.run(["scontrol", "update", f"nodename={slurm_cluster.node}", "state=resume"], timeout=60)
    slurm_cluster.wait_sacct(lambda: sinfo_state(slurm_cluster.node).rstrip("*") in ("idle", "mix", "alloc"),
                             timeout=120)


def stop_slurmctld(cluster) -> None:
    """SIGTERM the controller start-cluster.sh recorded, and wait until it is gone (a zombie is gone)."""
    pid = int((cluster.state_dir / "pids" / "slurmctld.pid").read_text())
    os.kill(pid, signal.SIGTERM)

    def gone() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
        except FileNotFoundError:
            return True
    cluster.wait_sacct(gone, timeout=60)


def runs(workdir: Path) -> Path:
    return workdir / "runs"


def cancel_all(jobs: list[str]) -> None:
    """Leave no job of a failed test behind on the shared cluster."""
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True, timeout=60)


def test_slurmctld_restarted_in_the_middle_of_an_array(restore_cluster, workdir, judge, data):
    cluster = restore_cluster
    args = ("shards=4", *SLOW)
    ref = reference(workdir, judge, data, "ctld", *args)
    rd = submit(cluster, judge, data, runs(workdir), "ctld", *args, "cluster.array_parallelism=2")
    shard_jobs, merge = jobs_of(rd)
    try:
        wait_for_progress(rd, 0, 2)  # two tasks running, two pending: the restarted controller must start them
        stop_slurmctld(cluster)
        assert not controller_answers()
        time.sleep(3)  # the tasks go on judging on the node while no controller answers
        start_cluster()
        cluster.wait_job(merge, timeout=900)
        assert_whole(rd, ref)
    finally:
        cancel_all([*shard_jobs.values(), merge])


def test_the_node_set_down_and_back_while_tasks_run(restore_cluster, workdir, judge, data):
    cluster = restore_cluster
    args = ("shards=2", *SLOW)
    ref = reference(workdir, judge, data, "down", *args)
    rd = submit(cluster, judge, data, runs(workdir), "down", *args)
    shard_jobs, merge = jobs_of(rd)
    try:
        wait_for_progress(rd, 1, 2)
        subprocess.run(["scontrol", "update", f"nodename={cluster.node}", "state=down", "reason=judgelm-fault-test"],
                       check=True, timeout=60)
        # its running tasks are killed and requeued (NODE_FAIL); the node comes back (ReturnToService, or by hand)
        cluster.wait_sacct(lambda rows: any(r["State"].startswith(("NODE_FAIL", "REQUEUED", "PENDING"))
                                            for r in rows), timeout=120, job_ids=list(shard_jobs.values()),
                           fields=("JobID", "State"), duplicates=True)
        if sinfo_state(cluster.node).rstrip("*~#") in ("down", "drain"):
            subprocess.run(["scontrol", "update", f"nodename={cluster.node}", "state=resume"], timeout=60)
        cluster.wait_job(merge, timeout=900)
        history = cluster.sacct(list(shard_jobs.values()), ("JobID", "State"), duplicates=True)
        assert any(r["State"].startswith(("NODE_FAIL", "REQUEUED")) for r in history), history
        assert_whole(rd, ref)
    finally:
        cancel_all([*shard_jobs.values(), merge])


METRIC_FILES = ("metrics.json", "metrics.md", "confidence.jsonl")


def test_the_merge_job_killed_while_writing_leaves_old_or_new_files(slurm_cluster, workdir, data):
    # the shipped tiny judge writes score lines, so the merge has confidences to write too
    args = ("shards=2", "engine.logprobs_topk=5", "store.chunk_units=8", "verdict_cache=false")
    rd = new_run(runs(workdir), REPO / "models" / "tiny-judge", data, "merge-kill", "cluster=slurm-ci",
                 f"cluster.partition={slurm_cluster.partition}", *args)
    run_shard(rd.root, 0, 2, threads=1)
    merge_run(rd.root, allow_partial=True)  # the old files: a partial merge
    old = {name: (rd.root / name).read_bytes() for name in METRIC_FILES}
    run_shard(rd.root, 1, 2, threads=1)
    copy = RunDir(workdir / "merge-kill-copy")
    shutil.copytree(rd.root, copy.root)
    merge_run(copy.root)  # the new files: what a merge that is not killed writes
    new = {name: (copy.root / name).read_bytes() for name in METRIC_FILES}
    assert all(old[n] != new[n] for n in METRIC_FILES)
    resubmit = ["run=merge-kill", f"runs_dir={runs(workdir)}", "cluster=slurm-ci",
                f"cluster.partition={slurm_cluster.partition}", "wait=false"]
    rng = random.Random(0)
    killed = 0
    for attempt in range(6):
        assert launch_resubmit.main(resubmit) == 0  # every chunk is done: a new merge job only
        _, merge = jobs_of(rd)
        slurm_cluster.wait_sacct(lambda rows: rows and rows[0]["State"] in ("RUNNING", "COMPLETED"), timeout=300,
                                 job_ids=merge, fields=("JobID", "State"))
        time.sleep(rng.uniform(0, 4))  # the merge job runs for about 3-10 s: kills land all through it
        subprocess.run(["scancel", "--full", "--signal=KILL", merge], capture_output=True, timeout=60)
        state = slurm_cluster.wait_job(merge, timeout=300)[merge]
        killed += state != "COMPLETED"
        for name in METRIC_FILES:
            now = (rd.root / name).read_bytes()
            assert now in (old[name], new[name]), f"{name} is half-written after kill {attempt} ({state})"
        if state == "COMPLETED" and killed:
            break
    assert killed, "no merge job was killed"
    assert launch_resubmit.main(resubmit[:-1] + ["wait=true"]) == 0
    assert {name: (rd.root / name).read_bytes() for name in METRIC_FILES} == new


def test_two_resubmits_of_one_run_at_once_submit_each_shard_once(slurm_cluster, workdir, judge, data):
    args = ("shards=4", *SLOW)
    ref = reference(workdir, judge, data, "twice", *args)
    rd = submit(slurm_cluster, judge, data, runs(workdir), "twice", *args)
    shard_jobs, merge = jobs_of(rd)
    try:
        wait_for_progress(rd, 0, 2)
        subprocess.run(["scancel", shard_jobs[1], shard_jobs[2]], check=True, timeout=60)
        slurm_cluster.wait_job(merge, timeout=600)
        todo = incomplete_shards(rd, 4)
        assert todo, "the cancelled shards had finished"
        command = [sys.executable, "-m", "launch.resubmit", "run=twice", f"runs_dir={runs(workdir)}",
                   "cluster=slurm-ci", f"cluster.partition={slurm_cluster.partition}", "wait=false"]
        procs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=600)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        subs = [json.loads(x) for x in rd.jobs.read_text().splitlines()][1:]
        assert sorted(s["shards"] for s in subs) == [[], todo], subs  # the second found them queued
        merges = [s["merge_job_id"] for s in subs]
        for m in merges:
            slurm_cluster.wait_job(m, timeout=900)
        assert_whole(rd, ref)
    finally:
        cancel_all([*shard_jobs.values(), merge])


@pytest.mark.timeout(2400)
def test_a_task_that_hits_its_time_limit_requeues_and_finishes(slurm_cluster, workdir, judge):
    data = write_pairs(workdir / "long.jsonl", 400, with_reference_every=4)  # ~1000 units: more than one attempt
    args = ("shards=1", "engine.mode=full", "engine.max_new_tokens=96", "store.chunk_units=4")
    ref = reference(workdir, judge, data, "limit", *args)
    rd = submit(slurm_cluster, judge, data, runs(workdir), "limit", *args, "cluster.signal_delay_s=60",
                "cluster.max_num_timeout=30")
    shard_jobs, merge = jobs_of(rd)
    job = shard_jobs[0]
    try:
        wait_for_progress(rd, 0, 4)  # started: the limit now comes while it judges, whatever its start-up took
        elapsed = slurm_cluster.sacct([job], ("JobID", "ElapsedRaw"))[0]["ElapsedRaw"]
        limit = int(elapsed) + 75  # USR2 15-45 s from now (60 s before the limit, checked every 30 s), and after
        subprocess.run(["scontrol", "update", f"jobid={job.split('_')[0]}", f"timelimit={limit // 60}:{limit % 60}"],
                       check=True, timeout=60)
        slurm_cluster.wait_job(merge, timeout=2000)
        attempts = read_progress(rd.shard_progress(0)).attempts
        assert len(attempts) >= 2 and attempts[-1].state == "finished"
        assert all(a.state == "interrupted" and a.units_judged > 0 for a in attempts[:-1]), attempts
        history = slurm_cluster.sacct([job], ("JobID", "State"), duplicates=True)
        assert [r["State"] for r in history if r["JobID"] == job][0] == "REQUEUED"
        assert_whole(rd, ref)
    finally:
        cancel_all([*shard_jobs.values(), merge])


def chaos(slurm_cluster, rd: RunDir, rng: random.Random, seconds: float) -> list[str]:
    """For ``seconds``: every few seconds SIGKILL a random running task or scancel a random task of the run's latest
    array; then wait for every job of it to end. Returns what was done."""
    subs = [json.loads(x) for x in rd.jobs.read_text().splitlines()]
    tasks, merge = subs[-1]["job_ids"], subs[-1]["merge_job_id"]
    done, deadline = [], time.time() + seconds
    while time.time() < deadline:
        time.sleep(rng.uniform(2, 6))
        rows = {r["JobID"]: r["State"] for r in slurm_cluster.sacct(tasks, ("JobID", "State"))}
        running = [t for t in tasks if rows.get(t) == "RUNNING"]
        alive = [t for t in tasks if rows.get(t) in ("RUNNING", "PENDING")]
        if running and rng.random() < 0.6:
            victim = rng.choice(running)
            subprocess.run(["scancel", "--full", "--signal=KILL", victim], capture_output=True, timeout=60)
            done.append(f"SIGKILL {victim}")
        elif alive:
            victim = rng.choice(alive)
            subprocess.run(["scancel", victim], capture_output=True, timeout=60)
            done.append(f"scancel {victim}")
    slurm_cluster.wait_sacct(lambda rows: rows and all(is_terminal(r["State"]) for r in rows), timeout=900,
                             job_ids=[*tasks, merge], fields=("JobID", "State"))
    return done


def test_chaos_a_16_shard_array_with_random_kills_over_three_resubmits(slurm_cluster, workdir, judge):
    data = write_pairs(workdir / "chaos.jsonl", 32)
    args = ("shards=16", "engine.mode=full", "engine.max_new_tokens=32", "store.chunk_units=2")
    ref = reference(workdir, judge, data, "chaos", *args)
    rd = submit(slurm_cluster, judge, data, runs(workdir), "chaos", *args)
    rng = random.Random(23)
    resubmit = ["run=chaos", f"runs_dir={runs(workdir)}", "cluster=slurm-ci",
                f"cluster.partition={slurm_cluster.partition}"]
    try:
        actions = chaos(slurm_cluster, rd, rng, 40)
        for _ in range(2):
            assert launch_resubmit.main([*resubmit, "wait=false"]) == 0
            actions += chaos(slurm_cluster, rd, rng, 30)
        assert any(a.startswith("SIGKILL") for a in actions) and any(a.startswith("scancel") for a in actions)
        assert launch_resubmit.main([*resubmit, "wait=true"]) == 0  # the third resubmit, left alone, finishes
        assert_whole(rd, ref)
    finally:
        subs = [json.loads(x) for x in rd.jobs.read_text().splitlines()] if rd.jobs.exists() else []
        cancel_all([j for s in subs for j in [*s["job_ids"], s["merge_job_id"]] if j])


def test_assert_whole_catches_a_unit_judged_twice(workdir, judge, data):
    """The check the tests above end with can fail: a chunk committed by two attempts is seen."""
    rd = reference(workdir, judge, data, "judged-twice", "shards=1", "store.chunk_units=8")
    p = read_progress(rd.shard_progress(0))
    p.attempts[-1].units_judged += 8  # as if a second job had judged chunk 0 again
    write_progress(rd.shard_progress(0), p)
    with pytest.raises(AssertionError, match="8 units judged twice"):
        assert_whole(rd, rd)
