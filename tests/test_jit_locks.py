"""A build lock left by a killed DeepSpeed job is removed before the next job waits on it forever."""

import os
import time

from judgelm.train import jit_locks


def _lock(root, op, age_s):
    d = root / "py311_cpu" / op
    d.mkdir(parents=True)
    (d / "deepspeed_shm_comm.so").write_bytes(b"")
    lock = d / "lock"
    lock.touch()
    t = time.time() - age_s
    os.utime(lock, (t, t))
    return lock


def test_only_locks_older_than_any_build_are_removed(tmp_path, capsys):
    stale = _lock(tmp_path, "deepspeed_shm_comm", jit_locks.STALE_AFTER_S + 60)
    live = _lock(tmp_path, "cpu_adam", 20)  # a build in progress right now
    assert jit_locks.clear_stale(tmp_path) == [stale]
    assert not stale.exists() and live.exists()
    assert (stale.parent / "deepspeed_shm_comm.so").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(stale) in err[0] and "killed process" in err[0]


def test_the_default_root_is_torchs(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert jit_locks.build_root() == tmp_path
    stale = _lock(tmp_path, "deepspeed_shm_comm", jit_locks.STALE_AFTER_S + 1)
    assert jit_locks.clear_stale() == [stale]
