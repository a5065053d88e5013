"""Submitting a judging run's shards and merge, following them, and reporting the outcome.

Every entry point that judges (``judge``, ``benchmark``, ``resubmit``, ``evaluate``) goes through ``launch``: one job
array of shards, on Slurm a merge job after it (``afterany``), one line per submission in ``jobs.jsonl``, a compact
progress line while it runs, then the metrics or the names of the shards that failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from judgelm.judging.phases import PhaseTimer, process_age
from judgelm.judging.progress import read_progress
from judgelm.judging.store import VerdictStore
from judgelm.rundir import RunDir
from launch.cluster import ClusterConfig, make_executor
from launch.configs import JudgeLaunchConfig
from launch.server import STOP_FILE, request_stop, submit_server
from launch.snapshot import snapshot_code
from launch.tasks import JudgeShardsTask, JudgeShardTask, merge_task

log = logging.getLogger("judgelm.launch")


def record_submission(rd: RunDir, kind: str, executor: str, job_ids: list[str], shards: list[int] = (),
                      merge_job_id: str | None = None, judge: str = "") -> None:
    """One line per submission, the same schema for judging and training runs (``make status`` reads it);
    ``judge`` names a panel judge's array (empty: the run's own judge)."""
    array = job_ids[0].split("_")[0] if kind == "judge" and job_ids else None
    with rd.jobs.open("a") as f:
        f.write(json.dumps({"kind": kind, "judge": judge, "executor": executor, "shards": list(shards),
                            "job_ids": list(job_ids), "array_job_id": array, "merge_job_id": merge_job_id,
                            "submitted": time.time()}) + "\n")


def task_gpus(cfg: JudgeLaunchConfig) -> int | None:
    """GPUs per judging array task: the profile's ``gpus_per_task``, or from the model's size and ``gpu_mem_gb``
    (``judgelm.inference.gpu_plan``); ``None`` leaves the profile's ``gpus_per_node``."""
    c = cfg.cluster
    if not c.gpus_per_node or not c.gpu_mem_gb:
        return c.gpus_per_task or None
    from judgelm.inference.gpu_plan import plan_replica  # torch and transformers: not for status, which reads jobs here
    return plan_replica(cfg.model.path, c.gpu_mem_gb, c.gpus_per_task, cfg.model.dtype, cfg.engine.memory_margin).gpus


def gpu_plan_text(cfg: JudgeLaunchConfig) -> str:
    from judgelm.inference.gpu_plan import run_plan_text  # as in task_gpus
    c = cfg.cluster
    return run_plan_text(cfg.model.path, cfg.shards, c.gpu_mem_gb if c.gpus_per_node else None, c.gpus_per_task,
                         cfg.model.dtype, cfg.engine.memory_margin)


def read_submissions(rd: RunDir) -> list[dict]:
    if not rd.jobs.exists():
        return []
    return [json.loads(x) for x in rd.jobs.read_text().splitlines() if x.strip()]


def latest_jobs(subs: list[dict]) -> tuple[dict[int, str], str | None]:
    """Each shard's most recent job id, and the most recent merge job id, of the run's own judge (a panel judge's
    arrays, ``make panel``, have their own shards)."""
    by_shard: dict[int, str] = {}
    merge = None
    for s in subs:
        if s.get("judge"):
            continue
        for shard, jid in zip(s["shards"], s["job_ids"]):
            by_shard[shard] = jid
        merge = s.get("merge_job_id") or merge
    return by_shard, merge


def merge_cluster(c: ClusterConfig) -> ClusterConfig:
    """The merge needs one CPU, no GPU: its own partition (or the shards' one) and no GPU constraint."""
    return dataclasses.replace(c, partition=c.merge_partition or c.partition, constraint=None, gpus_per_node=0,
                               cpus_per_task=1, mem_gb=c.merge_mem_gb, timeout_min=c.merge_timeout_min, nodes=1)


