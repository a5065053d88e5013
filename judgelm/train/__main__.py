"""Train in this process (or in each process ``torchrun`` / the ``deepspeed`` launcher starts), no submission.

    python -m judgelm.train size=tiny run=NAME [key=value ...]
    DS_ACCELERATOR=cpu torchrun --nproc_per_node=2 -m judgelm.train size=tiny backend=deepspeed \\
        resources.cpu_tasks=2 run=NAME

``python -m launch.train`` is the usual entry point; it submits this same training as a (Slurm or local) job.
"""

from __future__ import annotations

import sys

from judgelm.judging.preemption import StopRequest
from judgelm.train.config import load_train_config, repo_path
from judgelm.train.loop import train


def main(argv: list[str]) -> int:
    cfg = load_train_config(argv)
    if not any(a.startswith("run=") for a in argv):
        # Every process derives the default name from its own clock: they could disagree.
        raise SystemExit("python -m judgelm.train needs run=NAME (all processes must agree on the run directory)")
    run_dir = repo_path(cfg.runs_dir) / cfg.run
    run_dir.mkdir(parents=True, exist_ok=True)
    result = train(cfg, run_dir, stop=StopRequest())
    return 0 if result.status == "finished" else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
