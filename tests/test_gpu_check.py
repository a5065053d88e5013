"""``make gpu-check`` with the tiny shape on a CPU: every part that can run without a GPU runs and is reported."""

import json

import pytest

from launch.gpu_check import deepspeed_roundtrip, main


@pytest.mark.slow  # ~15 s alone, 45 s on the shared 2-core machine (bf16 matmuls on a CPU are slow)
def test_judging_checks_run_on_cpu_and_report_what_needs_a_gpu(tmp_path):
    out = tmp_path / "gpu-check.json"
    assert main(["shape=tiny", "skip=[train]", f"out={out}"]) == 0
    r = json.loads(out.read_text())
    assert r["env"]["gpus"] == [] and r["env"]["torch"]
    assert r["fp32_sdpa"]["identical"] == 1.0 and r["fp32_sdpa"]["prompts"] == 4
    assert 0.0 <= r["bf16_sdpa"]["identical"] <= 1.0
    assert "CUDA" in r["bf16_fa2"]["skipped"] and "CUDA" in r["vllm"]["skipped"]
    assert r["hf_at_budget"]["batch_tokens"] == 65536 and r["hf_at_budget"]["units"] == 8
    table = (tmp_path / "gpu-check.md").read_text()
    assert "| fp32 SDPA identical to one-at-a-time (must be 1) | 1.00 |" in table and "CPU only" in table


def test_a_wrong_skip_is_one_error_line(capsys):
    assert main(["shape=tiny", "skip=[trian]"]) == 2
    assert "skip a list of vllm, train" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_three_deepspeed_steps_export_reload_and_judge(tmp_path, stage):
    d = deepspeed_roundtrip("tiny", stage, tmp_path)
    assert d["steps"] == 3 and d["judged"] == 4
    assert "deepspeed on 1 × cpu" in d["log"] and d["export_dtype"] == "float32"


@pytest.mark.slow
def test_the_adapter_checks_run_lora_on_cpu_and_say_why_qlora_cannot(tmp_path):
    from launch.gpu_check import adapter_roundtrip

    (tmp_path / "lora").mkdir()
    d = adapter_roundtrip("tiny", "lora", tmp_path / "lora")
    assert d["steps"] == 3 and d["evals"] == 2 and d["merged_identical"] == 1.0  # fp32 on a CPU: exact
    assert "%" in d["trainable"]
    assert "CUDA" in adapter_roundtrip("tiny", "qlora", tmp_path / "qlora")["skipped"]
