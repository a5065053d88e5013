"""How many GPUs one judge replica needs, and what each judging task of a run gets.

From a model's ``config.json`` alone (no weights read): its parameter count gives the weights' size in the dtype
it will run in, its KV bytes per token (``judgelm.inference.memory``) what a useful batch costs on top. One task =
one replica on the smallest power-of-two number of GPUs that holds both with a safety margin; it loads with
``device_map`` over its GPUs (hf) or ``tensor_parallel_size`` = that number (vLLM). More throughput comes from
more array tasks, never from splitting a model that already fits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, PretrainedConfig

from judgelm.inference.memory import RESERVE_BYTES, batch_token_budget, kv_bytes_per_token

GB = 1 << 30
MIN_USEFUL_TOKENS = 16384  # a replica that cannot hold this much KV cache batches too little to be worth running
REPLICA_GPUS = (1, 2, 4, 8)

# LLaMA shapes of the judge sizes people run: JudgeLM 7B/13B/33B (LLaMA-1 / Vicuna) and a Llama-2-70B judge.
REFERENCE_SHAPES = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32),
    "13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40),
    "33b": dict(hidden_size=6656, intermediate_size=17920, num_hidden_layers=60, num_attention_heads=52),
    "70b": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8),
}


def reference_config(size: str) -> PretrainedConfig:
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=32000, dtype="float16", **REFERENCE_SHAPES[size])


def count_params(c) -> int:
    """Parameters of a decoder-only transformer with a gated MLP (Llama, Mistral, Qwen...), from its shape."""
    hd = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    attn = 2 * c.hidden_size * c.num_attention_heads * hd + 2 * c.hidden_size * kv * hd
    layer = attn + 3 * c.hidden_size * c.intermediate_size + 2 * c.hidden_size
    embeddings = c.vocab_size * c.hidden_size * (1 if getattr(c, "tie_word_embeddings", False) else 2)
    return c.num_hidden_layers * layer + embeddings + c.hidden_size


@dataclass
class ReplicaPlan:
    """One judging task: one model replica on ``gpus`` GPUs."""

    params: int
    dtype: str
    weight_bytes: int
    gpu_mem_gb: float
    gpus: int
    """GPUs per task: vLLM's ``tensor_parallel_size``; the hf engine spreads the layers over them."""
    batch_tokens: int
    """The KV budget the hf engine will derive once loaded (about; from the GPUs' total memory)."""
    fits: bool
    """False when even the largest replica considered does not hold the weights and a useful batch."""

    def text(self, tasks: int = 0) -> str:
        head = (f"{self.params / 1e9:.1f}B params in {self.dtype}: {self.weight_bytes / GB:.1f} GB of weights; "
                f"GPUs of {self.gpu_mem_gb:g} GB")
        if not self.fits:
            return f"{head}: does not fit on {self.gpus} GPUs with room for a batch"
        n = self.gpus
        hf = f"hf device_map over {n} GPUs" if n > 1 else "hf on one GPU"
        total = f"; {tasks} tasks × {n} GPU{'s' * (n > 1)} = {tasks * n} GPUs" if tasks else ""
        return (f"{head} → {n} GPU{'s' * (n > 1)} per task (vllm tensor_parallel_size={n}, {hf}), "
                f"KV budget ≈ {self.batch_tokens:,} tokens per task{total}")


def model_config(path_or_config) -> PretrainedConfig:
    """The text config of a model directory, a ``config.json`` path, or a size name of ``REFERENCE_SHAPES``."""
    if isinstance(path_or_config, PretrainedConfig):
        return path_or_config.get_text_config()
    p = Path(path_or_config)
    if p.is_file():
        d = json.loads(p.read_text())
        return AutoConfig.for_model(d.pop("model_type", "llama"), **d).get_text_config()
    if not p.exists() and str(p) in REFERENCE_SHAPES:
        return reference_config(str(p))
    try:
        from judgelm.inference.models import adapter_base

        return AutoConfig.from_pretrained(adapter_base(str(p)) or str(p)).get_text_config()
    except (OSError, ValueError):
        raise FileNotFoundError(f"no model config for {str(p)!r}: give a model directory, its config.json, a hub id "
                                f"in the local cache or a size ({', '.join(REFERENCE_SHAPES)})") from None


def plan_replica(path_or_config, gpu_mem_gb: float, gpus_per_task: int = 0, dtype: str = "auto",
                 margin: float = 0.10) -> ReplicaPlan:
    """GPUs per task for this judge: ``gpus_per_task`` when given, else the fewest that fit (see module doc)."""
    c = model_config(path_or_config)
    torch_dtype = getattr(torch, dtype) if dtype != "auto" else (getattr(c, "dtype", None) or torch.bfloat16)
    torch_dtype = getattr(torch, torch_dtype) if isinstance(torch_dtype, str) else torch_dtype
    params = count_params(c)
    weights = params * torch_dtype.itemsize
    mem = int(gpu_mem_gb * GB)
    kv_min = MIN_USEFUL_TOKENS * kv_bytes_per_token(c, torch_dtype)
    # vLLM splits attention heads evenly over the GPUs of a replica (LLaMA-33B's 52 heads: not over 8).
    choices = (gpus_per_task,) if gpus_per_task else tuple(n for n in REPLICA_GPUS if c.num_attention_heads % n == 0)
    for n in choices:
        fits = (weights + kv_min) / n <= mem * (1 - margin) - RESERVE_BYTES
        if fits or n == choices[-1]:
            free = n * mem - weights
            budget = batch_token_budget(c, torch_dtype, free, n * mem, margin) if free > 0 else 0
            return ReplicaPlan(params, str(torch_dtype).removeprefix("torch."), weights, gpu_mem_gb, n, budget, fits)
    raise AssertionError("unreachable: the last choice always returns")


def run_plan_text(model: str, tasks: int, gpu_mem_gb: float | None, gpus_per_task: int = 0, dtype: str = "auto",
                  margin: float = 0.10) -> str:
    """What ``make judge DRY_RUN=1`` prints for the tasks of a run."""
    if not gpu_mem_gb:
        return f"{tasks} CPU tasks: one model replica each (the cluster profile names no GPU memory)"
    return f"{tasks} tasks: " + plan_replica(model, gpu_mem_gb, gpus_per_task, dtype, margin).text(tasks)
