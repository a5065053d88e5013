"""What a training run needs per GPU, from the model's shape and the run's config alone (no weights read).

Per GPU, in bytes, with P the model's parameters, T the trainable ones and N the data-parallel processes:

* **weights**: bf16 ``2P`` (the single backend on a GPU: fp32 ``4P``); QLoRA's base 4.127 bits per quantized value
  (NF4 with double quantization: 4 bits plus 0.127 of scales) and bf16 for the embeddings, head and norms; ZeRO-3
  divides them by N.
* **gradients** of the trainable parameters: bf16 ``2T`` under DeepSpeed (which casts the module, adapters
  included, to bf16), fp32 ``4T`` in the single backend (PEFT keeps adapters in fp32 on a bf16 base); ZeRO-2/3
  divide them by N.
* **optimizer**: AdamW's m and v in fp32 (``8T``) plus DeepSpeed's fp32 master copy (``4T``) where the weights are
  bf16; ZeRO-1/2/3 divide them by N.
* **activations** (bf16): Korthikanti et al. (2022)'s ``34·b·s·h`` bytes per layer for a micro-batch of b sequences
  of s tokens (SDPA/flash attention: no ``a·s²`` score term); with gradient checkpointing only each layer's input
  (``2·b·s·h``) is kept, plus one layer being recomputed. The loss's fp32 logits count at most 512 target tokens
  per sequence (a judgement is shorter).
* **reserve**: 1 GiB of CUDA context and workspaces, and 10 % of the GPU kept free against fragmentation.

The figures are upper-bound estimates for planning, not measurements; ``make gpu-check`` measures the real peak.
``python -m judgelm.train.memory_plan`` prints the table of ``docs/training.md`` from the shipped size configs.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from judgelm.inference.gpu_plan import GB, REFERENCE_SHAPES, count_params, model_config
from judgelm.inference.memory import RESERVE_BYTES
from judgelm.train.config import TrainConfig, repo_path

QLORA_BITS = 4.127  # NF4 + double quantization (QLoRA paper, §3)
MARGIN = 0.10
MAX_TARGET_TOKENS = 512


def _module_shapes(c) -> dict[str, tuple[int, int]]:
    """(in, out) features of each linear module of one Llama-style decoder layer."""
    hd = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    h, q, k, i = c.hidden_size, c.num_attention_heads * hd, kv * hd, c.intermediate_size
    return {"q_proj": (h, q), "k_proj": (h, k), "v_proj": (h, k), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


@dataclass
class MemoryPlan:
    params: int
    trainable: int
    processes: int
    zero: int  # 0: no DeepSpeed
    weights: float
    gradients: float
    optimizer: float
    activations: float
    gpu_gb: float | None

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + RESERVE_BYTES

    @property
    def fits(self) -> bool | None:
        return None if not self.gpu_gb else self.total <= self.gpu_gb * GB * (1 - MARGIN)

    def text(self, per: str = "GPU") -> str:
        share = f"{self.trainable / 1e6:,.1f} M of {self.params / 1e9:.2f} B" if self.params > 1e9 else \
            f"{self.trainable:,} of {self.params:,}"
        verdict = "" if self.fits is None else (f" of {self.gpu_gb:g} GB: fits" if self.fits else
                                                f" of {self.gpu_gb:g} GB: DOES NOT FIT")
        return (f"trainable {share} parameters ({100 * self.trainable / self.params:.2f} %); per {per}: weights "
                f"{self.weights / GB:.1f} GB, gradients {self.gradients / GB:.1f} GB, optimizer "
                f"{self.optimizer / GB:.1f} GB, activations {self.activations / GB:.1f} GB, + 1 GB reserve = "
                f"{self.total / GB:.1f} GB{verdict}")


def shape_of(cfg: TrainConfig):
    """The model's config: ``model.path``'s, else the reference shape of the size (a hub id not cached here)."""
    if not cfg.model.path:
        from transformers import LlamaConfig

        s = cfg.model.scratch
        return LlamaConfig(vocab_size=s.vocab_size, hidden_size=s.hidden_size, intermediate_size=s.intermediate_size,
                           num_hidden_layers=s.num_layers, num_attention_heads=s.num_heads,
                           tie_word_embeddings=False)
    path = repo_path(cfg.model.path)
    if not path.exists() and cfg.size in REFERENCE_SHAPES:
        return model_config(cfg.size)  # a hub id: planned from the size's shape, without asking the hub
    return model_config(str(path) if path.exists() else cfg.model.path)


def plan_memory(cfg: TrainConfig, gpu_gb: float | None = None, zero: int = 0, shape=None) -> MemoryPlan:
    """Per-GPU memory of ``cfg`` (``zero``: its ZeRO stage, 0 without DeepSpeed)."""
    c = shape if shape is not None else shape_of(cfg)
    P = count_params(c)
    n = cfg.world_size
    layers, h = c.num_hidden_layers, c.hidden_size
    shapes = _module_shapes(c)
    adapters = cfg.method != "full"
    T = P if not adapters else layers * sum(cfg.lora.rank * (i + o) for m, (i, o) in shapes.items()
                                            if m in cfg.lora.target_modules)
    ds = cfg.backend == "deepspeed"
    if cfg.method == "qlora":
        linear = layers * sum(i * o for i, o in shapes.values())
        base = linear * QLORA_BITS / 8 + (P - linear) * 2
    else:
        base = P * (2 if ds or adapters else 4)
    trainable_bytes = 2 if ds else 4
    weights = base / (n if zero == 3 else 1)
    if adapters:
        weights += trainable_bytes * T / (n if zero == 3 else 1)
    gradients = trainable_bytes * T / (n if zero >= 2 else 1)
    optimizer = (12 if ds else 8) * T / (n if zero >= 1 else 1)
    b, s = cfg.micro_batch, cfg.data.max_length
    per_layer = 34 * b * s * h
    acts = (2 * b * s * h * layers + per_layer) if cfg.model.gradient_checkpointing else per_layer * layers
    acts += b * min(s, MAX_TARGET_TOKENS) * c.vocab_size * 4 * 2  # fp32 logits and their gradient
    return MemoryPlan(P, T, n, zero, weights, gradients, optimizer, acts, gpu_gb)


def layout(cfg: TrainConfig) -> tuple[str, int]:
    """``"1 × 8, ZeRO-2"`` and the ZeRO stage of a config."""
    zero = 0
    if cfg.backend == "deepspeed":
        ds = json.loads(repo_path(cfg.deepspeed_config).read_text())
        zero = int(ds.get("zero_optimization", {}).get("stage", 0))
    r = cfg.resources
    where = f"{r.nodes} × {r.gpus_per_node} GPU" if r.gpus_per_node else f"{r.cpu_tasks} CPU process"
    return f"{where}, {f'ZeRO-{zero}' if zero else cfg.backend}", zero


def table(sizes=("7b", "13b", "33b", "70b"), methods=("full", "lora", "qlora"), gpu_gb: float = 80) -> str:
    """The docs' plan table: every size × method as its size config (and ``methods:`` block) sets it up."""
    from judgelm.train.config import load_train_config

    rows = ["| size | method | nodes × GPUs, sharding | micro × seq | trainable | weights | grads + optimizer | "
            "activations | per GPU (of 80 GB) |", "|---|---|---|---|---|---|---|---|---|"]
    for size in sizes:
        for method in methods:
            cfg = load_train_config([f"size={size}", f"method={method}", "run=plan"])
            where, zero = layout(cfg)
            p = plan_memory(cfg, gpu_gb, zero)
            rows.append(f"| {size} | {method} | {where} | {cfg.micro_batch} × {cfg.data.max_length} | "
                        f"{p.trainable / 1e6:,.1f} M ({100 * p.trainable / p.params:.2f} %) | "
                        f"{p.weights / GB:.1f} GB | {(p.gradients + p.optimizer) / GB:.1f} GB | "
                        f"{p.activations / GB:.1f} GB | {p.total / GB:.1f} GB{'' if p.fits else ' (too much)'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(table() + "\n")