@contextlib.contextmanager
def ctrl_c_left_to_shards(local: bool):
    """Local shards run under submitit's controller process, which on ctrl-C prints a traceback and SIGKILLs them
    mid-chunk. Started with SIGINT ignored, the controller inherits that and keeps waiting, while each shard's own
    handler (``JudgeShardTask``) stops it after its current chunk."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if local else None
    try:
        yield
    finally:
        if local:
            signal.signal(signal.SIGINT, previous)


def local_workers(shards: list[int], backend: str, running_here: int = 0) -> tuple[list[list[int]], int]:
    """Shards grouped into local workers, and torch threads per worker. A model judged in this machine's processes
    gets one worker per submission, judging its shards one after the other on its share of the cores (the engine
    spreads over them: ``cpu_processes``), so the imports and the model load are paid once and never more
    processes compute than there are cores; ``running_here`` counts the shards of every submission running here
    (default: these). Shards that call a server (``openai``) compute nothing here: one worker each, side by side."""
    cores = os.cpu_count() or 1
    share = max(1, cores * len(shards) // max(running_here or len(shards), 1))  # this submission's cores
    if backend == "openai":
        return [[s] for s in shards], 1
    return [list(shards)], share


@dataclass
class Submission:
    rd: RunDir
    cfg: JudgeLaunchConfig
    shards: list[int]
    shard_jobs: list  # the submitit job of each shard (locally a worker's job, shared by its shards)
    merge_job: object | None  # Slurm only: the merge runs after the array (afterany)
    judge: str = ""  # a panel judge's shards (``make panel``); empty: the run's own judge

    @property
    def array_job_id(self) -> str | None:
        return self.shard_jobs[0].job_id.split("_")[0] if self.shard_jobs else None

    @property
    def jobs(self) -> list:
        return self.shard_jobs + ([self.merge_job] if self.merge_job else [])


def submit(rd: RunDir, cfg: JudgeLaunchConfig, shards: list[int], wait_for: list[str] = (),
           running_here: int = 0, judge: str = "") -> Submission:
    """Submit ``shards`` as one job array (and, on Slurm, a merge job after it); record the job ids.

    ``wait_for`` are other jobs still working on this run (shards left to an earlier submission): the merge waits
    for them too. ``running_here`` is how many local shards will share this machine in all (several runs
    submitted together); by default just these. ``judge`` names a panel judge (``make panel``) whose arrays the
    shards fill instead of the run's own.
    """
    comment = f"run={cfg.run} cfg={cfg.fingerprint()} shards={cfg.shards}" + (f" judge={judge}" if judge else "")
    name = f"judgelm-judge:{cfg.run}" + (f":{judge}" if judge else "")
    slurm = cfg.cluster.executor == "slurm"
    chdir = snapshot_code(rd.root / "code") if slurm else None
    if not slurm:  # idle OpenMP threads must sleep, or processes sharing cores slow each other down several-fold
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    jobs, merge = [], None
    server = cfg.cluster.server.enabled and shards and not judge
    if server:  # the shards wait for its address; a resubmission starts a fresh one
        (rd.root / STOP_FILE).unlink(missing_ok=True)
        submit_server(rd.root, cfg.run, cfg.model.path, cfg.cluster, cfg.cluster.server, chdir)
    if shards:
        ex = make_executor(cfg.cluster, rd.logs, name, comment=comment, chdir=chdir,
                           gpus_per_node=task_gpus(cfg), python=cfg.engine.python or None)
        with ctrl_c_left_to_shards(not slurm):
            if slurm:  # Slurm gives every task its own cores
                n = len(shards)
                jobs = ex.map_array(JudgeShardTask(), [str(rd.root)] * n, shards, [cfg.shards] * n, [0] * n,
                                    [judge] * n)
            else:
                groups, threads = local_workers(shards, cfg.engine.backend, running_here)
                n = len(groups)
                workers = ex.map_array(JudgeShardsTask(), [str(rd.root)] * n, groups, [cfg.shards] * n,
                                       [threads] * n, [judge] * n)
                worker_of = {s: w for w, g in zip(workers, groups) for s in g}
                jobs = [worker_of[s] for s in shards]
    if slurm:
        after = ([jobs[0].job_id.split("_")[0]] if jobs else []) + list(wait_for)
        ex = make_executor(merge_cluster(cfg.cluster), rd.logs, f"judgelm-merge:{cfg.run}", comment=comment,
                           chdir=chdir, dependency="afterany:" + ":".join(after) if after else None)
        merge = ex.submit(merge_task, str(rd.root), cfg.allow_partial, bool(server))
    record_submission(rd, "judge", cfg.cluster.executor, [j.job_id for j in jobs], shards,
                      merge.job_id if merge else None, judge=judge)
    return Submission(rd, cfg, shards, jobs, merge, judge)


class ProgressView:
    """One line per refresh, readable at 64 shards as at 4: planned totals from the store, shards by state, the
    slowest running ones, the rate over the last minutes and an ETA for the waves ``array_parallelism`` allows."""

    def __init__(self, rd: RunDir, n_shards: int, parallelism: int, window_s: float = 180.0):
        self.rd, self.n_shards, self.parallelism, self.window_s = rd, n_shards, parallelism, window_s
        self.store = VerdictStore(rd.store)
        self.started = time.time()
        self.history: deque[tuple[float, int]] = deque()

    def line(self) -> str:
        done_units = self.store.done()
        owned = [(int(done_units[sl].sum()), sl.stop - sl.start)
                 for sl in (self.store.shard_slice(k, self.n_shards) for k in range(self.n_shards))]
        done, total = sum(d for d, _ in owned), self.store.n_units
        now = time.time()
        self.history.append((now, done))
        while self.history and now - self.history[0][0] > self.window_s:
            self.history.popleft()
        t0, d0 = self.history[0]
        rate = (done - d0) / (now - t0) if now - t0 >= 1 else 0.0
        progress = [read_progress(self.rd.shard_progress(k)) for k in range(self.n_shards)]
        states = self._states(owned, progress)
        running = [k for k, s in enumerate(states) if s == "running"]
        counts = {s: states.count(s) for s in ("running", "pending", "done", "failed")}
        eta = self._eta(total - done, [progress[k] for k in running], sum(1 for d, t in owned if d < t))
        parts = [f"[{now - self.started:5.0f} s] {done}/{total} units ({100 * done / max(total, 1):.1f} %)",
                 ", ".join(f"{n} {s}" for s, n in counts.items() if n),
                 f"{rate:.1f} units/s (last {min(now - t0, self.window_s) / 60:.0f} min)", f"ETA {eta}"]
        if len(running) > 1:
            slow = sorted(running, key=lambda k: progress[k].units_done / max(progress[k].units_total, 1))[:3]
            parts.append("slowest: " + ", ".join(f"{k} ({progress[k].units_done}/{progress[k].units_total})"
                                                 for k in slow))
        return " | ".join(parts)

    @staticmethod
    def _states(owned: list[tuple[int, int]], progress: list) -> list[str]:
        """running / pending / done / failed per shard: done from the store, the rest from its last attempt."""
        states = []
        for (d, t), p in zip(owned, progress):
            last = p.attempts[-1].state if p and p.attempts else "pending"
            # an interrupted shard (preempted or stopped at the time limit) waits for its requeue
            states.append("done" if d == t else {"running": "running", "interrupted": "pending",
                                                 "pending": "pending"}.get(last, "failed"))
        return states

    def _eta(self, left: int, running: list, incomplete: int) -> str:
        rates = [p.rate for p in running if p.rate > 0]
        if not left:
            return "0 s"
        if not rates:
            return "—"
        per_shard = sum(rates) / len(rates)
        return f"{left / (per_shard * min(self.parallelism, incomplete)):.0f} s"


def follow(sub: Submission, every: float = 5.0, poll: float = 0.2) -> None:
    """Print a progress line every ``every`` seconds when it changed, until every job of the submission has ended;
    the jobs' end is noticed within ``poll`` seconds, so the merge starts at once."""
    view = ProgressView(sub.rd, sub.cfg.shards, sub.cfg.cluster.array_parallelism)
    last, shown = "", -every
    while True:
        finished = all(j.done() for j in sub.jobs)
        if finished or time.monotonic() - shown >= every:
            line, shown = view.line(), time.monotonic()
            if line.split("] ", 1)[-1] != last or finished:
                print(line, flush=True)
                last = line.split("] ", 1)[-1]
        if finished:
            return
        time.sleep(poll)


