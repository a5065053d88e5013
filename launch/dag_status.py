"""Where an evaluation's DAG stands while its judging run is not built (``make status``, ``launch/dag.py``), without
loading torch: which generation shard ended without its answers, and what the build job waits for."""

from __future__ import annotations

from judgelm.generation.evaluation import generation_runs
from judgelm.generation.store import AnswerStore
from judgelm.rundir import RunDir
from launch.sacct import ACTIVE, pending_reasons, queued, sacct
from launch.submission import latest_jobs, read_submissions

NEVER = "DependencyNeverSatisfied"  # squeue's reason for a job whose dependency ended the wrong way


def generation_jobs(grd: RunDir) -> dict[int, str]:
    return latest_jobs(read_submissions(grd))[0]


def blocked_generations(rd: RunDir) -> str:
    """A line naming every generation shard that ended without finishing its answers (and what that holds up), or
    an empty string."""
    failed = []
    for grd in generation_runs(rd):
        store = AnswerStore(grd.answer_store)
        jobs = generation_jobs(grd)
        rows, waiting = sacct(list(jobs.values())), queued(list(jobs.values()))
        for k in store.incomplete_shards(int(store.attrs["n_shards"])):
            if k not in jobs or jobs[k] in waiting:
                continue
            state = rows.get(jobs[k], {}).get("State", "CANCELLED before it started").split(" by ")[0]
            if state.split(" ")[0] not in ACTIVE:
                failed.append(f"{store.attrs['model_id']} shard {k} (job {jobs[k]}, run {store.attrs['run']}) "
                              f"{state}")
    if not failed:
        return ""
    return (f"generation {'; '.join(failed)}: the build, judging and merge jobs of run {rd.name} wait for answers "
            f"that will not come. Continue with: make resubmit RUN={rd.name}")


def dag_jobs(rd: RunDir) -> list[str]:
    """The build, judging and merge jobs of the evaluation's submissions."""
    out = []
    for s in read_submissions(rd):
        out += list(s["job_ids"]) + ([s["merge_job_id"]] if s.get("merge_job_id") else [])
    return out


def dag_status(rd: RunDir) -> str:
    """What an evaluation's jobs wait for while its judging run is not built: the build job's state and any
    generation shard that will not finish."""
    builds = [s for s in read_submissions(rd) if s["kind"] == "build"]
    if not builds:
        return f"judging run {rd.name}: not built yet (local run, or nothing submitted)"
    build = builds[-1]["job_ids"][0]
    row = sacct([build]).get(build, {})
    state = row.get("State", "unknown")
    reason = pending_reasons([build]).get(build)
    line = f"judging run {rd.name}: not built yet; build job {build}: {state}" + (f" ({reason})" if reason else "")
    blocked = blocked_generations(rd)
    return line + (f"\n{blocked}" if blocked else "")
