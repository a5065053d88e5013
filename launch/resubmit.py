"""``make resubmit RUN=…``: submit again only the shards whose chunks are incomplete, then a new merge (a
generation run: a new export; an evaluation still generating its answers: the rest of its DAG, ``launch/dag.py``).

    python -m launch.resubmit run=NAME [runs_dir=runs] [cluster=NAME] [cluster.key=value ...] [wait=true|false]

Which shards to run is decided from the store, never from Slurm's view of old jobs. Shards whose latest job is
still pending or running are left alone, so two jobs never write the same chunks. A run's config is fixed when it
is created; only where it runs (``cluster``) and ``wait`` may change.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from judgelm.config import ConfigError, load_config
from judgelm.judging.store import ChunkLayout, VerdictStore
from judgelm.rundir import RunDir
from launch.cli import run_main
from launch.configs import GenerateLaunchConfig, JudgeLaunchConfig, saved_judge_config
from launch.sacct import active
from launch.submission import GENERATE, kind_of, latest_jobs, launch, read_submissions

log = logging.getLogger("judgelm.resubmit")


@dataclass
class ResubmitConfig:
    run: str = ""
    """The run to continue (``<run>/pair`` for one of a benchmark run's judging runs)."""
    runs_dir: str = "runs"
    """Where the run directory is."""


def shards_to_run(rd: RunDir, n_shards: int, store: ChunkLayout | None = None) -> tuple[list[int], list[str]]:
    """Incomplete shards to submit, and the jobs of incomplete shards that are still queued or running. ``store``:
    the run's store (default: its verdict store)."""
    todo = (store or VerdictStore(rd.store)).incomplete_shards(n_shards)
    subs = read_submissions(rd)
    jobs, _ = latest_jobs(subs)
    # Only Slurm job ids mean anything to sacct; a local run's ids are process ids.
    slurm_ids = {j for s in subs if s.get("executor") == "slurm" for j in s["job_ids"]}
    still = set(active([jobs[k] for k in todo if jobs.get(k) in slurm_ids]))
    busy = [k for k in todo if jobs.get(k) in still]
    if busy:
        log.warning("shards %s still have a pending or running job; not resubmitting them", busy)
    return [k for k in todo if k not in busy], [jobs[k] for k in busy]


def resubmit(argv: list[str]) -> int:
    mine = [a for a in argv if a.partition("=")[0] in ("run", "runs_dir")]
    where = load_config(ResubmitConfig, None, mine)
    rd = RunDir.existing(where.runs_dir, where.run)
    if not rd.config.exists():
        raise ConfigError(f"{rd.root} is not a run (no config.yaml)")
    overrides = [a for a in argv if a not in mine]
    if rd.generated.is_dir() and not rd.store.exists():  # an evaluation still waiting for its answers
        from launch.dag import resubmit_dag
        return resubmit_dag(rd, overrides)
    kind = kind_of(rd)
    cfg = saved_judge_config(rd, overrides, GenerateLaunchConfig if kind is GENERATE else JudgeLaunchConfig)
    shards, busy = shards_to_run(rd, cfg.shards, kind.open_store(rd))
    log.info("run %s: resubmitting shards %s", cfg.run, shards or ("none" if busy else "none (every chunk is done)"))
    return launch(rd, cfg, shards, time.time(), wait_for=busy, kind=kind)


def main(argv: list[str] | None = None) -> int:
    return run_main(resubmit, __doc__, ResubmitConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
