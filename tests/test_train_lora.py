"""LoRA on a copy of the shipped tiny judge: it trains only the adapters, resumes step-exactly after a stop,
exports the adapter and the merged weights, judges a held-out set while it trains and keeps the best checkpoint,
and writes its curves where TensorBoard and W&B read them."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from judgelm.config import REPO_ROOT, ConfigError
from judgelm.train import checkpoint
from judgelm.train.loop import train
from tests.test_train_fixtures import losses, micro_config, write_micro_data
from tests.test_train_loop import stop_after

LORA = {"method": "lora", "lora.rank": 4, "lora.alpha": 8, "lora.dropout": 0.1, "optim.lr": 5e-3,
        "data.holdout": 8, "eval_every": 4, "keep_checkpoints": 1}  # 32 records train: 8 steps/epoch, 16 in all


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The shipped tiny judge, copied: the adapter names its base by path, and nothing may write into models/."""
    d = tmp_path_factory.mktemp("base") / "tiny-judge"
    shutil.copytree(REPO_ROOT / "models" / "tiny-judge", d)
    return d


def lora_config(tmp, data, run, base, **extra):
    return micro_config(tmp, data, run, **{**LORA, "model.path": str(base), **extra})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, base):
    tmp = tmp_path_factory.mktemp("lora")
    data = write_micro_data(tmp / "train.jsonl")
    result = train(lora_config(tmp, data, "full", base), tmp / "runs" / "full")
    return tmp, data, result


def test_lora_trains_only_the_adapters_and_exports_adapter_and_merged_model(uninterrupted, base):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tmp, _, result = uninterrupted
    run = tmp / "runs" / "full"
    assert result.status == "finished" and result.step == result.total_steps == 16
    curve = losses(run)
    assert curve[16] < curve[1]
    log = (run / "train.log").read_text()
    assert "method lora: " in log and "8 held out" in log
    # A checkpoint holds the adapters and their optimizer state, not the frozen base.
    state = torch.load(checkpoint.latest(run / "checkpoints") / "state.pt", weights_only=True)["model"]
    assert state and all("lora_" in k for k in state)
    adapter = load_file(run / "adapter" / "adapter_model.safetensors")
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    assert sum(v.numel() for v in adapter.values()) == sum(v.numel() for v in state.values())
    # The merged model is the base plus the adapter's update, and its logits are those of base + adapter.
    merged = AutoModelForCausalLM.from_pretrained(run / "model").eval()
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), run / "adapter").eval()
    ids = torch.tensor([[1, 50, 60, 70, 80, 90]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, unmerged(ids).logits, atol=1e-4)
    base_q = load_file(base / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"]
    assert not torch.equal(merged.model.layers[0].self_attn.q_proj.weight, base_q)


def test_lora_stopped_and_resumed_matches_the_uninterrupted_run(uninterrupted, base):
    tmp, data, _ = uninterrupted
    run = tmp / "runs" / "resumed"
    cfg = lora_config(tmp, data, "resumed", base)
    assert train(cfg, run, stop=stop_after(6)).step == 6  # stopped between evaluations
    assert train(cfg, run, stop=stop_after(5)).step == 11
    assert train(cfg, run).status == "finished"
    full, resumed = losses(tmp / "runs" / "full"), losses(run)
    assert [resumed[s] for s in sorted(full)] == pytest.approx([full[s] for s in sorted(full)], rel=1e-6, abs=0)
    a = load_file(tmp / "runs" / "full" / "adapter" / "adapter_model.safetensors")
    b = load_file(run / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)
    # The validation figures do not depend on the interruptions either.
    evals = [json.loads((tmp / "runs" / r / "metrics.json").read_text())["evals"] for r in ("full", "resumed")]
    assert [(e["step"], e["agreement"], e["consistency"]) for e in evals[0]] == \
        [(e["step"], e["agreement"], e["consistency"]) for e in evals[1]]
    # Three attempts, one TensorBoard value per step.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 17))


def test_validation_is_logged_every_eval_every_steps_and_the_best_checkpoint_is_kept(uninterrupted):
    tmp, _, _ = uninterrupted
    run = tmp / "runs" / "full"
    m = json.loads((run / "metrics.json").read_text())
    assert [e["step"] for e in m["evals"]] == [4, 8, 12, 16]
    for e in m["evals"]:
        assert e["total_num"] == 8 and 0 <= e["agreement"] <= 1 and 0 <= e["consistency"] <= 1
        assert e["parse_failures"] >= 0 and "kappa" in e and e["too_long"] == 0
    best = max(m["evals"], key=lambda e: (e["agreement"], -e["step"]))
    assert m["best"] == {"step": best["step"], "agreement": best["agreement"],
                         "checkpoint": f"checkpoints/step-{best['step']:08d}"}
    ckpts = run / "checkpoints"
    assert (ckpts / "best").resolve() == (ckpts / f"step-{best['step']:08d}").resolve()
    assert (ckpts / f"step-{best['step']:08d}" / checkpoint.MARKER).is_file()  # kept despite keep_checkpoints=1
    kept = [s for s, _ in checkpoint.complete_checkpoints(ckpts)]
    assert kept == sorted({best["step"], 16})
    assert ((run / "model-best").is_dir() and (run / "adapter-best").is_dir()) == (best["step"] != 16)


def test_tensorboard_holds_the_curves(uninterrupted):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tmp, _, _ = uninterrupted
    run = tmp / "runs" / "full"
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "train/mfu", "train/dropped",
                "eval/agreement", "eval/consistency", "eval/kappa", "eval/parse_failures"):
        assert tag in tags, tag
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, 17))
    assert [e.value for e in loss] == pytest.approx([losses(run)[s] for s in range(1, 17)], rel=1e-6)
    assert [e.step for e in acc.Scalars("eval/agreement")] == [4, 8, 12, 16]


