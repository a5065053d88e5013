"""A judging run end to end on the local executor, resume after SIGKILL, and the merge's refusals."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from judgelm.config import to_yaml
from judgelm.judging.progress import read_progress
from judgelm.judging.run import create_run, plan_run
from judgelm.judging.store import VerdictStore
from judgelm.results.merge import IncompleteStore, merge_run
from judgelm.rundir import RunDir
from launch import judge as launch_judge
from launch import resubmit as launch_resubmit
from launch import status as launch_status
from launch.configs import load_judge_config
from tests.conftest import write_pairs

REPO = Path(__file__).resolve().parents[1]


def new_run(tmp_path, judge_dir, data, name, *overrides):
    cfg = load_judge_config([f"model.path={judge_dir}", f"data.source={data}", f"run={name}", f"runs_dir={tmp_path}",
                             *overrides])
    return create_run(plan_run(cfg), to_yaml(cfg))


def test_local_executor_run_end_to_end(tmp_path, random_judge, capsys):
    data = write_pairs(tmp_path / "pairs.jsonl", 30, with_reference_every=3)
    rc = launch_judge.main([f"model.path={random_judge}", f"data.source={data}", "run=e2e", f"runs_dir={tmp_path}",
                            "shards=3", "store.chunk_units=8"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| Agreement |" in out and "units (100.0 %)" in out
    assert re.search(r"^phases run: create [\d.]+ s, shards [\d.]+ s, merge [\d.]+ s", out, re.M)
    rd = RunDir(tmp_path / "e2e")
    m = json.loads(rd.metrics.read_text())
    assert m["complete"] and m["units"] == 30 * 2 + 10 * 2
    assert m["groups"]["without_reference"]["total_num"] == 30
    assert m["groups"]["with_reference"]["total_num"] == 10
    assert m["note"].startswith("These are the metrics of a tiny judge")
    store = VerdictStore(rd.store)
    assert store.done().all() and set(store.verdicts("status").tolist()) <= {0, 1}
    assert (store.verdicts("prompt_tokens") > 100).all()
    # one local worker judged the three shards one after the other: the start-up and the model load once, each
    # shard with its own progress and the time of each phase
    [sub] = launch_status.read_submissions(rd)
    assert len(set(sub["job_ids"])) == 1
    progress = [read_progress(rd.shard_progress(k)) for k in range(3)]
    for k, p in enumerate(progress):
        assert p.units_done == p.units_total == store.shard_units(k, 3) and p.attempts[-1].state == "finished"
        assert set(p.attempts[-1].phases) >= {"start", "model", "tokenize", "engine", "store"}
    assert progress[0].attempts[-1].phases["start"] > 0
    assert progress[1].attempts[-1].phases["start"] == progress[2].attempts[-1].phases["start"] == 0
    # 80 units over 3 shards in chunks of at most 8: 12 chunks of 7, four per shard
    assert store.chunk_units == 7 and [len(store.shard_chunks(k, 3)) for k in range(3)] == [4, 4, 4]
    assert "chunk_units: 7" in (rd.root / "config.yaml").read_text()
    # the run name is taken; resubmitting finds nothing left to do and merges to the same metrics
    assert launch_judge.main([f"model.path={random_judge}", f"data.source={data}", "run=e2e",
                              f"runs_dir={tmp_path}"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert launch_resubmit.main(["run=e2e", f"runs_dir={tmp_path}"]) == 0
    assert json.loads(rd.metrics.read_text()) == m
    assert [s["shards"] for s in launch_status.read_submissions(rd)] == [[0, 1, 2], []]
    table = launch_status.status_table(rd)
    assert table.splitlines()[0].split() == ["shard", "job", "state", "exit", "node", "units", "done", "rate/s",
                                             "ETA", "start-up", "attempts"]
    assert "30/30" not in table and "run e2e" in table and "80/80 units (100.0 %)" in table


def shard_process(run_dir):
    return subprocess.Popen([sys.executable, "-c", f"from judgelm.judging.shard import run_shard; "
                             f"run_shard({str(run_dir)!r}, 0, 1, threads=1)"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_shard_killed_with_sigkill_resumes_to_the_same_store(tmp_path, random_judge):
    data = write_pairs(tmp_path / "pairs.jsonl", 120)
    args = ("shards=1", "store.chunk_units=6", "engine.mode=full", "engine.max_new_tokens=24")
    killed = new_run(tmp_path, random_judge, data, "killed", *args)
    clean = new_run(tmp_path, random_judge, data, "clean", *args, "verdict_cache=false")  # judged afresh
    total = VerdictStore(killed.store).n_units

    proc = shard_process(killed.root)
    deadline = time.time() + 120
    while time.time() < deadline:
        p = read_progress(killed.shard_progress(0))
        if p and 3 * 6 <= p.units_done:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = read_progress(killed.shard_progress(0)).units_done
    assert 0 < done_at_kill < total, "the shard must be killed in the middle"
    assert VerdictStore(killed.store).done().sum() == done_at_kill

    assert shard_process(killed.root).wait(timeout=300) == 0
    assert shard_process(clean.root).wait(timeout=300) == 0
    a, b = VerdictStore(killed.store), VerdictStore(clean.store)
    for name in ("scores", "status", "text", "prompt_tokens", "new_tokens", "truncated", "done"):
        np.testing.assert_array_equal(a.verdicts(name), b.verdicts(name), err_msg=name)
    p = read_progress(killed.shard_progress(0))
    assert [x.state for x in p.attempts] == ["lost", "finished"]  # SIGKILL: the next attempt records the loss
    assert p.attempts[1].units_judged == total - done_at_kill  # the second attempt redid nothing committed
    attempts = a.verdicts("attempt")
    assert (attempts == 0).sum() == done_at_kill and (attempts == 1).sum() == total - done_at_kill
    assert merge_run(killed.root) == {**merge_run(clean.root), "run": "killed"}


def test_merge_refuses_an_incomplete_store_and_names_the_shards(tmp_path, random_judge):
    data = write_pairs(tmp_path / "pairs.jsonl", 16)
    rd = new_run(tmp_path, random_judge, data, "partial", "shards=4", "store.chunk_units=4")
    from judgelm.judging.shard import run_shard
    run_shard(rd.root, 1, 4, threads=1)
    run_shard(rd.root, 3, 4, threads=1)
    with pytest.raises(IncompleteStore, match=r"16 of 32 units are not judged; missing in shard 0 \(8 units\), "
                                              r"shard 2 \(8 units\)"):
        merge_run(rd.root)
    m = merge_run(rd.root, allow_partial=True)
    assert not m["complete"] and m["missing_units"] == 16 and m["missing_by_shard"] == {"0": 8, "2": 8}
    assert m["groups"]["without_reference"]["total_num"] == 8
    assert "PARTIAL: 16 units missing" in rd.table.read_text()


def test_invalid_records_are_skipped_into_rejects_when_asked(tmp_path, random_judge):
    data = write_pairs(tmp_path / "pairs.jsonl", 6)
    lines = data.read_text().splitlines()
    lines[2] = lines[2].replace('"question_body": "Translate \'chat\' to English. (case 2)"', '"question_body": " "')
    data.write_text("\n".join(lines) + "\n")
    from judgelm.data.records import RecordError
    with pytest.raises(RecordError, match=r"pairs.jsonl:3: field 'question_body': empty"):
        new_run(tmp_path, random_judge, data, "strict")
    rd = new_run(tmp_path, random_judge, data, "lenient", "data.skip_invalid=true")
    assert VerdictStore(rd.store).n_records == 5 and VerdictStore(rd.store).attrs["rejected_records"] == 1
    assert json.loads(rd.rejects.read_text())["line"] == 3
    # the skipped record is said wherever the run is read, not only in a start-up warning
    assert "data: 1 invalid records skipped (rejects.jsonl)" in launch_status.status_table(rd)
    from judgelm.judging.shard import run_shard
    n_shards = VerdictStore(rd.store).attrs["n_shards"]
    for k in range(n_shards):
        run_shard(rd.root, k, n_shards, threads=1)
    m = merge_run(rd.root)
    assert m["data_notes"]["rejected_records"] == 1
    assert "Data: 1 invalid records skipped (rejects.jsonl)" in rd.table.read_text()


def test_single_and_multi_answer_runs_end_to_end(tmp_path, random_judge):
    rows = [{"question_id": i, "question_body": f"Question {i}?", "answer1_body": "gold answer",
             "answer2_body": "tested answer " * (1 + i), "answer3_body": "third", "score": [7, 3, 5]}
            for i in range(5)]
    multi = tmp_path / "multi.jsonl"
    multi.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rd = new_run(tmp_path, random_judge, multi, "multi", "prompt.mode=multi", "shards=2")
    store = VerdictStore(rd.store)
    assert store.n_units == 5 and store.n_scores == 3  # one order: N-answer prompts are not swapped
    from judgelm.judging.shard import run_shard
    for k in range(2):
        run_shard(rd.root, k, 2, threads=1)
    m = merge_run(rd.root)
    assert m["mode"] == "multi" and m["groups"]["all"]["units_done"] == 5
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "answer3_body"} | {"score": [8, 4]})
                             + "\n" for r in rows))
    rd = new_run(tmp_path, random_judge, pairs, "single", "prompt.mode=single", "shards=1")
    run_shard(rd.root, 0, 1, threads=1)
    assert VerdictStore(rd.store).n_scores == 1 and merge_run(rd.root)["groups"]["all"]["units_done"] == 5


def test_runs_the_mode_cannot_judge_are_refused_before_anything_is_created(tmp_path, random_judge, capsys):
    rows = [{"question_id": i, "question_body": "q", "answer1_body": "a", "answer2_body": "b"} for i in range(3)]
    rows[1]["answer3_body"] = "c"
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = [f"model.path={random_judge}", f"data.source={data}", f"runs_dir={tmp_path}"]
    assert launch_judge.main(base + ["run=pair"]) == 2
    assert "record 1 has 3 answers; pair grading needs exactly 2 answers" in capsys.readouterr().err
    assert launch_judge.main(base + ["run=multi", "prompt.mode=multi"]) == 2
    assert "multi grading needs the same number of answers (2)" in capsys.readouterr().err
    assert launch_judge.main([f"model.path={random_judge}", "data.source=prometheus", "run=p",
                              f"runs_dir={tmp_path}"]) == 2
    assert "benchmark 'prometheus' is judged with prompt.mode=single, not pair" in capsys.readouterr().err
    assert launch_judge.main(base[:1] + [f"data.source={data}", "shards=0", "run=z", f"runs_dir={tmp_path}"]) == 2
    assert not any((tmp_path / n).exists() for n in ("pair", "multi", "p", "z"))


def test_a_worker_prepares_its_next_shards_first_chunk_during_the_last_one(tmp_path, random_judge, monkeypatch):
    from judgelm.judging import shard as shard_module
    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    rd = new_run(tmp_path, random_judge, data, "ahead", "shards=2", "store.chunk_units=6")
    prepared = []  # (chunk, the shard whose loop was running when its preparation started)
    running = {"shard": None}
    real = shard_module.prepare_prompts
    monkeypatch.setattr(shard_module, "prepare_prompts",
                        lambda store, c, *a: prepared.append((c, running["shard"])) or real(store, c, *a))
    store = VerdictStore(rd.store)
    first_of_1 = store.shard_chunks(1, 2)[0]
    for shard, then in ((0, 1), (1, None)):
        running["shard"] = shard
        shard_module.run_shard(rd.root, shard, 2, threads=1, then=then)
    # every chunk prepared once; shard 1's first chunk while shard 0 ran, and waited for by shard 1 no longer
    assert sorted(c for c, _ in prepared) == list(range(store.n_chunks))
    assert (first_of_1, 0) in prepared
    assert not shard_module._prepared_ahead
    assert VerdictStore(rd.store).done().all()
    # the same verdicts as shards run on their own
    alone = new_run(tmp_path, random_judge, data, "alone", "shards=2", "store.chunk_units=6")
    for shard in (0, 1):
        shard_module.run_shard(alone.root, shard, 2, threads=1)
    for name in ("status", "scores"):
        np.testing.assert_array_equal(VerdictStore(alone.store).verdicts(name), VerdictStore(rd.store).verdicts(name))


def test_each_next_chunks_batches_are_queued_during_the_one_before_and_taken_by_it(tmp_path, random_judge,
                                                                                   monkeypatch):
    """With compute processes, a worker's engine queues each next chunk's batches (the next shard's first chunk
    included) while the chunk before ends, and that chunk takes them: what it asks for does not depend on whether
    the chunk before was committed yet, as that chunk's cache entries count either way. Verdicts as without."""
    from judgelm.inference.fork_pool import ForkPool
    from judgelm.inference.hf import HFEngine
    from judgelm.judging import shard as shard_module
    pairs = [json.loads(line) for line in write_pairs(tmp_path / "pairs.jsonl", 16).read_text().splitlines()]
    rows = []
    for k in range(4):  # a chunk of three new pairs, then one with copies of two of them (cache hits) and a new one
        new = pairs[4 * k: 4 * k + 3]
        rows += new + [dict(r, question_id=100 + r["question_id"]) for r in new[:2]] + [pairs[4 * k + 3]]
    data = tmp_path / "dup.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    taken, dropped = [], []
    real = HFEngine._queued_for
    monkeypatch.setattr(HFEngine, "_queued_for", lambda self, pool, units, ids: taken.append(
        self._queued is not None and self._queued[1] == units) or real(self, pool, units, ids))
    monkeypatch.setattr(ForkPool, "drop", lambda self, numbers: dropped.append(numbers))
    runs = {}
    for name, processes in (("queued", 2), ("alone", 1)):
        rd = runs[name] = new_run(tmp_path / name, random_judge, data, name, "shards=2", "store.chunk_units=6",
                                  "engine.mode=full", f"engine.cpu_processes={processes}")
        for shard, then in ((0, 1), (1, None)):
            shard_module.run_shard(rd.root, shard, 2, threads=1, then=then)
        if name == "queued":
            assert taken == [False] + [True] * 7 and not dropped  # eight chunks, each with units to judge
    store, alone = VerdictStore(runs["queued"].store), VerdictStore(runs["alone"].store)
    copies = store.records("question_id")[store.units("record")].astype(int) >= 100  # in their pair's chunk or after
    assert (store.cached() == copies).all() and (alone.cached() == copies).all()
    for name in ("status", "scores", "text"):
        assert list(store.verdicts(name)) == list(alone.verdicts(name)) if name == "text" else \
            np.array_equal(store.verdicts(name), alone.verdicts(name), equal_nan=True)


