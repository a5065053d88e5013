"""The callables submitit runs on the nodes: a judging or generation shard, the merge or export after the array,
and a training job."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import submitit

from judgelm.judging.preemption import StopRequest
from judgelm.judging.store import DamagedStore
from judgelm.rundir import environment_fault
from launch.cli import setup_logging
from launch.server import request_stop

if TYPE_CHECKING:
    from judgelm.judging.progress import ShardResult
    from judgelm.train.config import TrainConfig
    from judgelm.train.loop import TrainResult

log = logging.getLogger("judgelm.tasks")
JOB_ERROR = "error: "  # the start of the one line a job that fails for a known cause ends with (on stderr)


def exit_without_teardown() -> None:
    """Once the job's result is written, end the process at once: tearing down an interpreter that holds torch,
    transformers and a model takes seconds (tens on a loaded machine), during which the run waits for the job to end.
    Everything is written and closed by then; logs are flushed first, and the exit status is kept (1 after an
    uncaught exception or ``end_job``: a local worker may end that way in a later shard). Only in a job's own
    process (submitit's runner), never in one that runs tasks in-process."""
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    if getattr(main, "name", "") != "submitit.core._submit":
        return

    def _exit() -> None:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        failed = getattr(sys, "last_value", None) is not None or getattr(end_job, "called", False)
        os._exit(1 if failed else 0)

    if not getattr(exit_without_teardown, "registered", False):
        exit_without_teardown.registered = True
        atexit.register(_exit)


def end_job(line: str) -> NoReturn:
    """End a job that failed for a known cause (the environment, a damaged or incomplete store) with one line on
    stderr and exit code 1: the cause is the message, so no traceback (submitit prints one for any exception).
    Writing may itself fail (the disk that is full holds the log); the exit code still says it failed."""
    end_job.called = True  # for exit_without_teardown, whose exit would otherwise be 0
    try:
        print(JOB_ERROR + line, file=sys.stderr, flush=True)
    except OSError:
        pass
    raise SystemExit(1)


class ShardTask(submitit.helpers.Checkpointable):
    """One array task: run a shard (``run_shard``, judging's or generation's). Preemption-safe without any state of
    its own.

    On the requeue signal (USR2, sent by Slurm before the time limit or by a preemption) the shard finishes its
    current chunk, then submitit's own handler checkpoints this callable and requeues the job; the next attempt
    resumes from the store. Resuming needs no state here, so the default ``checkpoint`` (same callable, same
    arguments) is right. ctrl-C at a local run's terminal (SIGINT) also stops the shard after its chunk, quietly.
    """

    def __call__(self, run_dir: str, shard: int, n_shards: int, threads: int = 0, judge: str = "",
                 then: int | None = None) -> ShardResult:
        setup_logging()
        stop = StopRequest((signal.SIGUSR2, signal.SIGTERM, signal.SIGINT))
        try:
            result = self.run_shard(run_dir, shard, n_shards, stop, threads, judge, then)
        except (OSError, MemoryError, RuntimeError) as e:
            cause = environment_fault(e) or (str(e) if isinstance(e, DamagedStore) else None)
            if cause is None:
                raise  # a bug: its traceback is what helps
            end_job(f"shard {shard} failed: {cause}")
        if result.interrupted and stop.signum == signal.SIGUSR2:
            log.warning("shard %d stopped after its chunk with %d/%d units done: requeueing", shard,
                        result.units_done, result.units_total)
            stop.hand_over()  # submitit's handler: checkpoint, `scontrol requeue`, exit
        exit_without_teardown()
        return result

    def run_shard(self, run_dir: str, shard: int, n_shards: int, stop: StopRequest, threads: int,
                  judge: str, then: int | None) -> ShardResult:
        raise NotImplementedError


class JudgeShardTask(ShardTask):
    """A judging shard; ``judge`` names a panel judge whose arrays it fills (``launch/panel.py``); ``then``: the
    shard its local worker runs next (``ShardsTask``), whose first chunk it prepares during its own last one."""

    def run_shard(self, run_dir, shard, n_shards, stop, threads, judge, then):
        from judgelm.judging.shard import run_shard  # torch: loaded where a shard runs, not where jobs are named
        return run_shard(run_dir, shard, n_shards, stop, threads=threads, judge=judge, then=then)


class GenerateShardTask(ShardTask):
    """A generation shard (``make generate``, and an evaluation's generation arrays)."""

    def run_shard(self, run_dir, shard, n_shards, stop, threads, judge, then):
        from judgelm.generation.shard import run_shard  # as in JudgeShardTask
        return run_shard(run_dir, shard, n_shards, stop, threads=threads)


class ShardsTask:
    """A local worker: several shards of a run (judging's or generation's: ``task``) one after the other in one
    process, so a machine never runs more compute processes than it has cores and the model is loaded once
    (``make_engine``). Each shard still commits its own chunks and keeps its own progress; a stop (ctrl-C) ends the
    worker after the current chunk. A shard that fails for a known cause (its one ``error:`` line written) does not
    keep the next ones from running, as in an array; the worker then exits 1."""

    def __init__(self, task: type[ShardTask] = JudgeShardTask):
        self.task = task

    def __call__(self, run_dir: str, shards: list[int], n_shards: int, threads: int = 0,
                 judge: str = "") -> list[ShardResult]:
        results, failed = [], False
        for shard, then in zip(shards, [*shards[1:], None]):
            try:
                results.append(self.task()(run_dir, shard, n_shards, threads, judge, then))
            except SystemExit:  # end_job: the cause is written; the other shards may still do their part
                failed = True
                continue
            if results[-1].interrupted:
                break
        if failed:
            raise SystemExit(1)
        return results


def merge_task(run_dir: str, allow_partial: bool = False, stop_server: bool = False) -> dict:
    """The merge job: fails, naming the incomplete shards, unless every unit is done (or partial is allowed).
    With ``stop_server`` it then shuts down the run's judge server, whatever the merge's outcome."""
    # scipy and more: not for the shards, which unpickle this module
    from judgelm.results.merge import IncompleteStore, merge_run
    from judgelm.results.tables import format_table
    setup_logging()
    try:
        m = merge_run(run_dir, allow_partial)
    except (IncompleteStore, DamagedStore, OSError) as e:
        cause = str(e) if isinstance(e, (IncompleteStore, DamagedStore)) else environment_fault(e)
        if cause is None:
            raise
        end_job(f"merge failed: {cause}")
    finally:
        if stop_server:
            request_stop(run_dir)
    print(format_table(m), flush=True)
    return m


def export_task(run_dir: str, allow_partial: bool = False, stop_server: bool = False) -> str:
    """The job after a generation array: write the answer files (``judgelm.generation.export``); fails, naming the
    incomplete shards, unless every answer is there (or partial is allowed)."""
    from judgelm.generation.export import export_run

    setup_logging()
    try:
        summary = export_run(run_dir, allow_partial)
    finally:
        if stop_server:
            request_stop(run_dir)
    print(summary, flush=True)
    return summary


def build_task(run_dir: str) -> str:
    """An evaluation's build job (``launch/dag.py``): once its models' answers are generated, export them and write
    the judging run's store, which the judging array (``afterok`` on this job) then judges."""
    from launch.dag import build_judging

    setup_logging()
    summary = build_judging(run_dir)
    print(summary, flush=True)
    return summary


class TrainJob(submitit.helpers.Checkpointable):
    """``TrainJob()(cfg, run_dir)``: train, and on the requeue signal checkpoint first, then let submitit requeue.

    submitit's own USR2 handler (on rank 0) calls ``checkpoint()`` and requeues at once, from inside the signal
    handler, wherever the training happens to be: too early for a distributed job, whose other ranks may be half-way
    through a collective. ``StopRequest`` only raises a flag; the loop agrees on it across ranks at the next step
    boundary, every rank writes its part of an atomic checkpoint, and only then is submitit's handler invoked, which
    (on rank 0) calls the inherited ``checkpoint()`` and requeues; the requeued job resumes from that checkpoint.
    """

    def __call__(self, cfg: TrainConfig, run_dir: str) -> TrainResult:
        from judgelm.train.loop import train  # torch: loaded where the job runs
        setup_logging()
        flag = StopRequest()
        result = train(cfg, Path(run_dir), stop=flag)
        if result.status == "preempted":
            flag.hand_over()
        return result
