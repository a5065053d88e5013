"""The vLLM backend for real on this CPU machine, against the HF engine, on the tiny judge.

vLLM's CPU build lives in ``.venv-vllm`` (``make vllm-env``; its transformers pin differs from the main venv's),
so vLLM runs in a subprocess of that venv: ``launch.vllm_peer`` for the engine-level checks (one model load for
the module), and a real shard for preemption. Without that venv or the tiny judge these tests skip, except under
CI (``JUDGELM_REQUIRE_VLLM=1``, set by ``.ci/run``), where a missing vLLM is a failure.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from judgelm.data.benchmarks import load_dataset
from judgelm.data.verdicts import parse_prediction
from judgelm.inference.config import EngineConfig, ModelConfig
from judgelm.inference.hf import HFEngine
from judgelm.inference.models import encode_with_bos, load_judge
from judgelm.judging.progress import read_progress
from judgelm.judging.store import VerdictStore
from judgelm.profiles.prompts import build_prompt

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
TINY_JUDGE = REPO / "models" / "tiny-judge"
FULL_NEW = 48
CONFIGS = {"fast": dict(mode="fast", logprobs_topk=3), "full": dict(mode="full", max_new_tokens=FULL_NEW)}

pytestmark = pytest.mark.slow


def require(path: Path, how: str) -> None:
    if path.exists():
        return
    if os.environ.get("JUDGELM_REQUIRE_VLLM") == "1":
        pytest.fail(f"{path} is missing ({how}) and JUDGELM_REQUIRE_VLLM=1")
    pytest.skip(f"{path} is missing: {how}")


@pytest.fixture(scope="module")
def hf_judge():
    require(VLLM_PYTHON, "make vllm-env")
    require(TINY_JUDGE, "make tiny-judge")
    return load_judge(ModelConfig(path=str(TINY_JUDGE), dtype="float32"))[:3]


@pytest.fixture(scope="module")
def prompts(hf_judge):
    """16 PandaLM pairs in both orders."""
    records = load_dataset("pandalm").records[:16]
    texts = [build_prompt(r.question, list(a)) for r in records for a in (r.answers, r.answers[::-1])]
    return encode_with_bos(hf_judge[1], texts)


@pytest.fixture(scope="module")
def vllm_out(prompts):
    """vLLM's generations per mode, from one loaded engine, on the very token ids the HF engine gets."""
    from launch.vllm_peer import Peer

    peer = Peer(str(VLLM_PYTHON))
    try:
        peer.request(load={"model": {"path": str(TINY_JUDGE)}, "engine": {"backend": "vllm"}})
        return {mode: peer.request(generate={"units": list(range(len(prompts))), "ids": prompts, "engine": cfg,
                                             "outputs": True})["generations"] for mode, cfg in CONFIGS.items()}
    finally:
        peer.close()


@pytest.fixture(scope="module")
def hf_out(hf_judge, prompts):
    model, tok, device = hf_judge
    return {mode: HFEngine(model, tok, device, EngineConfig(**cfg)).generate(list(range(len(prompts))), prompts)
            for mode, cfg in CONFIGS.items()}


@pytest.mark.parametrize("mode", ["fast", "full"])
def test_greedy_generations_are_identical_to_the_hf_engine(vllm_out, hf_out, mode):
    same = [v["token_ids"] == h.token_ids for v, h in zip(vllm_out[mode], hf_out[mode])]
    assert all(same), f"identical for {sum(same)}/{len(same)} prompts"
    assert [v["text"] for v in vllm_out[mode]] == [h.text for h in hf_out[mode]]
    if mode == "full":
        assert max(len(v["token_ids"]) for v in vllm_out[mode]) > 8  # the explanation is really generated


def test_fast_mode_stops_at_the_score_line(vllm_out):
    for fast, full in zip(vllm_out["fast"], vllm_out["full"]):
        assert fast["stopped"] and fast["text"].endswith("\n") and fast["text"].count("\n") == 1
        assert parse_prediction(fast["text"], 2) is not None
        assert full["token_ids"][: len(fast["token_ids"])] == fast["token_ids"]  # the same line, cut after it


def test_top_logprobs_match_the_hf_engine(vllm_out, hf_out):
    for v, h in zip(vllm_out["fast"], hf_out["fast"]):
        steps = len(h.token_ids)
        ids, lp = np.array(v["top"]["ids"]), np.array(v["top"]["logprobs"], dtype=float)
        assert (ids[:steps, 0] == np.array(h.token_ids)).all()  # greedy takes the top candidate
        np.testing.assert_array_equal(ids[:steps], h.top_ids[:steps])
        np.testing.assert_allclose(lp[:steps], h.top_logprobs[:steps], atol=1e-3)
        assert np.isnan(lp[steps:]).all()


