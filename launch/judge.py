"""``make judge``: create a run, submit one array task per shard and a merge job, follow it, print the metrics.

    python -m launch.judge [shards=4] [model.path=DIR] [data.source=pandalm|FILE] [run=NAME] [cluster=local] ...

Every ``key=value`` overrides a field of ``configs/judge.yaml`` (fields: ``judgelm.judge_config``);
``cluster=NAME`` picks a profile from ``configs/cluster/``. A run that stopped part-way is continued with
``python -m launch.resubmit RUN`` (``make resubmit``), which submits only the shards with unfinished chunks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from judgelm.benchmarks import load_dataset
from judgelm.benchmarks.suites import check_mode
from judgelm.config import CONFIG_DIR, config_hash, load_config, to_yaml
from judgelm.judge_config import JudgeConfig
from judgelm.merge import IncompleteStore, format_table, merge_run
from judgelm.progress import read_progress
from judgelm.prompts import Mode
from judgelm.records import write_rejects
from judgelm.rundir import RunDir
from judgelm.store import VerdictStore, plan_chunks
from judgelm.units import plan_units, spread_records
from launch.cluster import ClusterConfig, make_executor
from launch.snapshot import snapshot_code
from launch.tasks import JudgeShardTask, merge_task, setup_logging

log = logging.getLogger("judgelm.launch")


@dataclass
class JudgeLaunchConfig(JudgeConfig):
    """A judging run plus where it runs."""

    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """The cluster profile (``cluster=NAME`` loads ``configs/cluster/NAME.yaml``)."""
    wait: bool = True
    """Follow the run until its metrics are printed. With Slurm, ``false`` returns right after submission and
    prints the commands to follow the run. The local executor always waits."""


def library_part(cfg: JudgeLaunchConfig) -> JudgeConfig:
    return JudgeConfig(**{f.name: getattr(cfg, f.name) for f in fields(JudgeConfig)})


def is_tiny_judge(model_path: str) -> bool:
    """Whether the judge is toy-sized (under 100M parameters by its config), so its metrics carry a warning."""
    try:
        c = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    h, n_layers, vocab = c.get("hidden_size", 0), c.get("num_hidden_layers", 0), c.get("vocab_size", 0)
    return 0 < 12 * n_layers * h * h + 2 * vocab * h < 100_000_000


# --- creating a run ---------------------------------------------------------------------------------------------

def create_run(cfg: JudgeLaunchConfig) -> RunDir:
    """Validate the data, lay out the units, create the store and save the resolved config."""
    rd = RunDir(Path(cfg.runs_dir).resolve() / cfg.run)
    if rd.root.exists():
        raise SystemExit(f"run {cfg.run} already exists in {rd.root.parent}; continue it with "
                         f"`make resubmit RUN={cfg.run}` or choose another RUN")
    source = cfg.data.source
    if Path(source).exists():  # absolute paths: jobs must not depend on the submitter's working directory
        cfg.data.source = str(Path(source).resolve())
    if Path(cfg.model.path).exists():
        cfg.model.path = str(Path(cfg.model.path).resolve())
    if cfg.engine.python:  # the shards' interpreter, as an absolute path jobs can start from anywhere
        if not os.access(cfg.engine.python, os.X_OK):
            raise FileNotFoundError(f"engine.python={cfg.engine.python} is not an executable Python; for the "
                                    f"vllm backend on a CPU machine run `make vllm-env` first")
        cfg.engine.python = os.path.abspath(cfg.engine.python)
    mode = Mode(cfg.prompt.mode)
    check_mode(cfg.data.source, mode.value)
    loaded = load_dataset(cfg.data.source, cfg.data.skip_invalid)
    records = loaded.records[: cfg.data.limit] if cfg.data.limit else loaded.records
    if not records:
        raise SystemExit(f"no valid records in {source}")
    plan = spread_records(plan_units(records, mode, cfg.prompt.reference, cfg.prompt.orders))
    n_scores = {Mode.PAIR: 2, Mode.SINGLE: 1}.get(mode) or len(records[0].answers)
    chunk, shards = plan_chunks(len(plan), cfg.shards, cfg.store.chunk_units)
    if shards < cfg.shards:
        log.warning("%d units fill only %d shards, not %d", len(plan), shards, cfg.shards)
    cfg.store.chunk_units, cfg.shards = chunk, shards
    rd.root.mkdir(parents=True)
    rd.logs.mkdir()
    if loaded.rejects:
        write_rejects(loaded.rejects, rd.rejects)
        log.warning("skipped %d invalid records (see %s)", len(loaded.rejects), rd.rejects)
    k = cfg.engine.logprobs_topk
    extras = {"top_ids": ((cfg.engine.new_tokens(), k), "int32", 0),
              "top_logprobs": ((cfg.engine.new_tokens(), k), "float16", float("nan"))} if k else None
    VerdictStore.create(rd.store, records, plan, n_scores, cfg.store.chunk_units, extra_arrays=extras, attrs={
        "run": cfg.run, "model": cfg.model.path, "data": source, "mode": mode.value, "n_shards": cfg.shards,
        "config_hash": config_hash(library_part(cfg)), "rejected_records": len(loaded.rejects),
        "tiny_judge": is_tiny_judge(cfg.model.path), "created": time.time(),
    })
    rd.config.write_text(to_yaml(cfg))
    log.info("run %s: %d records, %d units in %d chunks of %d, %d shards", cfg.run, len(records), len(plan),
             math.ceil(len(plan) / cfg.store.chunk_units), cfg.store.chunk_units, cfg.shards)
    return rd


def incomplete_shards(rd: RunDir, n_shards: int) -> list[int]:
    """Shards owning at least one chunk that is not done, decided from the store alone."""
    store = VerdictStore(rd.store)
    done = store.done()
    return [k for k in range(n_shards) if not done[store.shard_slice(k, n_shards)].all()]


# --- submitting -----------------------------------------------------------------------------------------------------

def merge_cluster(c: ClusterConfig) -> ClusterConfig:
    """The merge needs one CPU, no GPU: its own partition (or the shards' one) and no GPU constraint."""
    return dataclasses.replace(c, partition=c.merge_partition or c.partition, constraint=None, gpus_per_node=0,
                               cpus_per_task=1, mem_gb=c.merge_mem_gb, timeout_min=c.merge_timeout_min, nodes=1)


@dataclass
class Submission:
    shards: list[int]
    shard_jobs: list  # submitit jobs, one per shard
    merge_job: object | None  # Slurm only: the merge runs after the array (afterany)

    @property
    def array_job_id(self) -> str | None:
        return self.shard_jobs[0].job_id.split("_")[0] if self.shard_jobs else None


def submit(rd: RunDir, cfg: JudgeLaunchConfig, shards: list[int], wait_for: list[str] = (),
           running_here: int = 0) -> Submission:
    """Submit ``shards`` as one job array (and, on Slurm, a merge job after it); record the job ids.

    ``wait_for`` are other jobs still working on this run (shards left to an earlier submission): the merge waits
    for them too. ``running_here`` is how many local shards will share this machine in all (several runs
    submitted together); by default just these.
    """
    comment = f"run={cfg.run} cfg={config_hash(library_part(cfg))} shards={cfg.shards}"
    slurm = cfg.cluster.executor == "slurm"
    chdir = snapshot_code(rd.root / "code") if slurm else None
    # Locally, share this machine's cores between the shards that run at once; Slurm gives each its own. Idle
    # OpenMP threads must sleep rather than spin, or shards sharing cores slow each other down several-fold.
    threads = 0 if slurm else max(1, (os.cpu_count() or 1) // max(1, running_here or len(shards)))
    if not slurm:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    jobs, merge = [], None
    if shards:
        ex = make_executor(cfg.cluster, rd.logs, f"judgelm-judge:{cfg.run}", comment=comment, chdir=chdir,
                           python=cfg.engine.python or None)
        jobs = ex.map_array(JudgeShardTask(), [str(rd.root)] * len(shards), shards, [cfg.shards] * len(shards),
                            [threads] * len(shards))
    if slurm:
        after = ([jobs[0].job_id.split("_")[0]] if jobs else []) + list(wait_for)
        ex = make_executor(merge_cluster(cfg.cluster), rd.logs, f"judgelm-merge:{cfg.run}", comment=comment,
                           chdir=chdir, dependency="afterany:" + ":".join(after) if after else None)
        merge = ex.submit(merge_task, str(rd.root), cfg.allow_partial)
    sub = Submission(shards, jobs, merge)
    with rd.jobs.open("a") as f:
        f.write(json.dumps({"kind": "judge", "executor": cfg.cluster.executor, "shards": shards,
                            "job_ids": [j.job_id for j in jobs], "array_job_id": sub.array_job_id,
                            "merge_job_id": merge.job_id if merge else None, "submitted": time.time()}) + "\n")
    return sub


# --- following ------------------------------------------------------------------------------------------------------

def progress_line(rd: RunDir, n_shards: int, started: float) -> str:
    ps = [read_progress(rd.shard_progress(k)) for k in range(n_shards)]
    total = sum(p.units_total for p in ps if p)
    done = sum(p.units_done for p in ps if p)
    rate = sum(p.rate for p in ps if p and p.attempts and p.attempts[-1].state == "running")
    eta = f"{(total - done) / rate:.0f} s" if rate > 0 and done < total else "—"
    shards = " ".join(f"{k}:{p.units_done}/{p.units_total}" if p else f"{k}:waiting" for k, p in enumerate(ps))
    pct = f"{100 * done / total:.1f} %" if total else "—"
    return f"[{time.time() - started:5.0f} s] {done}/{total or '?'} units ({pct}), {rate:.1f} units/s, ETA {eta} | {shards}"


def follow(sub: Submission, rd: RunDir, n_shards: int, started: float, every: float = 5.0) -> None:
    """Print a progress line whenever it changes until every job of the submission has ended."""
    jobs = sub.shard_jobs + ([sub.merge_job] if sub.merge_job else [])
    last = ""
    while True:
        finished = all(j.done() for j in jobs)
        line = progress_line(rd, n_shards, started)
        if line != last or finished:
            print(line, flush=True)
            last = line
        if finished:
            return
        time.sleep(every)


def report(sub: Submission, rd: RunDir, cfg: JudgeLaunchConfig, started: float) -> int:
    """After the jobs end: name failed shards, then merge (locally) or show the merge job's outcome."""
    failed = [s for s, j in zip(sub.shards, sub.shard_jobs) if j.exception() is not None]
    for s, j in zip(sub.shards, sub.shard_jobs):
        if s in failed:
            log.error("shard %d failed (log: %s): %s", s, j.paths.stderr, j.exception())
    if sub.merge_job is not None and sub.merge_job.exception() is not None:
        log.error("merge job %s failed (log: %s)", sub.merge_job.job_id, sub.merge_job.paths.stdout)
        print(sub.merge_job.exception(), file=sys.stderr)
        return 1
    try:
        m = merge_run(rd.root, cfg.allow_partial) if sub.merge_job is None else None
    except IncompleteStore as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_table(m) if m else rd.table.read_text(), flush=True)
    print(f"run directory: {rd.root}\nwall time: {time.time() - started:.1f} s", flush=True)
    return 1 if failed else 0


def print_how_to_follow(sub: Submission, rd: RunDir) -> None:
    ids = ",".join(x for x in (sub.array_job_id, sub.merge_job.job_id if sub.merge_job else None) if x)
    print(f"submitted run {rd.name}: array job {sub.array_job_id} (shards {sub.shards}, name judgelm-judge:{rd.name})"
          + (f", merge job {sub.merge_job.job_id} (judgelm-merge:{rd.name}, afterany)" if sub.merge_job else ""))
    print(f"  follow:   make status RUN={rd.name}")
    print(f"            sacct -j {ids} -o JobID%16,JobName%40,State,ExitCode,NodeList,Elapsed,Comment%60")
    print(f"  logs:     {rd.logs}/<jobid>_<task>/")
    print(f"  metrics:  {rd.table} once the merge job has run")
    print(f"  resume:   make resubmit RUN={rd.name}   (after a cancel or failure; only unfinished shards)")


def launch(rd: RunDir, cfg: JudgeLaunchConfig, shards: list[int], started: float, wait_for: list[str] = ()) -> int:
    sub = submit(rd, cfg, shards, wait_for)
    if cfg.cluster.executor == "slurm" and not cfg.wait:
        print_how_to_follow(sub, rd)
        return 0
    if cfg.cluster.executor == "slurm":
        print_how_to_follow(sub, rd)
    follow(sub, rd, cfg.shards, started)
    return report(sub, rd, cfg, started)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    started = time.time()
    cfg = load_config(JudgeLaunchConfig, CONFIG_DIR / "judge.yaml", argv if argv is not None else sys.argv[1:],
                      groups=("cluster",))
    cfg.run = cfg.run or time.strftime("judge-%Y%m%d-%H%M%S")
    try:
        cfg.engine.validate()
        rd = create_run(cfg)
    except (ValueError, FileNotFoundError) as e:  # bad input: say what and where, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return launch(rd, cfg, list(range(cfg.shards)), started)


if __name__ == "__main__":
    raise SystemExit(main())