def finish(sub: Submission, started: float, timer: PhaseTimer | None = None) -> int:
    """After the jobs end: name failed shards, then merge (locally) or show the merge job's outcome. With ``timer``
    (the run's phases so far) the merge is timed too and the phases are printed."""
    from judgelm.results.merge import IncompleteStore, merge_run  # scipy: imported while the shards compute
    from judgelm.results.tables import format_table

    timer = timer or PhaseTimer()
    # A local worker's failure leaves the shards it had finished complete: the store says which it did not finish.
    store = VerdictStore(sub.rd.store)
    done = (store.judge(sub.judge) if sub.judge else store).done()
    failed = [s for s, j in zip(sub.shards, sub.shard_jobs)
              if j.exception() is not None and not done[store.shard_slice(s, sub.cfg.shards)].all()]
    for s, j in zip(sub.shards, sub.shard_jobs):
        if s in failed:
            log.error("shard %d failed (log: %s): %s", s, j.paths.stderr, j.exception())
    if sub.merge_job is not None and sub.merge_job.exception() is not None:
        log.error("merge job %s failed (log: %s)", sub.merge_job.job_id, sub.merge_job.paths.stdout)
        print(sub.merge_job.exception(), file=sys.stderr)
        return 1
    try:
        with timer("merge"):
            m = merge_run(sub.rd.root, sub.cfg.allow_partial) if sub.merge_job is None else None
    except IncompleteStore as e:
        print(f"error: {e}\ncontinue with: make resubmit RUN={sub.cfg.run}", file=sys.stderr)
        return 1
    finally:
        if sub.merge_job is None and sub.cfg.cluster.server.enabled:
            request_stop(sub.rd.root)
    print(format_table(m) if m else sub.rd.table.read_text(), flush=True)
    print(f"run directory: {sub.rd.root}\n{timer.line('run')}\nwall time: {time.time() - started:.1f} s", flush=True)
    return 1 if failed else 0


