"""Submitting a run's shards and the job that closes it, following them, and reporting the outcome.

Every entry point that judges (``judge``, ``benchmark``, ``resubmit``, ``evaluate``) or generates answers
(``generate``) goes through ``launch``: one job array of shards, on Slurm a closing job after it (``afterany``: the
merge of a judging run, the export of a generation run), one line per submission in ``jobs.jsonl``, a compact
progress line while it runs, then the metrics (or the answers' summary) or the names of the shards that failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgelm.config import to_yaml
from judgelm.generation.config import model_id_of
from judgelm.generation.export import SUMMARY_FILE, IncompleteAnswers, export_run
from judgelm.generation.store import AnswerStore
from judgelm.judging.phases import PhaseTimer, process_age
from judgelm.judging.progress import read_progress
from judgelm.judging.store import ChunkLayout, DamagedStore, IncompleteStore, VerdictStore
from judgelm.rundir import RunDir, environment_hint
from launch.cluster import ClusterConfig, make_executor
from launch.configs import GenerateLaunchConfig, JudgeLaunchConfig
from launch.server import STOP_FILE, request_stop, submit_server
from launch.snapshot import snapshot_code
from launch.tasks import JOB_ERROR, GenerateShardTask, JudgeShardTask, ShardsTask, export_task, merge_task

log = logging.getLogger("judgelm.launch")

@dataclass(frozen=True)
class RunKind:
    """What a run's array computes and what closes the run: a judging run (shards judge, the merge closes) or a
    generation run (shards generate answers, the export closes). ``kind_of`` tells them apart by their store."""

    name: str  # job names: judgelm-<name>:<run>
    task: Callable[[], Any]  # the array task (a submitit Checkpointable)
    closing: str  # the job after the array: judgelm-<closing>:<run>
    close_job: Callable  # close_job(run_dir, allow_partial, stop_server), the closing job's callable
    close_here: Callable[[Path, bool], str]  # the same step in this process (local runs); returns what to print
    result: Callable[[RunDir], Path]  # the file the closing job leaves, printed after it
    open_store: Callable[[RunDir], ChunkLayout]
    incomplete: type[Exception]  # what closing an incomplete store raises
    describe: Callable[[Any], str] = lambda cfg: ""  # more for the jobs' comment
    close_ready: tuple[Callable[[], object], ...] = ()  # what ``close_here`` needs, readied while the shards run


def importing(*modules: str) -> tuple[Callable[[], object], ...]:
    return tuple(functools.partial(importlib.import_module, m) for m in modules)


def style_tokenizer() -> None:
    """The o200k encoding a leaderboard's style features count answer lengths with (0.34 s to read)."""
    importlib.import_module("judgelm.scoring.style").o200k()


def evaluated_models(cfg) -> str:
    """The generated models of an evaluation (``make evaluate MODELS=…``), for its judging jobs' comment."""
    paths = getattr(getattr(cfg, "evaluate", None), "generate", None)
    return f" models={','.join(model_id_of(p) for p in paths)}" if paths else ""


def merge_here(root: Path, allow_partial: bool) -> str:
    """A local run's merge, in this process; its modules (scipy...) were loaded while the shards ran."""
    from judgelm.results.merge import merge_run
    from judgelm.results.tables import format_table
    return format_table(merge_run(root, allow_partial))


JUDGE = RunKind("judge", JudgeShardTask, "merge", merge_task, merge_here, lambda rd: rd.table,
                lambda rd: VerdictStore(rd.store), IncompleteStore, evaluated_models,
                importing("judgelm.results.merge", "scipy.optimize", "scipy.stats"))  # the last two: lazy imports
EVALUATE = dataclasses.replace(JUDGE, close_ready=(*JUDGE.close_ready, *importing("matplotlib.pyplot"),
                                                   style_tokenizer))
