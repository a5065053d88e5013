"""The callables that submitit runs on the nodes for a judging run."""

from __future__ import annotations

import logging
import signal
import sys

import submitit

from judgelm.merge import format_table, merge_run
from judgelm.preemption import StopRequest
from judgelm.shard import ShardResult, run_shard

log = logging.getLogger("judgelm.tasks")


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout, force=True)


class JudgeShardTask(submitit.helpers.Checkpointable):
    """One array task: judge a shard. Preemption-safe without any state of its own.

    On the requeue signal (USR2, sent by Slurm before the time limit or by a preemption) the shard finishes its
    current chunk, then submitit's own handler checkpoints this callable and requeues the job; the next attempt
    resumes from the store. Resuming needs no state here, so the default ``checkpoint`` (same callable, same
    arguments) is right. ``judge`` names a panel judge whose arrays the shard fills (``launch/panel.py``).
    """

    def __call__(self, run_dir: str, shard: int, n_shards: int, threads: int = 0, judge: str = "") -> ShardResult:
        setup_logging()
        stop = StopRequest()
        result = run_shard(run_dir, shard, n_shards, stop, threads=threads, judge=judge)
        if result.interrupted and stop.signum == signal.SIGUSR2:
            log.warning("shard %d stopped after its chunk with %d/%d units done: requeueing", shard,
                        result.units_done, result.units_total)
            stop.hand_over()  # submitit's handler: checkpoint, `scontrol requeue`, exit
        return result


def merge_task(run_dir: str, allow_partial: bool = False) -> dict:
    """The merge job: fails, naming the incomplete shards, unless every unit is done (or partial is allowed)."""
    setup_logging()
    m = merge_run(run_dir, allow_partial)
    print(format_table(m), flush=True)
    return m