def test_a_runs_config_is_read_once_per_process_each_caller_getting_its_own(tmp_path, random_judge):
    from judgelm.judging.config import load_run_config
    rd = new_run(tmp_path, random_judge, write_pairs(tmp_path / "pairs.jsonl", 4), "cfg", "shards=2")
    first, second = load_run_config(rd.root), load_run_config(rd.root)
    assert first == second and first is not second and first.engine is not second.engine
    first.engine.max_new_tokens = 7  # a caller's change stays its own
    assert load_run_config(rd.root).engine.max_new_tokens == second.engine.max_new_tokens != 7
    text = rd.config.read_text()
    rd.config.write_text(text.replace(f"shards: {second.shards}", "shards: 3") + "\n")  # an edited file is read again
    assert load_run_config(rd.root).shards == 3


def test_a_shard_that_crashes_says_so_in_its_progress(tmp_path, random_judge):
    data = write_pairs(tmp_path / "pairs.jsonl", 4)
    judge = shutil.copytree(random_judge, tmp_path / "judge")  # checked at creation, then gone when the shard runs
    rd = new_run(tmp_path, judge, data, "crash", "shards=1")
    (judge / "model.safetensors").unlink()
    from judgelm.judging.shard import run_shard
    with pytest.raises(OSError):
        run_shard(rd.root, 0, 1, threads=1)
    assert [a.state for a in read_progress(rd.shard_progress(0)).attempts] == ["failed"]