"""A judging run that evaluates models: its merge draws the leaderboard's figures and counts its answers' style."""
GENERATE = RunKind("generate", GenerateShardTask, "export", export_task, export_run,
                   lambda rd: rd.root / SUMMARY_FILE, lambda rd: AnswerStore(rd.answer_store), IncompleteAnswers,
                   lambda cfg: f" model={cfg.model_id}")


def kind_of(rd: RunDir) -> RunKind:
    return GENERATE if rd.answer_store.exists() else JUDGE


def record_submission(rd: RunDir, kind: str, executor: str, job_ids: list[str], shards: list[int] = (),
                      merge_job_id: str | None = None, judge: str = "") -> None:
    """One line per submission, the same schema for judging and training runs (``make status`` reads it);
    ``judge`` names a panel judge's array (empty: the run's own judge)."""
    array = job_ids[0].split("_")[0] if kind in ("judge", "generate") and job_ids else None
    with rd.jobs.open("a") as f:
        f.write(json.dumps({"kind": kind, "judge": judge, "executor": executor, "shards": list(shards),
                            "job_ids": list(job_ids), "array_job_id": array, "merge_job_id": merge_job_id,
                            "submitted": time.time()}) + "\n")


def task_gpus(cfg: JudgeLaunchConfig | GenerateLaunchConfig) -> int | None:
    """GPUs per judging array task: the profile's ``gpus_per_task``, or from the model's size and ``gpu_mem_gb``
    (``judgelm.inference.gpu_plan``); ``None`` leaves the profile's ``gpus_per_node``."""
    c = cfg.cluster
    if not c.gpus_per_node or not c.gpu_mem_gb:
        return c.gpus_per_task or None
    from judgelm.inference.gpu_plan import plan_replica  # torch and transformers: not for status, which reads jobs here
    return plan_replica(cfg.model.path, c.gpu_mem_gb, c.gpus_per_task, cfg.model.dtype, cfg.engine.memory_margin).gpus


def gpu_plan_text(cfg: JudgeLaunchConfig | GenerateLaunchConfig) -> str:
    from judgelm.inference.gpu_plan import run_plan_text  # as in task_gpus
    c = cfg.cluster
    return run_plan_text(cfg.model.path, cfg.shards, c.gpu_mem_gb if c.gpus_per_node else None, c.gpus_per_task,
                         cfg.model.dtype, cfg.engine.memory_margin)


def dry_run_text(cfg: JudgeLaunchConfig) -> str:
    """What ``dry_run=true`` prints instead of creating and submitting anything: the resolved config, the GPU plan."""
    return f"# resolved config (cfg={cfg.fingerprint()})\n{to_yaml(cfg)}\n# plan\n{gpu_plan_text(cfg)}"


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
    cfg: JudgeLaunchConfig | GenerateLaunchConfig
    shards: list[int]
    shard_jobs: list  # the submitit job of each shard (locally a worker's job, shared by its shards)
    merge_job: object | None  # Slurm only: the closing job (merge, export) runs after the array (afterany)
    kind: RunKind = JUDGE
    judge: str = ""  # a panel judge's shards (``make panel``); empty: the run's own judge

    @property
    def array_job_id(self) -> str | None:
        return self.shard_jobs[0].job_id.split("_")[0] if self.shard_jobs else None

    @property
    def jobs(self) -> list:
        return self.shard_jobs + ([self.merge_job] if self.merge_job else [])


