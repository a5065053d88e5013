"""The launcher's progress line at 64 shards: planned totals from the start, shards by state, a bounded ETA."""

import shutil

import numpy as np
import pytest

from judgelm.config import to_yaml
from judgelm.judging.progress import ShardProgress, write_progress
from judgelm.judging.run import create_run, plan_run
from judgelm.judging.store import ChunkVerdicts, VerdictStore
from launch.configs import load_judge_config
from launch.submission import ProgressView
from tests.conftest import write_pairs


def commit_shard(store: VerdictStore, shard: int, n_shards: int) -> int:
    n = 0
    for c in store.shard_chunks(shard, n_shards):
        sl = store.chunk_slice(c)
        k = sl.stop - sl.start
        store.write_chunk(c, ChunkVerdicts(scores=np.ones((k, 2), np.float32), status=np.zeros(k, np.int8),
                                           text=["1 1"] * k, prompt_tokens=np.zeros(k), new_tokens=np.zeros(k),
                                           truncated=np.zeros(k, bool)), attempt=0)
        n += k
    return n


def test_progress_line_at_63_shards(tmp_path, random_judge):
    data = write_pairs(tmp_path / "pairs.jsonl", 500)
    cfg = load_judge_config([f"model.path={random_judge}", f"data.source={data}", "run=wide", f"runs_dir={tmp_path}",
                             "shards=64", "cluster.array_parallelism=8"])
    rd = create_run(plan_run(cfg), to_yaml(cfg))
    n = cfg.shards  # 63: 1000 units make 63 chunks of 16, one per shard
    view = ProgressView(rd, n, parallelism=8)
    line = view.line()
    assert "0/1000 units (0.0 %)" in line and f"{n} pending" in line and "ETA —" in line  # planned from the start
    assert len(line) < 200  # one short line, not one entry per shard
    store = VerdictStore(rd.store, mode="r+")
    done = sum(commit_shard(store, k, n) for k in range(4))  # four shards finished
    for k in (4, 5, 6):  # three running, shard 6 the slowest
        p = ShardProgress(k, store.shard_units(k, n))
        a = p.start_attempt(f"job{k}")
        a.units_judged, a.updated = 2 if k == 6 else 8, a.started + 4.0  # 0.5 and 2 units/s
        p.units_done = a.units_judged
        write_progress(rd.shard_progress(k), p)
    p = ShardProgress(7, store.shard_units(7, n))
    p.start_attempt("job7").state = "failed"
    write_progress(rd.shard_progress(7), p)
    line = view.line()
    assert f"{done}/1000 units" in line
    assert f"3 running, {n - 8} pending, 4 done, 1 failed" in line
    assert "slowest: 6 " in line
    # mean running rate 1.5 units/s per shard, 8 shards at a time (array_parallelism): (1000 - done) / 12 s
    assert f"ETA {(1000 - done) / 12:.0f} s" in line


def test_a_run_directory_removed_under_the_launcher_is_one_clear_error(tmp_path, random_judge):
    data = write_pairs(tmp_path / "pairs.jsonl", 40)
    cfg = load_judge_config([f"model.path={random_judge}", f"data.source={data}", "run=gone", f"runs_dir={tmp_path}"])
    rd = create_run(plan_run(cfg), to_yaml(cfg))
    view = ProgressView(rd, cfg.shards, parallelism=4)
    assert "0/80 units" in view.line()
    shutil.rmtree(rd.root)
    with pytest.raises(FileNotFoundError, match="run directory was removed while the run was going"):
        view.line()
