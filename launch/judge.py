"""``make judge``: create a run, submit one array task per shard and a merge job, follow it, print the metrics.

    python -m launch.judge [shards=4] [model.path=DIR] [data.source=pandalm|FILE] [run=NAME] [cluster=local] ...

Every ``key=value`` overrides a field of ``configs/judge.yaml`` (listed below); ``cluster=NAME`` picks a profile
from ``configs/cluster/``. A run that stopped part-way is continued with ``make resubmit RUN=NAME``, which
submits only the shards with unfinished chunks.
"""

from __future__ import annotations

import time
from pathlib import Path

from judgelm.config import to_yaml
from judgelm.judging.run import create_run, plan_run
from launch.cli import exit_now, run_main
from launch.configs import JudgeLaunchConfig, load_judge_config
from launch.server import point_shards_at_server
from launch.submission import dry_run_text, launch


def judge(argv: list[str]) -> int:
    started = time.time()
    cfg = load_judge_config(argv)
    point_shards_at_server(cfg, Path(cfg.runs_dir).resolve() / cfg.run)
    cfg.engine.validate()
    cfg.merge.validate()
    if cfg.dry_run:
        print(dry_run_text(cfg))
        return 0
    rd = create_run(plan_run(cfg), to_yaml(cfg))
    return launch(rd, cfg, list(range(cfg.shards)), started)


def main(argv: list[str] | None = None) -> int:
    return run_main(judge, __doc__, JudgeLaunchConfig, argv)


if __name__ == "__main__":
    exit_now(main())