def submit(rd: RunDir, cfg: JudgeLaunchConfig | GenerateLaunchConfig, shards: list[int], wait_for: list[str] = (),
           running_here: int = 0, judge: str = "", kind: RunKind = JUDGE, after: str = "",
           chdir: Path | None = None, closing: bool = True) -> Submission:
    """Submit ``shards`` as one job array (and, on Slurm, the job that closes the run after it); record the job ids.

    ``wait_for`` are other jobs still working on this run (shards left to an earlier submission): the closing job
    waits for them too. ``running_here`` is how many local shards will share this machine in all (several runs
    submitted together); by default just these. ``judge`` names a panel judge (``make panel``) whose arrays the
    shards fill instead of the run's own. ``after`` is a Slurm dependency of the array (``afterok:123``: an
    evaluation's judging waits for its answers); ``chdir`` the code snapshot jobs start in (default: the run's);
    ``closing=False`` leaves the closing job out (an evaluation's build job exports its generation runs).
    """
    comment = (f"run={cfg.run}{kind.describe(cfg)} cfg={cfg.fingerprint()} shards={cfg.shards}"
               + (f" judge={judge}" if judge else ""))
    name = f"judgelm-{kind.name}:{cfg.run}" + (f":{judge}" if judge else "")
    slurm = cfg.cluster.executor == "slurm"
    chdir = (chdir or snapshot_code(rd.root / "code")) if slurm else None
    if not slurm:  # idle OpenMP threads must sleep, or processes sharing cores slow each other down several-fold
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    jobs, merge = [], None
    server = cfg.cluster.server.enabled and shards and not judge
    if server:  # the shards wait for its address; a resubmission starts a fresh one
        (rd.root / STOP_FILE).unlink(missing_ok=True)
        submit_server(rd.root, cfg.run, cfg.model.path, cfg.cluster, cfg.cluster.server, chdir)
    if shards:
        ex = make_executor(cfg.cluster, rd.logs, name, comment=comment, chdir=chdir, dependency=after or None,
                           gpus_per_node=task_gpus(cfg), python=cfg.engine.python or None)
        with ctrl_c_left_to_shards(not slurm):
            if slurm:  # Slurm gives every task its own cores
                n = len(shards)
                jobs = ex.map_array(kind.task(), [str(rd.root)] * n, shards, [cfg.shards] * n, [0] * n, [judge] * n)
            else:
                groups, threads = local_workers(shards, cfg.engine.backend, running_here)
                n = len(groups)
                workers = ex.map_array(ShardsTask(kind.task), [str(rd.root)] * n, groups, [cfg.shards] * n,
                                       [threads] * n, [judge] * n)
                worker_of = {s: w for w, g in zip(workers, groups) for s in g}
                jobs = [worker_of[s] for s in shards]
    if slurm and closing:
        closing_after = ([jobs[0].job_id.split("_")[0]] if jobs else []) + list(wait_for)
        ex = make_executor(merge_cluster(cfg.cluster), rd.logs, f"judgelm-{kind.closing}:{cfg.run}", comment=comment,
                           chdir=chdir, dependency="afterany:" + ":".join(closing_after) if closing_after else None)
        merge = ex.submit(kind.close_job, str(rd.root), cfg.allow_partial, bool(server))
    record_submission(rd, kind.name, cfg.cluster.executor, [j.job_id for j in jobs], shards,
                      merge.job_id if merge else None, judge=judge)
    return Submission(rd, cfg, shards, jobs, merge, kind, judge)


class ProgressView:
    """One line per refresh, readable at 64 shards as at 4: planned totals from the store, shards by state, the
    slowest running ones, the rate over the last minutes and an ETA for the waves ``array_parallelism`` allows."""

    def __init__(self, rd: RunDir, n_shards: int, parallelism: int, window_s: float = 180.0,
                 store: ChunkLayout | None = None):
        self.rd, self.n_shards, self.parallelism, self.window_s = rd, n_shards, parallelism, window_s
        self.store = store or VerdictStore(rd.store)
        self.started = time.time()
        self.history: deque[tuple[float, int]] = deque()

    def line(self) -> str:
        try:
            done_units = self.store.done()
        except KeyError:  # zarr's word for an array whose files are gone; a running shard may make the directory
            # again for its log, so the directory's presence says nothing
            raise FileNotFoundError(f"{self.rd.root}: the run directory was removed while the run was going, and "
                                    f"its shards cannot finish without it; start the run again (a new run=NAME)"
                                    ) from None
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
    the jobs' end is noticed within ``poll`` seconds, so the run is closed at once."""
    view = ProgressView(sub.rd, sub.cfg.shards, sub.cfg.cluster.array_parallelism, store=sub.kind.open_store(sub.rd))
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


