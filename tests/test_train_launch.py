"""``python -m launch.train``: the dry-run plan, and a submitit job that is signalled, requeued and resumed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from judgelm.config import REPO_ROOT
from launch import train as launcher
from tests.test_train_fixtures import losses, micro_overrides, write_micro_data


@pytest.mark.skipif(shutil.which("srun") is None, reason="submitit renders sbatch scripts only where srun exists")
def test_dry_run_33b_prints_a_plan_an_operator_accepts(tmp_path, capsys):
    # No cluster= given: the 33B size names its production profile (configs/cluster/a100.yaml).
    assert launcher.main(["size=33b", "dry_run=true", "run=j33", f"runs_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "a100 (slurm)" in out
    assert not (tmp_path / "j33").exists()  # nothing created, nothing submitted
    for line in ("#SBATCH --nodes=2", "#SBATCH --gpus-per-node=8", "#SBATCH --ntasks-per-node=8",
                 "#SBATCH --mem=512GB", "#SBATCH --time=1440", "#SBATCH --signal=USR2@600",
                 "#SBATCH --job-name=judgelm-train:j33", "#SBATCH --partition=gpu", "#SBATCH --constraint=a100-80gb"):
        assert line in out
    assert re.search(r"#SBATCH --comment='run=j33 cfg=[0-9a-f]{12}'", out)
    cluster_block = out.split("\ncluster:\n", 1)[1].split("\ndry_run:", 1)[0]  # as the job gets it
    for line in ("  nodes: 2", "  gpus_per_node: 8", "  mem_gb: 512", "  timeout_min: 1440", "  signal_delay_s: 600"):
        assert line in cluster_block.splitlines()
    assert "global 128 = micro 2 × accum 4 × world 16" in out
    assert "deepspeed ZeRO-3" in out and "lr 2e-05 cosine, warmup 3%, wd 0.0" in out
    assert "model: lmsys/vicuna-33b-v1.3" not in out and "path: lmsys/vicuna-33b-v1.3" in out


def test_dry_run_tiny_on_this_machine(tmp_path, capsys):
    assert launcher.main(["size=tiny", "dry_run=true", "run=t", f"runs_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "global 8 = micro 4 × accum 2 × world 1" in out and "no sbatch script" in out
    assert "export_dir: artifacts/tiny-judge" in out


def test_requeue_signal_checkpoints_requeues_and_resumes(tmp_path):
    """A local submitit job gets USR2 mid-run: it checkpoints, submitit requeues it, the new attempt resumes at
    the saved step and the run finishes with every step logged exactly once."""
    data = write_micro_data(tmp_path / "train.jsonl")
    args = micro_overrides(tmp_path, data, "requeue", epochs=20, log_every=1)  # 200 steps
    proc = subprocess.Popen([sys.executable, "-m", "launch.train", *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = tmp_path / "runs" / "requeue"
    try:
        deadline = time.time() + 300
        pid = None
        while time.time() < deadline and pid is None:
            metrics = run / "metrics.jsonl"
            if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
                pid = int(re.search(r"\(pid (\d+)\)", (run / "train.log").read_text()).group(1))
            time.sleep(0.05)
        assert pid is not None, "training did not start"
        os.kill(pid, signal.SIGUSR2)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    log = (run / "train.log").read_text()
    stopped = int(re.search(r"stopping at step (\d+) on request", log).group(1))
    assert 2 <= stopped < 200
    assert f"resumed from step-{stopped:08d}" in log
    assert "finished at step 200/200" in out
    steps = [int(m) for m in re.findall(r'"step": (\d+)', (run / "metrics.jsonl").read_text())]
    assert steps == list(range(1, 201))  # nothing lost, nothing repeated
    assert len(losses(run)) == 200 and (run / "model" / "model.safetensors").is_file()


@pytest.mark.skipif(shutil.which("srun") is None, reason="submitit renders sbatch scripts only where srun exists")
def test_dry_run_33b_qlora_plans_one_node_with_trainable_parameters_and_memory(tmp_path, capsys):
    assert launcher.main(["size=33b", "train.method=qlora", "dry_run=true", "run=q33", f"runs_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --nodes=1" in out and "#SBATCH --gpus-per-node=8" in out
    assert "1 node(s) × 8 GPUs" in out and "deepspeed ZeRO-2" in out and "lr 0.0002 cosine" in out
    assert "qlora: rank 16, alpha 32" in out and "4-bit NF4 base" in out
    assert re.search(r"trainable 121\.9 M of 32\.53 B parameters \(0\.37 %\); per GPU: .* of 80 GB: fits", out)
    assert not (tmp_path / "q33").exists()


def test_qlora_on_a_cpu_and_validation_under_zero3_are_refused_in_one_line(tmp_path, capsys):
    assert launcher.main(["size=tiny", "train.method=qlora", "dry_run=true", f"runs_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: method=qlora needs CUDA GPUs")
    # In-process validation needs whole-model ranks: refused under ZeRO-3 (33b LoRA), before anything is submitted.
    assert launcher.main(["size=33b", "train.method=lora", "eval_every=50", "dry_run=true",
                          f"runs_dir={tmp_path}"]) == 2
    assert "ZeRO-3 partitions it" in capsys.readouterr().err


def test_the_planner_counts_the_adapters_peft_builds_and_the_docs_show_its_table():
    from transformers import AutoModelForCausalLM

    from judgelm.train.adapters import add_adapters, count_trainable
    from judgelm.train.config import load_train_config
    from judgelm.train.memory_plan import plan_memory, table

    cfg = load_train_config(["size=tiny", "train.method=lora", "run=p"])
    model = add_adapters(AutoModelForCausalLM.from_pretrained(REPO_ROOT / cfg.model.path), cfg)
    assert plan_memory(cfg).trainable == count_trainable(model)[0] == 78_848
    assert table() in (REPO_ROOT / "docs" / "training.md").read_text()
