"""``make resubmit RUN=…``: submit again only the shards whose chunks are incomplete, then a new merge (a
generation run: a new export; an evaluation still generating its answers: the rest of its DAG, ``launch/dag.py``).

    python -m launch.resubmit run=NAME [runs_dir=runs] [cluster=NAME] [cluster.key=value ...] [wait=true|false]

Which shards to run is decided from the store, never from Slurm's view of old jobs. Damaged chunks (a checksum
that fails, a chunk file lost) are first marked not judged, so their shards judge exactly those units again.
Shards whose latest job is still pending or running are left alone, so two jobs never write the same chunks; two
``make resubmit`` of one run at once take turns (a lock in the run directory), and the second finds the first's
jobs queued. A run's config is fixed when it is created; only where it runs (``cluster``) and ``wait`` may change.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from judgelm.config import ConfigError, load_config
from judgelm.judging.store import ChunkLayout, DamagedStore, VerdictStore
from judgelm.rundir import RunDir
from launch.cli import run_main
from launch.configs import GenerateLaunchConfig, JudgeLaunchConfig, saved_judge_config
from launch.sacct import active
from launch.submission import GENERATE, kind_of, latest_jobs, read_submissions, see_through, submit

log = logging.getLogger("judgelm.resubmit")


@dataclass
class ResubmitConfig:
    run: str = ""
    """The run to continue (``<run>/pair`` for one of a benchmark run's judging runs)."""
    runs_dir: str = "runs"
    """Where the run directory is."""


@contextlib.contextmanager
def submission_lock(rd: RunDir) -> Iterator[None]:
    """One submission of a run at a time: held from deciding what to run until its jobs are recorded."""
    with open(rd.root / ".submit.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def busy_shards(rd: RunDir, shards: list[int]) -> dict[int, str]:
    """Of ``shards``, those whose latest job is still queued or running, with that job."""
    subs = read_submissions(rd)
    jobs, _ = latest_jobs(subs)
    # Only Slurm job ids mean anything to Slurm; a local run's ids are process ids.
    slurm_ids = {j for s in subs if s.get("executor") == "slurm" for j in s["job_ids"]}
    still = set(active([jobs[k] for k in shards if jobs.get(k) in slurm_ids]))
    return {k: jobs[k] for k in shards if jobs.get(k) in still}


def repair_damage(rd: RunDir) -> None:
    """Mark the damaged chunks of shards that are not running as not judged (``VerdictStore.repair``)."""
    store = VerdictStore(rd.store, mode="r+")
    damage = store.verify()
    if not damage:
        return
    if any(d.judge is None for d in damage):
        raise DamagedStore(store.path, damage, rd.name)
    busy = busy_shards(rd, sorted({d.shard for d in damage}))
    for d in store.repair([d for d in damage if d.shard not in busy and d.judge == "verdicts"]):
        log.warning("damaged, marked not judged, to be judged again: %s", d)
    for d in damage:
        if d.shard in busy or d.judge != "verdicts":
            log.warning("damaged, left as it is (%s): %s", f"shard {d.shard} is still running as job {busy[d.shard]}"
                        if d.shard in busy else "a panel judge's: run its make panel again", d)


def shards_to_run(rd: RunDir, n_shards: int, store: ChunkLayout | None = None) -> tuple[list[int], list[str]]:
    """Incomplete shards to submit, and the jobs of incomplete shards that are still queued or running. ``store``:
    the run's store (default: its verdict store)."""
    todo = (store or VerdictStore(rd.store)).incomplete_shards(n_shards)
    busy = busy_shards(rd, todo)
    if busy:
        log.warning("shards %s still have a pending or running job; not resubmitting them", sorted(busy))
    return [k for k in todo if k not in busy], list(busy.values())


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
    started = time.time()
    with submission_lock(rd):
        if kind is not GENERATE:
            repair_damage(rd)
        shards, busy = shards_to_run(rd, cfg.shards, kind.open_store(rd))
        log.info("run %s: resubmitting shards %s", cfg.run,
                 shards or ("none" if busy else "none (every chunk is done)"))
        sub = submit(rd, cfg, shards, wait_for=busy, kind=kind)
    return see_through(sub, started)


def main(argv: list[str] | None = None) -> int:
    return run_main(resubmit, __doc__, ResubmitConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
