"""DeepSpeed ZeRO-3 with 2 CPU processes (gloo, torchrun): same losses as one process, a resume at the exact
step, and an export whose reloaded logits equal those of the weights consolidated from the ZeRO shards.

The first DeepSpeed run on a machine JIT-builds its shared-memory op (~30 s, then cached).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from judgelm.config import REPO_ROOT
from judgelm.train.data import load_train_records
from judgelm.train.loop import train
from judgelm.train.model import scratch_config
from judgelm.train.tokenizer import build_tiny_tokenizer
from tests.test_train_fixtures import losses, micro_config, micro_overrides, write_micro_data

STEPS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(overrides: list[str], nproc: int = 2, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, DS_ACCELERATOR="cpu", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           f"--master_port={free_port()}", "-m", "judgelm.train", *overrides]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """A micro 'pretrained' model directory, so both runs start from identical weights."""
    from transformers import LlamaForCausalLM

    tmp = tmp_path_factory.mktemp("zero3")
    data = write_micro_data(tmp / "train.jsonl")
    model_dir = tmp / "base"
    records = load_train_records([data], skip_invalid=False).records
    tok = build_tiny_tokenizer(records, vocab_size=1000, model_max_length=512, out_dir=model_dir)
    cfg = micro_config(tmp, data, "unused")
    torch.manual_seed(0)
    LlamaForCausalLM(scratch_config(cfg.model.scratch, tok)).save_pretrained(model_dir)
    return tmp, data, model_dir


def test_zero3_two_processes_match_one_process_resume_and_export(base_model):
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import AutoModelForCausalLM

    tmp, data, model_dir = base_model
    common = {"model.path": str(model_dir), "save_every": 10, "keep_checkpoints": 5}
    single = micro_config(tmp, data, "single", **common)
    assert train(single, tmp / "runs" / "single").status == "finished"

    zero3 = {**common, "backend": "deepspeed", "deepspeed_config": "configs/deepspeed/zero3.json",
             "resources.cpu_tasks": 2}
    torchrun(micro_overrides(tmp, data, "zero3", **zero3))
    run = tmp / "runs" / "zero3"
    log = (run / "train.log").read_text()
    assert "deepspeed on 2 × cpu" in log and "2 micro × 1 accum × 2 procs" in log

    # Same global batches, same loss normalisation: the split over processes only changes rounding.
    one, two = losses(tmp / "runs" / "single"), losses(run)
    assert sorted(two) == list(range(1, STEPS + 1))
    assert [two[s] for s in sorted(one)] == pytest.approx([one[s] for s in sorted(one)], rel=2e-4)
    assert two[STEPS] < 0.8 * two[1]

    # The export is the gathered ZeRO-3 weights: identical to what zero_to_fp32 consolidates from the shards,
    # and reloading it gives the same logits.
    final = run / "checkpoints" / f"step-{STEPS:08d}"
    shards = get_fp32_state_dict_from_zero_checkpoint(str(final), tag="deepspeed")
    exported = load_file(run / "model" / "model.safetensors")
    assert exported.keys() == shards.keys() and all(torch.equal(exported[k], shards[k]) for k in shards)
    reloaded = AutoModelForCausalLM.from_pretrained(run / "model").eval()
    reference = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    reference.load_state_dict(shards)
    ids = torch.randint(3, reloaded.config.vocab_size, (2, 24))
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=ids).logits, reference(input_ids=ids).logits)

    # Resume a copy of the run from its step-10 checkpoint: steps 11..20 come out as before.
    resumed = tmp / "runs" / "zero3-resumed"
    resumed.mkdir()
    shutil.copytree(run / "checkpoints" / "step-00000010", resumed / "checkpoints" / "step-00000010")
    torchrun(micro_overrides(tmp, data, "zero3-resumed", **zero3))
    again = losses(resumed)
    assert "resumed from step-00000010" in (resumed / "train.log").read_text()
    assert sorted(again) == list(range(11, STEPS + 1))
    assert [again[s] for s in sorted(again)] == pytest.approx([two[s] for s in sorted(again)], rel=1e-6)


@pytest.mark.slow  # two torchrun jobs of 2 processes
def test_lora_zero2_two_processes_judge_in_parallel_match_one_process_and_resume(base_model):
    """LoRA under ZeRO-2 on 2 processes: the losses of one process, the validation judged by both ranks, a
    checkpoint without the frozen base, and a resume from it that continues the same curve."""
    tmp, data, model_dir = base_model
    # No adapter dropout here: its masks come from each rank's own RNG stream, which differ from one process's.
    lora = {"model.path": str(model_dir), "method": "lora", "lora.rank": 4, "lora.alpha": 8, "lora.dropout": 0,
            "optim.lr": 5e-3, "data.holdout": 8, "eval_every": 8, "keep_checkpoints": 5}
    assert train(micro_config(tmp, data, "lora-single", **lora), tmp / "runs" / "lora-single").status == "finished"
    zero2 = {**lora, "backend": "deepspeed", "deepspeed_config": "configs/deepspeed/zero2.json",
             "resources.cpu_tasks": 2}
    torchrun(micro_overrides(tmp, data, "lora-zero2", **zero2))
    run = tmp / "runs" / "lora-zero2"
    one, two = losses(tmp / "runs" / "lora-single"), losses(run)
    assert sorted(two) == list(range(1, 17))
    assert [two[s] for s in sorted(one)] == pytest.approx([one[s] for s in sorted(one)], rel=2e-4)
    evals = json.loads((run / "metrics.json").read_text())["evals"]
    assert [e["step"] for e in evals] == [8, 16] and all(e["total_num"] == 8 for e in evals)
    states = run / "checkpoints" / "step-00000008" / "deepspeed" / "mp_rank_00_model_states.pt"
    module = torch.load(states, map_location="cpu", weights_only=False)["module"]
    assert module and all("lora_" in k for k in module)  # exclude_frozen_parameters: the base is not saved
    resumed = tmp / "runs" / "lora-zero2-resumed"
    resumed.mkdir()
    shutil.copytree(run / "checkpoints" / "step-00000008", resumed / "checkpoints" / "step-00000008")
    torchrun(micro_overrides(tmp, data, "lora-zero2-resumed", **zero2))
    again = losses(resumed)
    assert sorted(again) == list(range(9, 17))
    assert [again[s] for s in sorted(again)] == pytest.approx([two[s] for s in sorted(again)], rel=1e-6)
    a = load_file(run / "adapter" / "adapter_model.safetensors")
    b = load_file(resumed / "adapter" / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)
