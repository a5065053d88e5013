"""Compute processes forked from the engine's own, so that one engine uses every CPU core it is given.

On a CPU, a small judge's operations are too small for torch's intra-op threads to help (two threads barely beat
one on the tiny judge), and Python threads would share the GIL. Batches are independent, so they run side by side
in processes instead: forked once from the process that loaded the model, they share its weights (copy-on-write,
never written) and start in milliseconds, with nothing imported or loaded again. This is how vLLM-CPU uses a
machine too (its scheduler and its worker in separate processes).

Each ``map`` sends the jobs to every child; the parent and the children then claim jobs from a shared counter,
biggest first, until none is left, so a slow job never leaves the others idle. The result of a job does not depend
on the process that ran it. Children use one torch thread each, so they never start OpenMP after the fork (the
same rule as PyTorch's DataLoader workers); they ignore the stop signals (SIGINT, SIGTERM, USR2), which the parent
handles at its own safe points, and exit when the parent's end of their pipe closes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import traceback
import weakref
from collections.abc import Callable
from multiprocessing.connection import wait

import torch


def _child(fn: Callable, conn, counter, threads: int, parent_ends: list) -> None:
    for end in parent_ends:  # inherited copies of the parent's ends: open, they would hide the parent's exit
        end.close()
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
        signal.signal(s, signal.SIG_IGN)
    torch.set_num_threads(threads)
    try:
        while True:
            jobs = conn.recv()
            try:
                while (i := _claim(counter, len(jobs))) is not None:
                    conn.send((i, fn(jobs[i])))
                conn.send(("done", None))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    except (EOFError, OSError):  # the parent closed the pool or exited
        return


def _claim(counter, n: int) -> int | None:
    with counter.get_lock():
        i = counter.value
        if i >= n:
            return None
        counter.value = i + 1
    return i


class ForkPool:
    """``children`` processes forked now, running ``fn(job)`` for the jobs of each ``map`` together with this one."""

    def __init__(self, fn: Callable, children: int, threads: int = 1):
        ctx = mp.get_context("fork")
        self.fn, self.threads = fn, threads
        self.counter = ctx.Value("q", 0)
        self.conns, self.procs = [], []
        for _ in range(children):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_child, args=(fn, child, self.counter, threads, [*self.conns, parent]),
                            daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)
        self._finalizer = weakref.finalize(self, ForkPool._stop, self.conns, self.procs)

    @property
    def processes(self) -> int:
        return len(self.procs) + 1

    def map(self, jobs: list) -> list:
        """``[fn(job) for job in jobs]``, computed by this process and the children side by side."""
        if not jobs:
            return []
        out: list = [None] * len(jobs)
        self.counter.value = 0
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for conn in self.conns:
                conn.send(jobs)
            while (i := _claim(self.counter, len(jobs))) is not None:
                out[i] = self.fn(jobs[i])
            self._collect(out)
        except BaseException:
            self.close()  # a child may be mid-job: this pool is done; the engine forks a new one when asked again
            raise
        finally:
            torch.set_num_threads(previous)
        return out

    def _collect(self, out: list) -> None:
        busy = {conn: p for conn, p in zip(self.conns, self.procs)}
        while busy:
            for ready in wait([*busy, *(p.sentinel for p in busy.values())]):
                if isinstance(ready, int):  # a child's sentinel: it died
                    dead = next(p for p in busy.values() if p.sentinel == ready)
                    raise RuntimeError(f"a compute process of the engine died (exit code {dead.exitcode}); "
                                       f"its batch is judged again when the shard is resumed")
                i, result = ready.recv()
                if i == "error":
                    raise RuntimeError(f"a compute process of the engine failed:\n{result}")
                if i == "done":
                    del busy[ready]
                else:
                    out[i] = result

    @property
    def alive(self) -> bool:
        """Not closed, and every child still running (one killed between calls leaves the pool unusable)."""
        return self._finalizer.alive and all(p.is_alive() for p in self.procs)

    def close(self) -> None:
        self._finalizer()

    @staticmethod
    def _stop(conns: list, procs: list) -> None:
        for conn in conns:
            conn.close()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                os.kill(p.pid, signal.SIGKILL)
                p.join()
