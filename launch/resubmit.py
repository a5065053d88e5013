"""``make resubmit RUN=…``: submit again only the shards whose chunks are incomplete, then a new merge.

    python -m launch.resubmit RUN [--runs-dir runs] [cluster=NAME] [cluster.key=value ...] [wait=true|false]

Which shards to run is decided from the store, never from Slurm's view of old jobs. Shards whose latest job is
still pending or running are left alone, so two jobs never write the same chunks.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import fields
from pathlib import Path

from omegaconf import OmegaConf

from judgelm.config import CONFIG_DIR, ConfigError
from judgelm.rundir import RunDir
from launch.judge import JudgeLaunchConfig, incomplete_shards, launch
from launch.sacct import active
from launch.status import latest_jobs, read_submissions
from launch.tasks import setup_logging

log = logging.getLogger("judgelm.resubmit")


def saved_config(rd: RunDir, overrides: list[str]) -> JudgeLaunchConfig:
    """The run's own config; only where it runs (``cluster``) and ``wait`` may change."""
    saved = OmegaConf.load(rd.config)
    # Runs made by other launchers save more (a model evaluation's ``evaluate``); the store already holds its effect.
    saved = OmegaConf.masked_copy(saved, [f.name for f in fields(JudgeLaunchConfig) if f.name in saved])
    cfg = OmegaConf.merge(OmegaConf.structured(JudgeLaunchConfig), saved)
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "cluster":
            path = CONFIG_DIR / "cluster" / f"{value}.yaml"
            if not path.is_file():
                choices = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
                raise ConfigError(f"no cluster config '{value}' (choices: {choices})")
            cfg = OmegaConf.merge(cfg, {"cluster": OmegaConf.load(path)})
        elif key == "wait" or key.startswith("cluster."):
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        else:
            raise ConfigError(f"{key}: a run's config is fixed when it is created; only cluster.* and wait can change")
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def shards_to_run(rd: RunDir, n_shards: int) -> tuple[list[int], list[str]]:
    """Incomplete shards to submit, and the jobs of incomplete shards that are still queued or running."""
    todo = incomplete_shards(rd, n_shards)
    subs = read_submissions(rd)
    jobs, _ = latest_jobs(subs)
    # Only Slurm job ids mean anything to sacct; a local run's ids are process ids.
    slurm_ids = {j for s in subs if s.get("executor") == "slurm" for j in s["job_ids"]}
    still = set(active([jobs[k] for k in todo if jobs.get(k) in slurm_ids]))
    busy = [k for k in todo if jobs.get(k) in still]
    if busy:
        log.warning("shards %s still have a pending or running job; not resubmitting them", busy)
    return [k for k in todo if k not in busy], [jobs[k] for k in busy]


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    ap = argparse.ArgumentParser(prog="launch.resubmit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("overrides", nargs="*", help="cluster=NAME, cluster.key=value, wait=true|false")
    args = ap.parse_intermixed_args(argv)
    rd = RunDir(Path(args.runs_dir).resolve() / args.run)
    if not rd.config.exists():
        raise SystemExit(f"no run {args.run} in {rd.root.parent}")
    try:
        cfg = saved_config(rd, args.overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shards, busy = shards_to_run(rd, cfg.shards)
    log.info("run %s: resubmitting shards %s", cfg.run, shards or ("none" if busy else "none (every chunk is done)"))
    return launch(rd, cfg, shards, time.time(), wait_for=busy)


if __name__ == "__main__":
    raise SystemExit(main())