def as_at_a_terminal():
    """SIGINT as a shell started in a terminal leaves it to a command: handled by default and not blocked. A test
    run started in the background by a non-interactive shell (``bash .ci/run &``) has SIGINT ignored, which the
    launcher would inherit and keep."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_ctrl_c_stops_after_the_chunk_says_how_to_resume_and_loses_nothing(tmp_path, random_judge):
    data = write_pairs(tmp_path / "pairs.jsonl", 120)
    args = [f"model.path={random_judge}", f"data.source={data}", "run=ctrlc", f"runs_dir={tmp_path}", "shards=2",
            "store.chunk_units=4", "engine.mode=full", "engine.max_new_tokens=24"]
    proc = subprocess.Popen([sys.executable, "-m", "launch.judge", *args], cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=as_at_a_terminal)
    rd = RunDir(tmp_path / "ctrlc")
    deadline = time.time() + 240
    while time.time() < deadline and not any(p and p.units_done >= 8 for p in
                                             (read_progress(rd.shard_progress(k)) for k in range(2))):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what ctrl-C at the terminal does: the launcher and its local shards
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    assert "make resubmit RUN=ctrlc" in err and "Traceback" not in err
    time.sleep(1)  # the shards finish their chunk and exit
    done = VerdictStore(rd.store).done()
    assert 0 < done.sum() < len(done)
    assert launch_resubmit.main(["run=ctrlc", f"runs_dir={tmp_path}"]) == 0
    assert VerdictStore(rd.store).done().all()
