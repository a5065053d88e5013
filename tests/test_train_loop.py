"""The single-process trainer: it learns, resumes at the exact step, checkpoints atomically, exports."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from safetensors.torch import load_file

from judgelm.config import ConfigError
from judgelm.train import checkpoint
from judgelm.train.loop import train
from tests.test_train_fixtures import losses, micro_config, write_micro_data


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    data = write_micro_data(tmp / "train.jsonl")
    cfg = micro_config(tmp, data, "full")
    result = train(cfg, tmp / "runs" / "full")
    return tmp, data, cfg, result


def stop_after(k: int):
    """The loop asks once per step; answer yes from the (k+1)-th question on: stop after k steps."""
    asked = itertools.count()
    return lambda: next(asked) >= k


def test_trains_and_exports_a_loadable_judge(uninterrupted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp, _, cfg, result = uninterrupted
    run = tmp / "runs" / "full"
    assert result.status == "finished" and result.step == result.total_steps == 20
    curve = losses(run)
    assert sorted(curve) == list(range(1, 21))
    assert curve[20] < 0.6 * curve[1]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(r["tokens_per_s"] > 0 and r["mfu"] > 0 and r["lr"] >= 0 for r in rows)
    # Warmup over 2 steps (10 % of 20), then cosine towards 0.
    assert [r["lr"] for r in rows[:2]] == pytest.approx([cfg.optim.lr / 2, cfg.optim.lr])
    assert all(a["lr"] >= b["lr"] for a, b in zip(rows[1:], rows[2:])) and rows[-1]["lr"] < 0.01 * cfg.optim.lr

    model_dir = run / "model"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.use_cache and model.config.eos_token_id == tok.eos_token_id == 2
    # The export holds exactly the weights of the final checkpoint.
    state = torch.load(run / "checkpoints" / "step-00000020" / "state.pt", weights_only=True)["model"]
    exported = load_file(model_dir / "model.safetensors")
    assert exported.keys() == state.keys()
    assert all(torch.equal(exported[k], state[k]) for k in state)
    ids = tok("[Question]\nQuestion 3: apple?").input_ids
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > len(ids)


def test_stopped_and_resumed_run_matches_the_uninterrupted_one(uninterrupted):
    tmp, data, _, result = uninterrupted
    cfg = micro_config(tmp, data, "resumed")
    run = tmp / "runs" / "resumed"
    first = train(cfg, run, stop=stop_after(7))
    assert (first.status, first.step) == ("preempted", 7)
    ckpts = run / "checkpoints"
    assert [s for s, _ in checkpoint.complete_checkpoints(ckpts)] == [7]
    # Debris of an interrupted save must not be taken for a checkpoint: a half-written temporary directory,
    # and a step directory without the completion marker.
    (ckpts / ".tmp-step-00000009").mkdir()
    (ckpts / ".tmp-step-00000009" / "state.pt").write_bytes(b"half")
    (ckpts / "step-00000008").mkdir()

    second = train(cfg, run, stop=stop_after(6))
    assert (second.status, second.step) == ("preempted", 13)
    assert not (ckpts / ".tmp-step-00000009").exists()
    third = train(cfg, run)
    assert (third.status, third.step) == ("finished", 20)

    full, resumed = losses(tmp / "runs" / "full"), losses(run)
    assert sorted(resumed) == sorted(full)
    assert [resumed[s] for s in sorted(full)] == pytest.approx([full[s] for s in sorted(full)], rel=1e-6, abs=0)
    a = load_file(tmp / "runs" / "full" / "model" / "model.safetensors")
    b = load_file(run / "model" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)
    log = (run / "train.log").read_text()
    assert "resumed from step-00000007" in log and "resumed from step-00000013" in log


def test_resuming_with_another_training_config_is_refused(uninterrupted):
    tmp, data, _, _ = uninterrupted
    run = tmp / "runs" / "changed"
    train(micro_config(tmp, data, "changed"), run, stop=stop_after(2))
    with pytest.raises(ConfigError, match="different training config"):
        train(micro_config(tmp, data, "changed", **{"optim.lr": 1e-3}), run)
    # Where and how verbosely it runs may change between attempts.
    assert train(micro_config(tmp, data, "changed", log_every=1), run).status == "finished"


def test_global_batch_must_split_evenly(tmp_path):
    data = write_micro_data(tmp_path / "train.jsonl")
    with pytest.raises(ConfigError, match="not a multiple"):
        micro_config(tmp_path, data, "bad", global_batch=6, micro_batch=4)
    with pytest.raises(ConfigError, match="backend=single runs one process"):
        micro_config(tmp_path, data, "bad", **{"resources.cpu_tasks": 2})


def test_gradient_checkpointing_leaves_the_losses_unchanged(uninterrupted):
    tmp, data, _, _ = uninterrupted
    run = tmp / "runs" / "ckpt-grad"
    cfg = micro_config(tmp, data, "ckpt-grad", **{"model.gradient_checkpointing": "true"})
    assert train(cfg, run, stop=stop_after(4)).step == 4
    full, recomputed = losses(tmp / "runs" / "full"), losses(run)
    assert [recomputed[s] for s in range(1, 5)] == pytest.approx([full[s] for s in range(1, 5)], rel=1e-6)


@pytest.mark.parametrize("enabled", [False, True])
def test_gradient_checkpointing_recomputes_layer_forwards_in_backward(random_judge, enabled):
    """With checkpointing on, each decoder layer runs its forward again during backward; off, it does not.

    Counted by a module inside each layer's MLP: forward hooks do not fire during the recompute."""
    from transformers import AutoTokenizer

    from judgelm.train.config import ModelConfig, ScratchConfig
    from judgelm.train.model import build_model

    tok = AutoTokenizer.from_pretrained(random_judge)
    scratch = ScratchConfig(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_position_embeddings=64)
    model = build_model(ModelConfig(scratch=scratch, gradient_checkpointing=enabled), tok, torch.float32,
                        torch.device("cpu"), seed=0)
    model.train()
    calls = []

    class Counted(torch.nn.Module):
        def __init__(self, act):
            super().__init__()
            self.act = act

        def forward(self, x):
            calls.append(1)
            return self.act(x)

    for layer in model.model.layers:
        layer.mlp.act_fn = Counted(layer.mlp.act_fn)
    x = torch.randint(4, len(tok), (2, 16))
    loss = model(input_ids=x, labels=x).loss
    forward_calls = len(calls)
    loss.backward()
    assert forward_calls == 2
    assert len(calls) - forward_calls == (2 if enabled else 0)