# Slurm states that say why a job ended when the job itself could not (killed at a limit, a node lost).
_SLURM_CAUSES = {"OUT_OF_MEMORY": "out of memory: Slurm killed the task at its memory limit (cluster.mem_gb)",
                 "TIMEOUT": "time limit reached more often than cluster.max_num_timeout allows",
                 "NODE_FAIL": "its node failed", "CANCELLED": "cancelled", "PREEMPTED": "preempted"}


def _error_line(text: str) -> str | None:
    """The one line a job that failed for a known cause ended with (``launch.tasks.end_job``)."""
    lines = [x for x in text.splitlines() if x.startswith(JOB_ERROR)]
    return lines[-1][len(JOB_ERROR):] if lines else None


def _exception_line(e: BaseException) -> str:
    """The last line of the traceback a failed job left (``ValueError: ...``), or the first line of the message."""
    text = str(e)
    trace = text.split("-" * 22)
    body = [x for x in (trace[1] if len(trace) > 2 else text).splitlines() if x.strip()]
    return (body[-1] if len(trace) > 2 and body else (body[0] if body else type(e).__name__)).strip()


def failure_cause(rd: RunDir, shard: int | None, job) -> str:
    """Why a job failed, in one line: what the job said (its progress file, or its last ``error:`` line), else the
    state of the run's file system (a full disk also swallows the job's own words), else Slurm's state, else the
    last line of its traceback."""
    p = read_progress(rd.shard_progress(shard)) if shard is not None else None
    if p and p.attempts and p.attempts[-1].state == "failed" and p.attempts[-1].error:
        return p.attempts[-1].error
    try:
        said = _error_line(job.paths.stderr.read_text(errors="replace"))
    except OSError:
        said = None
    if said:
        return said.split(" failed: ", 1)[-1]
    hint = environment_hint(rd.root)
    if hint:
        return f"{hint} (the job could not write why; this is the run's file system now)"
    state = str(getattr(job, "state", "")).split(" ")[0]
    if state in _SLURM_CAUSES:
        return _SLURM_CAUSES[state]
    e = job.exception()
    return _exception_line(e) if e is not None else f"ended in state {state}"


def finish(sub: Submission, started: float, timer: PhaseTimer | None = None) -> int:
    """After the jobs end: name failed shards and why, then close the run here (local: merge or export) or show the
    closing job's outcome. With ``timer`` (the run's phases so far) the closing is timed too and the phases are
    printed."""
    timer = timer or PhaseTimer()
    # A local worker's failure leaves the shards it had finished complete: the store says which it did not finish.
    store = sub.kind.open_store(sub.rd)
    done = (store.judge(sub.judge) if sub.judge else store).readable_done()
    failed = {s: failure_cause(sub.rd, s, j) for s, j in zip(sub.shards, sub.shard_jobs)
              if j.exception() is not None and not done[store.shard_slice(s, sub.cfg.shards)].all()}
    for s, cause in failed.items():
        log.error("shard %d failed: %s (log: %s)", s, cause, sub.rd.logs)
    causes = sorted(set(failed.values()))
    if sub.merge_job is not None and sub.merge_job.exception() is not None:
        print(f"error: {sub.kind.closing} job {sub.merge_job.job_id} failed: "
              f"{failure_cause(sub.rd, None, sub.merge_job)}\ncontinue with: make resubmit RUN={sub.cfg.run}",
              file=sys.stderr)
        return 1
    try:
        with timer(sub.kind.closing):
            text = (sub.kind.close_here(sub.rd.root, sub.cfg.allow_partial) if sub.merge_job is None
                    else sub.kind.result(sub.rd).read_text())
    except (sub.kind.incomplete, DamagedStore) as e:
        why = "".join(f"\ncause: {c}" for c in causes)
        print(f"error: {e}{why}\ncontinue with: make resubmit RUN={sub.cfg.run}", file=sys.stderr)
        return 1
    finally:
        if sub.merge_job is None and sub.cfg.cluster.server.enabled:
            request_stop(sub.rd.root)
    print(text, flush=True)
    print(f"run directory: {sub.rd.root}\n{timer.line('run')}\nwall time: {time.time() - started:.1f} s", flush=True)
    return 1 if failed else 0


