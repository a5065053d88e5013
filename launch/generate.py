"""``make generate``: a model's answers to a question set, as a job array writing a store of its own run.

    python -m launch.generate model.path=DIR [questions.source=alpaca_eval|mt_bench|FILE] [shards=4]
        [cluster=local] [run=NAME] [engine.max_new_tokens=N] [generate.n=1] ...

Creates ``runs/<run>/`` (the answer store ``answers.zarr``, ``config.yaml``), takes from the answer cache every
answer it already holds, submits one task per shard that has answers left and, on Slurm, an export job after the
array; the run ends with FastChat's ``model_answer/<model>.jsonl`` and ``question.jsonl`` and AlpacaEval's
``alpaca_eval_outputs.json`` in the run directory. Chunks are committed whole: ``make status RUN=NAME`` follows it
and ``make resubmit RUN=NAME`` continues it after a cancel or a failure. Every ``key=value`` overrides a field of
``configs/generate.yaml`` (listed below).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from judgelm.config import to_yaml
from judgelm.generation.run import create_generation, incomplete_shards, plan_generation
from launch.cli import run_main
from launch.configs import GenerateLaunchConfig, load_generate_config
from launch.server import point_shards_at_server
from launch.submission import GENERATE, gpu_plan_text, launch


def generate(argv: list[str]) -> int:
    started = time.time()
    cfg = load_generate_config(argv)
    point_shards_at_server(cfg, Path(cfg.runs_dir).resolve() / cfg.run)
    cfg.validate()
    if cfg.dry_run:
        print(f"# resolved config (cfg={cfg.fingerprint()})\n{to_yaml(cfg)}\n# plan\n{gpu_plan_text(cfg)}")
        return 0
    planned = plan_generation(cfg)
    if planned.qset.note:
        logging.getLogger("launch.generate").info("%s", planned.qset.note)
    rd = create_generation(planned, to_yaml(cfg))
    return launch(rd, cfg, incomplete_shards(rd, cfg.shards), started, kind=GENERATE)


def main(argv: list[str] | None = None) -> int:
    return run_main(generate, __doc__, GenerateLaunchConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
