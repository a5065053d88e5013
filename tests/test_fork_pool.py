"""Compute processes forked by the engine: results in order, failures surfaced, none left behind by a killed parent."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from judgelm.inference.fork_pool import ForkPool

REPO = Path(__file__).resolve().parents[1]


def square_unless_13(x: int) -> tuple[int, int]:
    if x == 13:
        raise ValueError("thirteen")
    return x * x, os.getpid()


def test_jobs_are_shared_between_the_processes_and_come_back_in_order():
    pool = ForkPool(square_unless_13, 2)
    out = pool.map(square_unless_13, list(range(12)))
    assert [x for x, _ in out] == [i * i for i in range(12)]
    assert pool.processes == 3
    with pytest.raises((RuntimeError, ValueError), match="thirteen"):  # raised here, or reported by a child
        pool.map(square_unless_13, list(range(20)))
    assert not pool.alive  # a failed map ends the pool; the engine forks a fresh one when asked again


def test_a_killed_parent_leaves_no_compute_process_behind():
    code = ("import os, signal\nfrom judgelm.inference.fork_pool import ForkPool\n"
            "pool = ForkPool(abs, 2)\npool.map(abs, [1, -2, 3])\n"
            "print(' '.join(str(p) for p in pool.pids), flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2
    deadline = time.time() + 30
    while time.time() < deadline and any(Path(f"/proc/{p}").exists() and "Z" not in
                                         Path(f"/proc/{p}/stat").read_text().split()[2] for p in pids):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]
                   for p in pids)


class Holder:
    def __init__(self):
        self.pool = ForkPool(self.work, 1)

    def work(self, x):
        return x


def test_an_engine_no_longer_referred_to_ends_its_compute_processes():
    holder = Holder()
    assert holder.pool.map(holder.work, [1, 2]) == [1, 2]
    pid = holder.pool.pids[0]
    del holder  # no reference cycle through the pool: freed at once, and its finalizer ends the child
    assert not Path(f"/proc/{pid}").exists()


def test_jobs_queued_while_a_submission_ends_are_computed_once_and_collected_by_theirs():
    pool = ForkPool(square_unless_13, 2)
    first, queued = pool.submit(list(range(8))), []
    out = pool.collect(square_unless_13, first, more=lambda: queued.append(pool.submit(list(range(20, 26)))))
    assert [x for x, _ in out] == [i * i for i in range(8)]
    assert len(queued) == 1  # asked for once, when nothing of the first submission was left to claim
    assert [x for x, _ in pool.collect(square_unless_13, queued[0])] == [i * i for i in range(20, 26)]
    assert pool.counter.value == len(pool.jobs) == 14  # each job claimed once
    pool.drop(pool.submit([30, 31]))  # no one collects these: thrown away, never mixed into another's results
    assert [x for x, _ in pool.map(square_unless_13, [2, 3])] == [4, 9]
    assert not pool.results


def test_a_chunks_worth_of_jobs_queued_while_a_child_sends_a_big_result_does_not_block():
    # Both ways more than a pipe holds: the child blocks sending its result until the parent reads, and a parent
    # sending the next jobs itself would block until the child reads them.
    code = ("from judgelm.inference.fork_pool import ForkPool\n"
            "pool = ForkPool(bytes, 1)\n"
            "first, big = pool.submit([8_000_000] * 3), [b'x' * 8_000_000]\n"
            "pool.collect(bytes, first, more=lambda: pool.submit([0] + big * 2))\n"
            "print('done', flush=True)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "done", out.stderr