def print_how_to_follow(sub: Submission) -> None:
    rd, run, kind = sub.rd, sub.cfg.run, sub.kind
    ids = ",".join(x for x in (sub.array_job_id, sub.merge_job.job_id if sub.merge_job else None) if x)
    print(f"submitted run {run}: array job {sub.array_job_id} (shards {sub.shards}, name judgelm-{kind.name}:{run})"
          + (f", {kind.closing} job {sub.merge_job.job_id} (judgelm-{kind.closing}:{run}, afterany)"
             if sub.merge_job else ""))
    print(f"  follow:   make status RUN={run}")
    print(f"            sacct -j {ids} -o JobID%16,JobName%40,State,ExitCode,NodeList,Elapsed,Comment%60")
    print(f"  logs:     {rd.logs}/<jobid>_<task>/")
    print(f"  results:  {kind.result(rd)} once the {kind.closing} job has run")
    print(f"  resume:   make resubmit RUN={run}   (after a cancel or failure; only unfinished shards)")


def launch(rd: RunDir, cfg: JudgeLaunchConfig | GenerateLaunchConfig, shards: list[int], started: float,
           wait_for: list[str] = (), kind: RunKind = JUDGE, alongside: Callable[[], None] | None = None) -> int:
    """Submit, then (unless a Slurm run is not waited for) follow to the end and report. ``alongside`` is the
    launcher's own work that only the close needs (an evaluation's reference leaderboard): a local run does it
    while its worker starts on the other core; a Slurm run before submitting, as its closing job runs elsewhere."""
    timer = PhaseTimer()  # the launcher's own phases; "create": from its start (imports included) to submitting
    local = cfg.cluster.executor != "slurm"
    if alongside and not local:
        alongside()
    timer.seconds["create"] = round(process_age() or time.time() - started, 3)
    with timer("shards"):
        sub = submit(rd, cfg, shards, wait_for, kind=kind)
    return see_through(sub, started, timer, alongside if local else None)


def see_through(sub: Submission, started: float, timer: PhaseTimer | None = None,
                alongside: Callable[[], None] | None = None) -> int:
    """Follow a submission to its end and report, unless it is a Slurm run that is not waited for."""
    cfg = sub.cfg
    if cfg.cluster.executor == "slurm":
        print_how_to_follow(sub)
        if not cfg.wait:
            return 0
    return follow_to_end(sub, started, timer, alongside)


def follow_to_end(sub: Submission, started: float, timer: PhaseTimer | None = None,
                  alongside: Callable[[], None] | None = None) -> int:
    """Follow the shards, then close the run; ``alongside`` (and what the close needs readied: ``close_ready``) runs in
    a thread meanwhile and is done before the close."""
    timer = timer or PhaseTimer()
    steps = [*sub.kind.close_ready, *([alongside] if alongside else [])]
    with ThreadPoolExecutor(1, "alongside") as pool:
        done = [pool.submit(step) for step in steps]
        try:
            with timer("shards"):
                follow(sub)
        except KeyboardInterrupt:  # the steps are short and finish first: a resubmission's close needs them
            raise KeyboardInterrupt(f"Shards stop after their current chunk; nothing done is lost. Continue with: "
                                    f"make resubmit RUN={sub.cfg.run}") from None
        for f in done:
            f.result()
    return finish(sub, started, timer)
