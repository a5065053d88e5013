"""``make resubmit RUN=…``: submit again only the shards whose chunks are incomplete, then a new merge.

    python -m launch.resubmit RUN [--runs-dir runs] [cluster=NAME] [cluster.key=value ...] [wait=true|false]

Which shards to run is decided from the store, never from Slurm's view of old jobs. Shards whose latest job is
still pending or running are left alone, so two jobs never write the same chunks.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from omegaconf import OmegaConf

from judgelm.config import CONFIG_DIR, ConfigError
from judgelm.rundir import RunDir
from launch.judge import JudgeLaunchConfig, incomplete_shards, launch
from launch.sacct import sacct
from launch.status import latest_jobs, read_submissions
from launch.tasks import setup_logging

log = logging.getLogger("judgelm.resubmit")
ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "SUSPENDED", "CONFIGURING", "COMPLETING", "RESIZING")


def saved_config(rd: RunDir, overrides: list[str]) -> JudgeLaunchConfig:
    """The run's own config; only where it runs (``cluster``) and ``wait`` may change."""
    cfg = OmegaConf.merge(OmegaConf.structured(JudgeLaunchConfig), OmegaConf.load(rd.config))
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "cluster":
            cfg = OmegaConf.merge(cfg, {"cluster": OmegaConf.load(CONFIG_DIR / "cluster" / f"{value}.yaml")})
        elif key == "wait" or key.startswith("cluster."):
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        else:
            raise ConfigError(f"{key}: a run's config is fixed when it is created; only cluster.* and wait can change")
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def shards_to_run(rd: RunDir, n_shards: int) -> list[int]:
    todo = incomplete_shards(rd, n_shards)
    jobs, _ = latest_jobs(read_submissions(rd))
    rows = sacct([jobs[k] for k in todo if k in jobs])
    busy = [k for k in todo if rows.get(jobs.get(k, ""), {}).get("State", "").split(" ")[0] in ACTIVE]
    if busy:
        log.warning("shards %s still have a pending or running job; not resubmitting them", busy)
    return [k for k in todo if k not in busy]


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
    cfg = saved_config(rd, args.overrides)
    shards = shards_to_run(rd, cfg.shards)
    log.info("run %s: resubmitting shards %s", cfg.run, shards or "none (every chunk is done)")
    return launch(rd, cfg, shards, time.time())


if __name__ == "__main__":
    raise SystemExit(main())
