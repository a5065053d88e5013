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
handles at its own safe points, and exit when the parent's end of their pipe closes: when the pool is closed or
garbage-collected, or the parent exits or is killed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
import weakref
from collections.abc import Callable
from multiprocessing.connection import wait

import torch


def _child(fn: Callable, conn, counter, threads: int) -> None:
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
    """``children`` processes forked now, each running ``fn(job)`` for the jobs of a ``map`` beside this one.

    The pool keeps no reference to ``fn`` (the children have their own copy): an engine that holds its pool is
    freed, and its children end, as soon as nothing else refers to it."""

    def __init__(self, fn: Callable, children: int, threads: int = 1):
        self.threads = threads
        self.counter = mp.get_context("fork").Value("q", 0)
        self.conns, self.pids = [], []
        for _ in range(children):
            parent, child = mp.Pipe()
            pid = os.fork()
            if pid == 0:  # the child: close every parent end it inherited, or the parent's exit would go unseen
                for conn in (*self.conns, parent):
                    conn.close()
                code = 0
                try:
                    _child(fn, child, self.counter, threads)
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)
            child.close()
            self.conns.append(parent)
            self.pids.append(pid)
        self._finalizer = weakref.finalize(self, ForkPool._stop, self.conns, self.pids)

    @property
    def processes(self) -> int:
        return len(self.pids) + 1

    def map(self, fn: Callable, jobs: list) -> list:
        """``[fn(job) for job in jobs]``, computed by this process (with ``fn``) and the children side by side."""
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
                out[i] = fn(jobs[i])
            self._collect(out)
        except BaseException:
            self.close()  # a child may be mid-job: this pool is done; the engine forks a new one when asked again
            raise
        finally:
            torch.set_num_threads(previous)
        return out

    def _collect(self, out: list) -> None:
        busy = list(self.conns)
        while busy:
            for conn in wait(busy):
                try:
                    i, result = conn.recv()
                except EOFError:
                    raise RuntimeError("a compute process of the engine died; its batch is judged again when the "
                                       "shard is resumed") from None
                if i == "error":
                    raise RuntimeError(f"a compute process of the engine failed:\n{result}")
                if i == "done":
                    busy.remove(conn)
                else:
                    out[i] = result

    @property
    def alive(self) -> bool:
        """Not closed, and every child still running (one killed between calls leaves the pool unusable)."""
        return self._finalizer.alive and all(_running(pid) for pid in self.pids)

    def close(self) -> None:
        self._finalizer()

    @staticmethod
    def _stop(conns: list, pids: list) -> None:
        for conn in conns:
            conn.close()
        deadline = time.monotonic() + 5
        for pid in pids:
            while _running(pid):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.01)


def _running(pid: int) -> bool:
    """Whether our child ``pid`` still runs (reaping it if it has ended)."""
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:  # reaped already
        return False
