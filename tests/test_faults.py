"""Faults an operator meets, on real files and processes (issue 23): a damaged store, a full disk, a vanished judge,
and what the environment can do to a job, each said in one line that names the cause and the path, then repaired
with the command the line gives."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from judgelm import cli as judgelm_cli
from judgelm.judging.preemption import StopRequest
from judgelm.judging.progress import read_progress
from judgelm.judging.shard import run_shard
from judgelm.judging.store import VerdictStore
from judgelm.rundir import RunDir, environment_fault
from launch import judge as launch_judge
from launch import resubmit as launch_resubmit
from launch import verify as launch_verify
from launch.status import status_table
from launch.tasks import merge_task
from tests.conftest import write_pairs
from tests.test_judge_run import new_run

VERDICTS = ("scores", "status", "text", "prompt_tokens", "new_tokens", "truncated", "done")


def snapshot(rd: RunDir) -> dict[str, np.ndarray]:
    store = VerdictStore(rd.store)
    return {name: store.verdicts(name) for name in VERDICTS}


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for name in VERDICTS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_damaged_chunk_is_named_shown_verified_and_judged_again(tmp_path, random_judge, capsys):
    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    rd = new_run(tmp_path, random_judge, data, "hurt", "shards=2", "store.chunk_units=4", "verdict_cache=false")
    for k in range(2):
        run_shard(rd.root, k, 2, threads=1)
    before = snapshot(rd)
    store = VerdictStore(rd.store)
    chunk = store.shard_chunks(1, 2)[0]
    units = store.chunk_slice(chunk)
    store._chunk_file("verdicts/scores", chunk).write_bytes(b"16 bytes garbage")
    where = f"verdicts/scores chunk {chunk} (units {units.start}-{units.stop - 1}, shard 1): checksum mismatch"
    capsys.readouterr()

    assert judgelm_cli.main(["merge", str(rd.root)]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and where in err and "make resubmit RUN=hurt" in err and "Traceback" not in err
    assert not rd.metrics.exists()  # no number computed from it
    with pytest.raises(SystemExit) as e:  # the merge job on a cluster: one line and exit code 1, no traceback
        merge_task(str(rd.root))
    assert e.value.code == 1 and capsys.readouterr().err.strip().endswith("re-judges exactly these units")

    table = status_table(rd)
    assert "1 DAMAGED" in table and f"{24 - 4}/24 units" in table and f"damaged: {where}" in table
    assert launch_verify.main(["run=hurt", f"runs_dir={tmp_path}"]) == 1
    out, err = capsys.readouterr()
    assert f"damaged: {where}" in out and "error: " in err

    assert launch_resubmit.main(["run=hurt", f"runs_dir={tmp_path}"]) == 0
    capsys.readouterr()
    assert read_progress(rd.shard_progress(1)).attempts[-1].units_judged == 4  # exactly the damaged units
    assert len(read_progress(rd.shard_progress(0)).attempts) == 1  # the undamaged shard was not run again
    assert_same(snapshot(rd), before)
    assert launch_verify.main(["run=hurt", f"runs_dir={tmp_path}"]) == 0
    assert "intact" in capsys.readouterr().out and rd.metrics.exists()


def test_a_judge_whose_weights_vanished_is_named_by_the_shards_and_the_summary(tmp_path, random_judge, capsys):
    judge = shutil.copytree(random_judge, tmp_path / "judge")
    (judge / "model.safetensors").unlink()  # the run is created (config and tokenizer load), the shards cannot load it
    data = write_pairs(tmp_path / "pairs.jsonl", 4)
    assert launch_judge.main([f"model.path={judge}", f"data.source={data}", "run=gone", f"runs_dir={tmp_path}",
                              "shards=2"]) == 1
    out, err = capsys.readouterr()
    cause = f"the judge's model directory holds no weights: {judge}"
    assert f"shard 0 failed: {cause}" in out and f"shard 1 failed: {cause}" in out
    assert f"cause: {cause}" in err and "make resubmit RUN=gone" in err
    rd = RunDir(tmp_path / "gone")
    logs = [log.read_text() for log in rd.logs.rglob("*_log.err")]  # locally, one worker runs both shards
    assert logs and all("Traceback" not in text for text in logs)
    assert sorted(x for text in logs for x in text.strip().splitlines()) == [f"error: shard {k} failed: {cause}"
                                                                           for k in range(2)]
    assert f"shard 1 failed: {cause}" in status_table(rd)


@pytest.mark.parametrize("signum, chunks", [(signal.SIGUSR2, 1), (signal.SIGTERM, 0)])
def test_a_requeue_signal_during_start_up_still_lets_the_attempt_commit_one_chunk(tmp_path, random_judge, signum,
                                                                                   chunks):
    data = write_pairs(tmp_path / "pairs.jsonl", 6)
    rd = new_run(tmp_path, random_judge, data, "early", "shards=1", "store.chunk_units=4", "verdict_cache=false")
    stop = StopRequest(())
    stop.signum = signum  # arrived before the first chunk: the time limit's warning, or a cancel
    result = run_shard(rd.root, 0, 1, stop, threads=1)
    assert result.interrupted and result.units_judged == 4 * chunks  # progress every attempt: no requeue loop
    assert VerdictStore(rd.store).done().sum() == 4 * chunks


@pytest.mark.parametrize("make, cause", [
    (lambda p: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), p), "no space left on device: {p} ("),
    (lambda p: OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), p), "disk quota exceeded: {p} ("),
    (lambda p: PermissionError(errno.EACCES, os.strerror(errno.EACCES), p), "permission denied: {p}"),
    (lambda p: OSError(errno.EROFS, os.strerror(errno.EROFS), p), "read-only file system: {p}"),
    (lambda p: FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), p),
     "file not found (moved or deleted while running?): {p}"),
])
def test_environment_failures_are_one_line_with_cause_and_path(tmp_path, make, cause):
    path = str(tmp_path / "runs" / "r" / "verdicts.zarr")
    wrapped = RuntimeError("writing chunk 3 failed")  # the cause may sit under another error: its chain is followed
    wrapped.__cause__ = make(path)
    line = environment_fault(wrapped)
    assert line.startswith(cause.format(p=path)) and "\n" not in line


def test_out_of_memory_is_a_cause_and_a_bug_is_not():
    with pytest.raises(MemoryError) as e:
        np.empty(1 << 60, dtype=np.uint8)  # a real allocation failure
    assert environment_fault(e.value).startswith("out of memory on ")
    assert environment_fault(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")).startswith("out of memory")
    assert environment_fault(KeyError("scores")) is None and environment_fault(ValueError("bad shape")) is None


@pytest.fixture
def small_disk(tmp_path):
    """A real 3 MiB tmpfs (root only: CI runs as root), unmounted afterwards whatever happens."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "judgelm-test", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_when_created(run_dir: Path, keep_bytes: int) -> threading.Thread:
    """Once the run exists (config.yaml is its last file), fill its disk, leaving ``keep_bytes``: the submission
    goes through and the shards run out of space part-way."""
    def fill() -> None:
        deadline = time.time() + 300
        while not (run_dir / "config.yaml").exists() and time.time() < deadline:
            time.sleep(0.01)
        st = os.statvfs(run_dir)
        (run_dir.parent / "filler").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - keep_bytes))
    t = threading.Thread(target=fill, daemon=True)
    t.start()
    return t


