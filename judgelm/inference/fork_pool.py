"""Compute processes forked from the engine's own, so that one engine uses every CPU core it is given.

On a CPU, a small judge's operations are too small for torch's intra-op threads to help (two threads barely beat
one on the tiny judge), and Python threads would share the GIL. Batches are independent, so they run side by side
in processes instead: forked once from the process that loaded the model, they share its weights (copy-on-write,
never written) and start in milliseconds, with nothing imported or loaded again. This is how vLLM-CPU uses a
machine too (its scheduler and its worker in separate processes).

Jobs join one queue for the pool's life (``submit``), each numbered; the parent and the children claim them in
that order from a shared counter, so a slow job never leaves the others idle. ``collect`` returns one submission's
results while this process computes too; a caller that knows its next jobs hands them over (``more``) when nothing
is left to claim, so that the processes done first start on them while the last jobs of this submission end and
while the caller uses its results, rather than idle until the next call. The result of a job does not depend on the
process that ran it. Children use one torch thread each, so they never start OpenMP after the fork (the same rule
as PyTorch's DataLoader workers); they ignore the stop signals (SIGINT, SIGTERM, USR2), which the parent handles at
its own safe points, and exit when the parent's end of their pipe closes: when the pool is closed or
garbage-collected, or the parent exits or is killed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
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
    jobs: dict[int, object] = {}  # this process's copy of the queue's unclaimed jobs, by number
    try:
        while True:
            first, new = conn.recv()
            jobs.update(zip(range(first, first + len(new)), new))
            while (i := _claim(counter, first + len(new))) is not None:
                job = jobs.pop(i)
                jobs = {k: v for k, v in jobs.items() if k > i}  # those before i were claimed by others
                try:
                    conn.send(("ok", i, fn(job)))
                except Exception:
                    conn.send(("error", i, traceback.format_exc()))
    except (EOFError, OSError):  # the parent closed the pool or exited
        return


def _send_jobs(outbox: queue.SimpleQueue, conns: list) -> None:
    """The pool's sending thread: a child busy sending a result reads no jobs, and a parent blocked sending it a
    chunk's jobs (more than a pipe holds) would never read that result."""
    while (item := outbox.get()) is not None:
        for conn in conns:
            try:
                conn.send(item)
            except OSError:  # the pool was closed meanwhile
                return


def _claim(counter, n: int) -> int | None:
    with counter.get_lock():
        i = counter.value
        if i >= n:
            return None
        counter.value = i + 1
    return i


class ForkPool:
    """``children`` processes forked now, each running ``fn(job)`` for the queued jobs beside this one.

    The pool keeps no reference to ``fn`` (the children have their own copy): an engine that holds its pool is
    freed, and its children end, as soon as nothing else refers to it."""

    def __init__(self, fn: Callable, children: int, threads: int = 1):
        self.threads = threads
        self.counter = mp.get_context("fork").Value("q", 0)
        self.conns, self.pids = [], []
        self.jobs: list = []  # every job submitted, by number (None once computed here)
        self.results: dict[int, object] = {}  # results not collected yet, by job number
        self.dropped: list[range] = []  # submissions no one will collect: their results are thrown away
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
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=_send_jobs, args=(self.outbox, self.conns), name="fork-pool-send", daemon=True).start()
        self._finalizer = weakref.finalize(self, ForkPool._stop, self.conns, self.pids, self.outbox)

    @property
    def processes(self) -> int:
        return len(self.pids) + 1

    def map(self, fn: Callable, jobs: list) -> list:
        """``[fn(job) for job in jobs]``, computed by this process (with ``fn``) and the children side by side."""
        return self.collect(fn, self.submit(jobs))

    def submit(self, jobs: list) -> range:
        """Queue ``jobs`` after those already queued; returns their numbers, for ``collect`` or ``drop``."""
        first = len(self.jobs)
        self.jobs += jobs
        self.outbox.put((first, jobs))
        return range(first, len(self.jobs))

    def collect(self, fn: Callable, numbers: range, more: Callable[[], None] | None = None) -> list:
        """The results of the jobs ``numbers``, in order. This process computes queued jobs too (with ``fn``), in
        queue order. ``more`` (which may ``submit`` the next jobs) is called once, as soon as no job is left to
        claim and at the latest before returning, so the children go on while the caller uses these results."""
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            while any(i not in self.results for i in numbers):
                self._receive(block=False)
                i = _claim(self.counter, len(self.jobs))
                if more is not None and self.counter.value >= len(self.jobs):  # the last job claimed
                    more, call = None, more
                    call()
                    if i is None:
                        continue
                if i is not None:
                    job, self.jobs[i] = self.jobs[i], None
                    if not self._is_dropped(i):
                        self.results[i] = fn(job)
                elif any(i not in self.results for i in numbers):
                    self._receive(block=True)
            if more is not None:
                more()
            return [self.results.pop(i) for i in numbers]
        except BaseException:
            self.close()  # a child may be mid-job: this pool is done; the engine forks a new one when asked again
            raise
        finally:
            torch.set_num_threads(previous)

    def drop(self, numbers: range) -> None:
        """Submitted jobs no one will collect: their results are thrown away (those still queued are computed by
        whichever child claims them, as children cannot be told)."""
        self.dropped.append(numbers)
        for i in numbers:
            self.results.pop(i, None)

    def _is_dropped(self, i: int) -> bool:
        return any(i in r for r in self.dropped)

    def _receive(self, block: bool) -> None:
        for conn in wait(self.conns, timeout=None if block else 0):
            try:
                tag, i, result = conn.recv()
            except EOFError:
                raise RuntimeError("a compute process of the engine died; its batch is judged again when the "
                                   "shard is resumed") from None
            if tag == "error":
                raise RuntimeError(f"a compute process of the engine failed:\n{result}")
            if not self._is_dropped(i):
                self.results[i] = result

    @property
    def alive(self) -> bool:
        """Not closed, and every child still running (one killed between calls leaves the pool unusable)."""
        return self._finalizer.alive and all(_running(pid) for pid in self.pids)

    def close(self) -> None:
        self._finalizer()

    @staticmethod
    def _stop(conns: list, pids: list, outbox: queue.SimpleQueue) -> None:
        outbox.put(None)
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
