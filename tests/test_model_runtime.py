"""Runtime choices of a judge: one dtype from the checkpoint, flash-attention only where it can run, a hub id
resolved once to a local snapshot, and every id of a multi-EOS generation config ending a row."""

import json
import os
import subprocess
import sys

import pytest
import torch

from judgelm.config import REPO_ROOT
from judgelm.inference.config import EngineConfig, ModelConfig
from judgelm.inference.hf import HFEngine, end_token_ids
from judgelm.inference.models import (
    encode_with_bos,
    flash_attn_problem,
    load_judge,
    pick_attention,
    resolve_dtype,
)
from judgelm.profiles.prompts import build_prompt
from tests.sp_judge import build_sentencepiece_judge


@pytest.fixture(scope="module")
def fp16_judge(tmp_path_factory):
    return build_sentencepiece_judge(tmp_path_factory.mktemp("fp16") / "judge", weights=True)


def test_dtype_follows_the_checkpoint_on_gpus_and_is_fp32_on_cpus(fp16_judge, random_judge):
    assert resolve_dtype("auto", str(fp16_judge), "cuda") == torch.float16  # JudgeLM's checkpoints and evaluation
    assert resolve_dtype("auto", str(fp16_judge), "cpu") == torch.float32
    assert resolve_dtype("bfloat16", str(fp16_judge), "cuda") == torch.bfloat16
    with pytest.raises(ValueError, match="model.dtype"):
        resolve_dtype("int8", str(fp16_judge), "cuda")
    judge = load_judge(ModelConfig(path=str(fp16_judge)))
    assert (judge.runtime.dtype, judge.runtime.attention, judge.runtime.devices) == ("float32", "sdpa", ["cpu"])


def test_flash_attention_needs_cuda_half_precision_and_a_package_that_imports():
    assert "CUDA" in flash_attn_problem(torch.device("cpu"), torch.bfloat16)
    assert "float16 or bfloat16" in flash_attn_problem(torch.device("cuda"), torch.float32)
    try:
        import flash_attn  # noqa: F401
    except Exception:
        assert "does not import" in flash_attn_problem(torch.device("cuda"), torch.bfloat16)
    assert pick_attention("auto", torch.device("cuda"), torch.float32) == "sdpa"
    assert pick_attention("eager", torch.device("cpu"), torch.float32) == "eager"
    with pytest.raises(RuntimeError, match="float16 or bfloat16"):
        pick_attention("flash_attention_2", torch.device("cuda"), torch.float32)


def resolve_in_subprocess(name: str, cache) -> subprocess.CompletedProcess:
    # huggingface_hub reads its cache location when imported: a fresh process per setting.
    env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    code = f"from judgelm.inference.models import resolve_model; print(resolve_model({name!r}))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_hub_ids_resolve_to_the_cached_snapshot_and_missing_ones_fail_in_one_line(tmp_path):
    repo = tmp_path / "hub" / "models--acme--judge"
    snap = repo / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    found = resolve_in_subprocess("acme/judge", tmp_path / "hub")
    assert found.returncode == 0 and found.stdout.strip() == str(snap)
    missing = resolve_in_subprocess("acme/nothing", tmp_path / "hub")
    assert missing.returncode != 0 and "FileNotFoundError: model 'acme/nothing' is neither" in missing.stderr


def test_every_eos_id_of_the_generation_config_ends_a_row(fp16_judge):
    model, tok, device, _ = load_judge(ModelConfig(path=str(fp16_judge)))
    ids = encode_with_bos(tok, [build_prompt(f"What is {i}?", ["x" * i, "y"]) for i in range(8)])
    before = HFEngine(model, tok, device, EngineConfig(mode="full", max_new_tokens=16)).generate(list(range(8)), ids)
    free = [g.token_ids for g in before]
    late = {t for row in free for t in row[1:] if t not in row[:1]}
    extra = max(late, key=lambda t: sum(t in row for row in free))  # a token several rows reach after step 0
    (fp16_judge / "generation_config.json").write_text(json.dumps({"eos_token_id": [tok.eos_token_id, extra]}))
    model, tok, device, _ = load_judge(ModelConfig(path=str(fp16_judge)))
    assert end_token_ids(model, tok) == sorted({tok.eos_token_id, extra})
    gens = HFEngine(model, tok, device, EngineConfig(mode="full", max_new_tokens=16)).generate(list(range(8)), ids)
    for g, row, b in zip(gens, free, before):
        cut = row[: row.index(extra) + 1] if extra in row else row
        assert (g.token_ids, g.stopped) == (cut, extra in row or b.stopped)
    assert sum(extra in row for row in free) > 1
