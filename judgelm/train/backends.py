"""The two ways a step is executed: plain PyTorch in one process, or a DeepSpeed ZeRO engine.

Both expose the same small surface to the loop: ``forward``, ``backward`` (once per micro-batch), ``step``
(once per optimizer step; returns the gradient norm), ``lr``, ``save``/``load`` (into a checkpoint directory)
and ``full_state_dict`` (the whole model on rank 0, for export). Both use AdamW and the same warmup + cosine
schedule, so a run's numbers do not depend on the backend beyond floating-point reduction order.

The raw DeepSpeed engine is used, not the HF Trainer: on CPU the Trainer does not shard data across ranks
(cpu-stack §3.3), and a hand-written loop keeps the sample schedule and loss normalisation under our control.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch.optim.lr_scheduler import LambdaLR

from judgelm.train.adapters import inner_model, load_trainable_state, trainable_state
from judgelm.train.config import OptimConfig, TrainConfig, repo_path


def warmup_cosine(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """LR multiplier after ``step`` optimizer steps: linear warmup, then cosine to zero at ``total_steps``.

    The warmup starts at ``1/warmup`` rather than HF's 0, so the first step is not wasted at lr 0.
    """
    warmup = math.ceil(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _adamw(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    # Norm weights and biases (1-D) are not decayed; JudgeLM's weight decay is 0 anyway.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


class SingleBackend:
    """One process, plain PyTorch. On a GPU: fp32 weights with bf16 autocast (a QLoRA base stays in 4 bits)."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, total_steps: int, device: torch.device):
        quantized = getattr(inner_model(model), "hf_quantizer", None) is not None
        self.model = model if quantized else model.to(device)  # a 4-bit model is already on its GPU
        self.adapters_only = cfg.method != "full"
        self.optimizer = _adamw(model, cfg.optim)
        self.scheduler = LambdaLR(self.optimizer, warmup_cosine(total_steps, cfg.optim.warmup_ratio))
        self.grad_clip = cfg.optim.grad_clip
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" \
            else contextlib.nullcontext

    def forward(self, **batch):
        with self.autocast():
            return self.model(**batch)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> float:
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip or math.inf)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def save(self, d: Path) -> None:
        # With adapters the frozen base is not saved: resume reads it again from model.path.
        weights = trainable_state(self.model) if self.adapters_only else self.model.state_dict()
        torch.save({"model": weights, "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict()}, d / "state.pt")

    def load(self, d: Path) -> None:
        state = torch.load(d / "state.pt", map_location="cpu", weights_only=True)
        if self.adapters_only:
            load_trainable_state(self.model, state["model"])
        else:
            self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def unwrapped(self) -> torch.nn.Module:
        return self.model


def deepspeed_config(cfg: TrainConfig, bf16: bool) -> dict:
    """The JSON of ``cfg.deepspeed_config`` with its ``"auto"`` values filled from the training config."""
    ds = json.loads(repo_path(cfg.deepspeed_config).read_text())
    filled = {"train_micro_batch_size_per_gpu": cfg.micro_batch, "gradient_accumulation_steps": cfg.grad_accum,
              "train_batch_size": cfg.global_batch, "gradient_clipping": cfg.optim.grad_clip}
    for key, value in filled.items():
        if ds.get(key, "auto") != "auto" and ds[key] != value:
            raise ValueError(f"{cfg.deepspeed_config}: {key}={ds[key]} contradicts the training config ({value}); "
                             "leave it \"auto\"")
        ds[key] = value
    ds["bf16"] = {**ds.get("bf16", {}), "enabled": bf16}
    return ds


def zero_stage(ds: dict) -> int:
    return int(ds.get("zero_optimization", {}).get("stage", 0))


class DeepSpeedBackend:
    """A DeepSpeed engine (ZeRO-2 or ZeRO-3) over all processes. With bf16, DeepSpeed keeps fp32 master
    weights in the (partitioned) optimizer state."""

    TAG = "deepspeed"

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, total_steps: int, ds_config: dict):
        import deepspeed

        self.engine, *_ = deepspeed.initialize(
            model=model, optimizer=_adamw(model, cfg.optim), config=ds_config,
            lr_scheduler=lambda opt: LambdaLR(opt, warmup_cosine(total_steps, cfg.optim.warmup_ratio)))
        self.zero3 = zero_stage(ds_config) == 3
        self.adapters_only = cfg.method != "full"

    def forward(self, **batch):
        return self.engine(**batch)

    def backward(self, loss: torch.Tensor) -> None:
        # The loop has already normalised the loss over the whole global batch; DeepSpeed must not divide it
        # again by the accumulation steps. It steps the optimizer itself on the last micro-batch.
        self.engine.backward(loss, scale_wrt_gas=False)
        self.engine.step()

    def step(self) -> float:
        if not self.engine.was_step_applied():
            raise RuntimeError("DeepSpeed did not apply an optimizer step at the end of the global batch")
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def lr(self) -> float:
        return self.engine.get_lr()[0]

    def save(self, d: Path) -> None:
        # With adapters the frozen base is left out: resume reads it again from model.path.
        self.engine.save_checkpoint(str(d), tag=self.TAG, save_latest=False,
                                    exclude_frozen_parameters=self.adapters_only)

    def load(self, d: Path) -> None:
        path, _ = self.engine.load_checkpoint(str(d), tag=self.TAG, load_optimizer_states=True,
                                              load_lr_scheduler_states=True,
                                              load_module_strict=not self.adapters_only)
        if path is None:
            raise RuntimeError(f"DeepSpeed could not load the checkpoint in {d}")

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """Collective under ZeRO-3 (gathered layer by layer onto rank 0); ``None`` on other ranks."""
        if self.zero3:
            return self.engine._zero3_consolidated_16bit_state_dict()
        return self.engine.module.state_dict() if self.engine.global_rank == 0 else None

    def unwrapped(self) -> torch.nn.Module:
        return self.engine.module