def test_wandb_offline_writes_the_run_without_network(tmp_path, base, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_API_KEY", "")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: any call would fail
    data = write_micro_data(tmp_path / "train.jsonl", n=12)
    cfg = lora_config(tmp_path, data, "wb", base, epochs=1, eval_every=0, **{"data.holdout": 0},
                      report_to="[tensorboard,wandb]", **{"wandb.mode": "offline", "wandb.project": "t"})
    run = tmp_path / "runs" / "wb"
    assert train(cfg, run).status == "finished"
    runs = list((run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and (run / "tensorboard").is_dir()
    # wandb 0.31 has no Python reader for its run file; its records hold each value as JSON text.
    recorded = next(runs[0].glob("run-*.wandb")).read_bytes()
    assert b"train/loss" in recorded and b"train/tokens_per_s" in recorded
    assert json.dumps(losses(run)[3]).encode() in recorded


def test_adapter_methods_are_refused_without_a_base_and_qlora_on_a_cpu(tmp_path, base):
    data = write_micro_data(tmp_path / "train.jsonl")
    with pytest.raises(ConfigError, match="adapts a pretrained model"):
        micro_config(tmp_path, data, "x", method="lora", **{"model.path": "null"})
    with pytest.raises(ConfigError, match="qlora needs CUDA GPUs"):
        lora_config(tmp_path, data, "x", base, method="qlora")
    if not torch.cuda.is_available():
        cfg = lora_config(tmp_path, data, "x", base, method="qlora", **{"resources.gpus_per_node": 1})
        with pytest.raises(ConfigError, match="needs a CUDA GPU"):
            train(cfg, tmp_path / "runs" / "x")


@pytest.mark.slow  # two judging runs through launch.judge
def test_make_judge_on_the_merged_model_gives_the_verdicts_of_base_plus_adapter(uninterrupted):
    import numpy as np

    from judgelm.judging.store import VerdictStore
    from judgelm.rundir import RunDir
    from launch import judge as launch_judge
    from tests.conftest import write_pairs

    tmp, _, _ = uninterrupted
    data = write_pairs(tmp / "pairs.jsonl", 12, with_reference_every=3)
    stores = []
    for name in ("model", "adapter"):
        assert launch_judge.main([f"model.path={tmp / 'runs' / 'full' / name}", f"data.source={data}",
                                  f"run=judge-{name}", f"runs_dir={tmp / 'judged'}", "shards=1"]) == 0
        stores.append(VerdictStore(RunDir(tmp / "judged" / f"judge-{name}").store))
    merged, adapter = stores
    assert merged.done().all() and adapter.done().all()
    for name in ("text", "scores", "status"):
        np.testing.assert_array_equal(merged.verdicts(name), adapter.verdicts(name), err_msg=name)
    runtime = (tmp / "judged" / "judge-adapter" / "config.yaml").read_text()
    assert f"path: {tmp / 'runs' / 'full' / 'adapter'}" in runtime


def test_lora_killed_mid_run_resumes_to_the_same_curve_and_adapter(uninterrupted, base):
    """SIGKILL, no warning: the steps after the last checkpoint are lost and redone, and the run still ends where
    the uninterrupted one did (loss per step, adapter weights, one TensorBoard value per step)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.test_train_fixtures import micro_overrides

    tmp, data, _ = uninterrupted
    run = tmp / "runs" / "killed"
    args = micro_overrides(tmp, data, "killed", **{**LORA, "model.path": str(base), "save_every": 3, "log_every": 1})
    proc = subprocess.Popen([sys.executable, "-m", "judgelm.train", *args], cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            rows = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").is_file() else []
            if len(rows) >= 7:  # past the checkpoint of step 6, before the next one
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = len((run / "metrics.jsonl").read_text().splitlines())
    assert 7 <= killed_at < 16
    assert train(lora_config(tmp, data, "killed", base, save_every=3), run).status == "finished"
    full, resumed = losses(tmp / "runs" / "full"), losses(run)
    assert [resumed[s] for s in sorted(full)] == pytest.approx([full[s] for s in sorted(full)], rel=1e-6, abs=0)
    a = load_file(tmp / "runs" / "full" / "adapter" / "adapter_model.safetensors")
    b = load_file(run / "adapter" / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 17))
