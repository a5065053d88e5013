"""The callables submitit runs on the nodes: a judging shard, the merge, and a training job."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import submitit

from judgelm.judging.preemption import StopRequest
from launch.cli import setup_logging
from launch.server import request_stop

if TYPE_CHECKING:
    from judgelm.judging.shard import ShardResult
    from judgelm.train.config import TrainConfig
    from judgelm.train.loop import TrainResult

log = logging.getLogger("judgelm.tasks")


def exit_without_teardown() -> None:
    """Once the job's result is written, end the process at once: tearing down an interpreter that holds torch,
    transformers and a model takes seconds (tens on a loaded machine), during which the run waits for the job to end.
    Everything is written and closed by then; logs are flushed first, and the exit status is kept (1 after an
    uncaught exception). Only in a job's own process (submitit's runner), never in one that runs tasks in-process."""
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    if getattr(main, "name", "") != "submitit.core._submit":
        return

    def _exit() -> None:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(1 if getattr(sys, "last_value", None) is not None else 0)

    if not getattr(exit_without_teardown, "registered", False):
        exit_without_teardown.registered = True
        atexit.register(_exit)


class JudgeShardTask(submitit.helpers.Checkpointable):
    """One array task: judge a shard. Preemption-safe without any state of its own.

    On the requeue signal (USR2, sent by Slurm before the time limit or by a preemption) the shard finishes its
    current chunk, then submitit's own handler checkpoints this callable and requeues the job; the next attempt
    resumes from the store. Resuming needs no state here, so the default ``checkpoint`` (same callable, same
    arguments) is right. ctrl-C at a local run's terminal (SIGINT) also stops the shard after its chunk, quietly.
    ``judge`` names a panel judge whose arrays the shard fills (``launch/panel.py``).
    """

    def __call__(self, run_dir: str, shard: int, n_shards: int, threads: int = 0, judge: str = "") -> ShardResult:
        from judgelm.judging.shard import run_shard  # torch: loaded where a shard runs, not where jobs are named
        setup_logging()
        stop = StopRequest((signal.SIGUSR2, signal.SIGTERM, signal.SIGINT))
        result = run_shard(run_dir, shard, n_shards, stop, threads=threads, judge=judge)
        if result.interrupted and stop.signum == signal.SIGUSR2:
            log.warning("shard %d stopped after its chunk with %d/%d units done: requeueing", shard,
                        result.units_done, result.units_total)
            stop.hand_over()  # submitit's handler: checkpoint, `scontrol requeue`, exit
        exit_without_teardown()
        return result


class JudgeShardsTask:
    """A local worker: several shards of a run one after the other in one process, so a machine never runs more
    judging processes than it has cores and the model is loaded once (``make_engine``). Each shard still commits
    its own chunks and keeps its own progress; a stop (ctrl-C) ends the worker after the current chunk."""

    def __call__(self, run_dir: str, shards: list[int], n_shards: int, threads: int = 0,
                 judge: str = "") -> list[ShardResult]:
        results = []
        for shard in shards:
            results.append(JudgeShardTask()(run_dir, shard, n_shards, threads, judge))
            if results[-1].interrupted:
                break
        return results


def merge_task(run_dir: str, allow_partial: bool = False, stop_server: bool = False) -> dict:
    """The merge job: fails, naming the incomplete shards, unless every unit is done (or partial is allowed).
    With ``stop_server`` it then shuts down the run's judge server, whatever the merge's outcome."""
    from judgelm.results.merge import merge_run  # scipy and more: not for the shards, which unpickle this module
    from judgelm.results.tables import format_table
    setup_logging()
    try:
        m = merge_run(run_dir, allow_partial)
    finally:
        if stop_server:
            request_stop(run_dir)
    print(format_table(m), flush=True)
    return m


class TrainJob(submitit.helpers.Checkpointable):
    """``TrainJob()(cfg, run_dir)``: train, and on the requeue signal checkpoint first, then let submitit requeue.

    submitit's own USR2 handler (on rank 0) calls ``checkpoint()`` and requeues at once, from inside the signal
    handler, wherever the training happens to be: too early for a distributed job, whose other ranks may be half-way
    through a collective. ``StopRequest`` only raises a flag; the loop agrees on it across ranks at the next step
    boundary, every rank writes its part of an atomic checkpoint, and only then is submitit's handler invoked, which
    (on rank 0) calls the inherited ``checkpoint()`` and requeues; the requeued job resumes from that checkpoint.
    """

    def __call__(self, cfg: TrainConfig, run_dir: str) -> TrainResult:
        from judgelm.train.loop import train  # as in JudgeShardTask
        setup_logging()
        flag = StopRequest()
        result = train(cfg, Path(run_dir), stop=flag)
        if result.status == "preempted":
            flag.hand_over()
        return result