def new_run(tmp_path, name, *overrides):
    from judgelm.config import to_yaml
    from judgelm.judging.run import create_run, plan_run
    from launch.configs import load_judge_config

    cfg = load_judge_config([f"model.path={TINY_JUDGE}", "data.source=pandalm", "data.limit=24",
                             "prompt.reference=without", f"run={name}", f"runs_dir={tmp_path}", "shards=1",
                             "store.chunk_units=4", "verdict_cache=false", *overrides])
    return create_run(plan_run(cfg), to_yaml(cfg))


def test_requeue_signal_stops_the_shard_after_its_chunk_not_the_engine(tmp_path, hf_judge):
    """USR2 sent to the whole process group, as Slurm signals a job step: vLLM's engine core has it blocked, so
    the shard's handler alone acts on it, and the chunk in flight is committed whole."""
    rd = new_run(tmp_path, "vllm", "engine.backend=vllm", f"engine.python={VLLM_PYTHON}")
    log = (tmp_path / "shard.log").open("w")
    proc = subprocess.Popen([str(VLLM_PYTHON), "-c", "import logging; logging.basicConfig(level=logging.INFO); "
                             f"from judgelm.judging.shard import run_shard; print(run_shard({str(rd.root)!r}, 0, 1))"],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        p = read_progress(rd.shard_progress(0))
        if p and p.units_done >= 4:  # the engine is up and judging
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGUSR2)
    assert proc.wait(timeout=300) == 0, (tmp_path / "shard.log").read_text()[-3000:]
    out = (tmp_path / "shard.log").read_text()
    assert "received SIGUSR2" in out and re.search(r"interrupted=True", out)
    p = read_progress(rd.shard_progress(0))
    store = VerdictStore(rd.store)
    done = store.done()
    assert 0 < p.units_done == done.sum() < store.n_units and p.attempts[-1].state == "interrupted"
    # committed chunks are whole and agree with the HF engine; the rest is untouched, to be judged on resume
    text, status = store.verdicts("text"), store.verdicts("status")
    assert all(t.endswith("\n") for t in text[done]) and not any(text[~done])
    clean = new_run(tmp_path, "hf")
    from judgelm.judging.shard import run_shard
    run_shard(clean.root, 0, 1, threads=1)
    hf = VerdictStore(clean.store)
    assert list(text[done]) == list(hf.verdicts("text")[done])
    assert (status[done] == hf.verdicts("status")[done]).all()


def test_a_missing_shard_python_is_one_clear_error(tmp_path, capsys):
    from launch import judge as launch_judge

    rc = launch_judge.main([f"model.path={TINY_JUDGE}", "data.source=pandalm", "data.limit=2", f"runs_dir={tmp_path}",
                            "engine.backend=vllm", "engine.python=/nonexistent/bin/python"])
    assert rc == 2 and "make vllm-env" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_vllm_serves_a_lora_adapter_unmerged_with_the_hf_engines_verdicts(tmp_path, prompts):
    """An adapter directory as ``model.path``: vLLM serves it on its base (LoRA, not merged), the HF engine loads
    base + adapter, and both write the same verdicts. The adapter's B matrices are random, so it really acts."""
    import shutil

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from launch.vllm_peer import Peer

    base = tmp_path / "base"
    shutil.copytree(TINY_JUDGE, base)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))
    model.peft_config["default"].base_model_name_or_path = str(base)
    model.save_pretrained(tmp_path / "adapter")
    shutil.copy(base / "tokenizer.json", tmp_path / "adapter")
    shutil.copy(base / "tokenizer_config.json", tmp_path / "adapter")
    ids = prompts[:8]
    judge = load_judge(ModelConfig(path=str(tmp_path / "adapter"), dtype="float32"))
    hf = HFEngine(judge.model, judge.tokenizer, judge.device, EngineConfig(mode="fast")).generate(
        list(range(len(ids))), ids)
    plain = load_judge(ModelConfig(path=str(base), dtype="float32"))
    unadapted = HFEngine(plain.model, plain.tokenizer, plain.device, EngineConfig(mode="fast")).generate(
        list(range(len(ids))), ids)
    assert [g.text for g in hf] != [g.text for g in unadapted]  # the adapter changes the verdicts
    peer = Peer(str(VLLM_PYTHON))
    try:
        peer.request(load={"model": {"path": str(tmp_path / "adapter")}, "engine": {"backend": "vllm"}})
        out = peer.request(generate={"units": list(range(len(ids))), "ids": ids, "engine": {"mode": "fast"},
                                     "outputs": True})["generations"]
    finally:
        peer.close()
    assert [v["text"] for v in out] == [g.text for g in hf]
