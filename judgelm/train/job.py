"""The training job as submitit runs it: checkpoint on the requeue signal, then let submitit requeue.

submitit's own USR2 handler (on rank 0) calls ``checkpoint()`` and requeues at once, from inside the signal
handler, wherever the training happens to be. That is too early for a distributed job: the other ranks may be
half-way through a collective, and the weights half-updated. So the job puts its own handler in front: it only
raises a flag; the loop agrees on it across ranks at the next step boundary, every rank writes its part of an
atomic checkpoint, and only then is submitit's handler invoked, which (on rank 0) calls ``checkpoint()`` below
and requeues the job. The requeued job runs ``__call__`` again and resumes from the latest complete checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

import submitit

from judgelm.preemption import StopRequest
from judgelm.train.config import TrainConfig
from judgelm.train.loop import TrainResult, train

log = logging.getLogger("judgelm.train")


class TrainJob(submitit.helpers.Checkpointable):
    """``TrainJob()(cfg, run_dir)``; submitit's inherited ``checkpoint()`` resubmits the same call."""

    def __call__(self, cfg: TrainConfig, run_dir: str) -> TrainResult:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        flag = StopRequest()
        result = train(cfg, Path(run_dir), stop=flag)
        if result.status == "preempted":
            flag.hand_over()
        return result
