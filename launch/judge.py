"""``make judge``: create a run, submit one task per shard and a merge, show progress, print the metrics.

    python -m launch.judge [shards=4] [model.path=DIR] [data.source=pandalm|FILE] [run=NAME] [cluster=local] ...

Every ``key=value`` overrides a field of ``configs/judge.yaml`` (see ``judgelm.judge_config`` for the fields);
``cluster=NAME`` picks a profile from ``configs/cluster/``. Running the same ``run=`` again resumes it: only the
shards with unfinished chunks are submitted.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from judgelm.benchmarks import load_dataset
from judgelm.config import CONFIG_DIR, config_hash, load_config, to_yaml
from judgelm.judge_config import JudgeConfig
from judgelm.merge import format_table, merge_run
from judgelm.progress import read_progress
from judgelm.prompts import Mode
from judgelm.records import write_rejects
from judgelm.rundir import RunDir
from judgelm.shard import StopRequest, run_shard
from judgelm.store import VerdictStore
from judgelm.units import plan_units
from launch.cluster import ClusterConfig, make_executor

log = logging.getLogger("judgelm.launch")


@dataclass
class JudgeLaunchConfig(JudgeConfig):
    """A judging run plus where it runs."""

    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """The cluster profile (``cluster=NAME`` loads ``configs/cluster/NAME.yaml``)."""
    wait: bool = True
    """Wait for the shards and the merge and print the metrics. With Slurm, ``false`` returns right after
    submission and prints the commands to follow the run."""


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout, force=True)


# --- what runs on the nodes ---------------------------------------------------------------------------------------

def judge_shard(run_dir: str, shard: int, n_shards: int, threads: int = 0):
    """Array task body: one shard. Runs again after a requeue and resumes from the store."""
    setup_logging()
    return run_shard(run_dir, shard, n_shards, StopRequest(), threads=threads)


def merge_job(run_dir: str, allow_partial: bool = False) -> dict:
    """Merge job body: fails (with the missing shards named) if the store is incomplete."""
    setup_logging()
    m = merge_run(run_dir, allow_partial)
    print(format_table(m))
    return m


# --- creating a run ---------------------------------------------------------------------------------------------

def _library_part(cfg: JudgeLaunchConfig) -> JudgeConfig:
    return JudgeConfig(**{f.name: getattr(cfg, f.name) for f in fields(JudgeConfig)})


def create_run(cfg: JudgeLaunchConfig) -> RunDir:
    """Validate the data, lay out the units, create the store and save the resolved config."""
    rd = RunDir(Path(cfg.runs_dir).resolve() / cfg.run)
    source = cfg.data.source
    if Path(source).exists():  # fix the path now: shards must not depend on the submitter's cwd
        cfg.data.source = str(Path(source).resolve())
    loaded = load_dataset(cfg.data.source, cfg.data.skip_invalid)
    records = loaded.records[: cfg.data.limit] if cfg.data.limit else loaded.records
    if not records:
        raise SystemExit(f"no valid records in {source}")
    mode = Mode(cfg.prompt.mode)
    plan = plan_units(records, mode, cfg.prompt.reference, cfg.prompt.orders)
    n_scores = {Mode.PAIR: 2, Mode.SINGLE: 1}.get(mode) or max(len(r.answers) for r in records)
    # Every shard needs at least one chunk to own; shrink chunks rather than leave shards idle.
    chunk_units = max(1, min(cfg.store.chunk_units, math.ceil(len(plan) / cfg.shards)))
    cfg.store.chunk_units = chunk_units
    model_path = Path(cfg.model.path)
    if model_path.exists():
        cfg.model.path = str(model_path.resolve())
    rd.root.mkdir(parents=True, exist_ok=False)
    rd.logs.mkdir()
    if loaded.rejects:
        write_rejects(loaded.rejects, rd.rejects)
        log.warning("skipped %d invalid records (see %s)", len(loaded.rejects), rd.rejects)
    k = cfg.engine.logprobs_topk
    extras = {"top_ids": ((cfg.engine.new_tokens(), k), "int32", 0),
              "top_logprobs": ((cfg.engine.new_tokens(), k), "float16", float("nan"))} if k else None
    VerdictStore.create(rd.store, records, plan, n_scores, chunk_units, extra_arrays=extras, attrs={
        "run": cfg.run, "model": cfg.model.path, "data": source, "mode": mode.value, "n_shards": cfg.shards,
        "config_hash": config_hash(_library_part(cfg)), "rejected_records": len(loaded.rejects),
        "tiny_judge": is_tiny_judge(cfg.model.path),
    })
    rd.config.write_text(to_yaml(cfg))
    log.info("run %s: %d records, %d units in %d chunks of %d, %d shards", cfg.run, len(records), len(plan),
             math.ceil(len(plan) / chunk_units), chunk_units, cfg.shards)
    return rd


def is_tiny_judge(model_path: str) -> bool:
    """Whether the judge is toy-sized (under 100M parameters by its config), so its metrics get a warning."""
    try:
        c = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    h, n_layers, vocab = c.get("hidden_size", 0), c.get("num_hidden_layers", 0), c.get("vocab_size", 0)
    return 0 < 12 * n_layers * h * h + 2 * vocab * h < 100_000_000


def incomplete_shards(rd: RunDir, n_shards: int) -> list[int]:
    """Shards that own at least one chunk not done, decided from the store alone."""
    store = VerdictStore(rd.store)
    done = store.done()
    return [k for k in range(n_shards)
            if any(not done[store.chunk_slice(c)].all() for c in store.shard_chunks(k, n_shards))]


# --- watching -------------------------------------------------------------------------------------------------------

def progress_line(rd: RunDir, n_shards: int, started: float) -> str:
    ps = [read_progress(rd.shard_progress(k)) for k in range(n_shards)]
    total = sum(p.units_total for p in ps if p) or 1
    done = sum(p.units_done for p in ps if p)
    rate = sum(p.rate for p in ps if p and p.attempts and p.attempts[-1].state == "running")
    eta = f"{(total - done) / rate:.0f} s" if rate > 0 and done < total else "—"
    shards = " ".join(f"{k}:{p.units_done}/{p.units_total}" if p else f"{k}:queued" for k, p in enumerate(ps))
    return (f"[{time.time() - started:5.0f} s] {done}/{total} units ({100 * done / total:.1f} %), "
            f"{rate:.1f} units/s, ETA {eta} | {shards}")


def wait_with_progress(jobs, rd: RunDir, n_shards: int, started: float, every: float = 5.0) -> None:
    last = ""
    while not all(j.done() for j in jobs):
        line = progress_line(rd, n_shards, started)
        if line != last:
            print(line, flush=True)
            last = line
        time.sleep(every)
    print(progress_line(rd, n_shards, started), flush=True)


# --- main -------------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    setup_logging()
    started = time.time()
    cfg = load_config(JudgeLaunchConfig, CONFIG_DIR / "judge.yaml", argv if argv is not None else sys.argv[1:],
                      groups=("cluster",))
    cfg.engine.validate()
    cfg.run = cfg.run or time.strftime("judge-%Y%m%d-%H%M%S")
    rd = RunDir(Path(cfg.runs_dir).resolve() / cfg.run)
    if rd.config.exists():
        shards = incomplete_shards(rd, cfg.shards)
        log.info("run %s exists: resuming shards %s", cfg.run, shards or "none")
    else:
        create_run(cfg)
        shards = list(range(cfg.shards))
    threads = 0
    if cfg.cluster.executor != "slurm":  # share this machine's cores between the shards that run at once
        threads = max(1, (os.cpu_count() or 1) // max(1, len(shards)))
    ex = make_executor(cfg.cluster, rd.logs, f"judgelm-judge:{cfg.run}",
                       comment=f"run={cfg.run} cfg={config_hash(_library_part(cfg))}")
    jobs = ex.map_array(judge_shard, [str(rd.root)] * len(shards), shards, [cfg.shards] * len(shards),
                        [threads] * len(shards)) if shards else []
    with rd.jobs.open("a") as f:
        f.write(json.dumps({"kind": "judge", "shards": shards, "job_ids": [j.job_id for j in jobs],
                            "submitted": time.time()}) + "\n")
    wait_with_progress(jobs, rd, cfg.shards, started)
    failed = [s for s, j in zip(shards, jobs) if j.exception() is not None]
    for s, j in zip(shards, jobs):
        if s in failed:
            log.error("shard %d failed (log: %s):\n%s", s, j.paths.stderr, j.exception())
    m = merge_run(rd.root, cfg.allow_partial)
    print(format_table(m))
    print(f"run directory: {rd.root}\nwall time: {time.time() - started:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