def print_how_to_follow(sub: Submission) -> None:
    rd, run = sub.rd, sub.cfg.run
    ids = ",".join(x for x in (sub.array_job_id, sub.merge_job.job_id if sub.merge_job else None) if x)
    print(f"submitted run {run}: array job {sub.array_job_id} (shards {sub.shards}, name judgelm-judge:{run})"
          + (f", merge job {sub.merge_job.job_id} (judgelm-merge:{run}, afterany)" if sub.merge_job else ""))
    print(f"  follow:   make status RUN={run}")
    print(f"            sacct -j {ids} -o JobID%16,JobName%40,State,ExitCode,NodeList,Elapsed,Comment%60")
    print(f"  logs:     {rd.logs}/<jobid>_<task>/")
    print(f"  metrics:  {rd.table} once the merge job has run")
    print(f"  resume:   make resubmit RUN={run}   (after a cancel or failure; only unfinished shards)")


def launch(rd: RunDir, cfg: JudgeLaunchConfig, shards: list[int], started: float, wait_for: list[str] = ()) -> int:
    """Submit, then (unless a Slurm run is not waited for) follow to the end and report."""
    timer = PhaseTimer()  # the launcher's own phases; "create": from its start (imports included) to submitting
    timer.seconds["create"] = round(process_age() or time.time() - started, 3)
    with timer("shards"):
        sub = submit(rd, cfg, shards, wait_for)
    if cfg.cluster.executor == "slurm":
        print_how_to_follow(sub)
        if not cfg.wait:
            return 0
    # The merge's modules (scipy...) load while the shards run, not after them.
    threading.Thread(target=importlib.import_module, args=("judgelm.results.merge",), daemon=True).start()
    try:
        with timer("shards"):
            follow(sub)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"Shards stop after their current chunk; nothing judged is lost. Continue with: "
                                f"make resubmit RUN={cfg.run}") from None
    return finish(sub, started, timer)
