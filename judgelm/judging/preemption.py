"""The requeue signal, caught so that work stops at a safe point before the job is requeued.

submitit's own USR2 handler checkpoints and requeues at once, from inside the signal handler, wherever the work
happens to be: mid-chunk for a judging shard (the chunk is lost), mid-collective for a distributed training step.
``StopRequest`` replaces it (and SIGTERM's) with a flag the work polls at its own boundaries (a committed chunk,
a finished optimizer step); once the work is safe, ``hand_over`` runs the handler that was there before, which
under submitit checkpoints the callable, runs ``scontrol requeue`` and exits.
"""

from __future__ import annotations

import logging
import signal

log = logging.getLogger("judgelm.judging.preemption")


class StopRequest:
    """Set by the requeue signal (USR2) or SIGTERM (preemption, scancel). Call it to ask whether to stop."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGUSR2, signal.SIGTERM)):
        self.signum: int | None = None
        self._previous = {s: signal.signal(s, self._handle) for s in signals}

    def _handle(self, signum, frame) -> None:
        log.warning("received %s: stopping at the next safe point", signal.Signals(signum).name)
        self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None

    def hand_over(self) -> None:
        """Run the handler the signal would have reached without us (under submitit: requeue and exit)."""
        previous = self._previous.get(self.signum) if self.signum is not None else None
        if callable(previous):
            previous(self.signum, None)