@pytest.mark.slow
def test_a_full_disk_is_named_and_resubmit_after_freeing_it_judges_the_rest(small_disk, tmp_path, random_judge,
                                                                           capsys):
    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    args = [f"model.path={random_judge}", f"data.source={data}", "shards=2", "store.chunk_units=2",
            "verdict_cache=false"]
    filler = fill_when_created(small_disk / "runs" / "full", keep_bytes=160 << 10)
    assert launch_judge.main([*args, "run=full", f"runs_dir={small_disk / 'runs'}"]) == 1
    filler.join()
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "units are not judged" in err and "make resubmit RUN=full" in err
    cause = next(x for x in err.splitlines() if x.startswith("cause: "))
    assert cause.startswith("cause: no space left on device: ") and str(small_disk) in cause
    rd = RunDir(small_disk / "runs" / "full")
    done = VerdictStore(rd.store).done()
    assert 0 < done.sum() < len(done), "the disk must fill part-way through the run"

    (small_disk / "runs" / "filler").unlink()  # the operator frees the space
    assert launch_resubmit.main(["run=full", f"runs_dir={small_disk / 'runs'}"]) == 0
    clean = new_run(tmp_path, random_judge, data, "clean", *args[2:])
    for k in range(2):
        run_shard(clean.root, k, 2, threads=1)
    assert_same(snapshot(rd), snapshot(clean))
