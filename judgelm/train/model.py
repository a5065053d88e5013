"""The model and tokenizer a run trains: a pretrained checkpoint, or the tiny judge built from scratch.

Runtime choices follow the judging side (``judgelm.inference.models``): flash-attention 2 only where CUDA and the
package exist, else SDPA. Weights are bf16 only under DeepSpeed on a GPU (DeepSpeed keeps fp32 masters);
the single backend keeps fp32 weights and autocasts on a GPU, and a CPU run is fp32 throughout.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

from judgelm.inference.models import load_tokenizer, pick_attention
from judgelm.train import distributed
from judgelm.train.config import ModelConfig, ScratchConfig, TrainConfig
from judgelm.train.tokenizer import build_tiny_tokenizer


def param_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    if cfg.model.dtype != "auto":
        return getattr(torch, cfg.model.dtype)
    # A frozen base (LoRA, QLoRA) needs no fp32 copy: bf16 on a GPU, the adapters stay fp32 (PEFT's choice).
    bf16 = device.type == "cuda" and (cfg.backend == "deepspeed" or cfg.method != "full")
    return torch.bfloat16 if bf16 else torch.float32


def load_or_build_tokenizer(cfg: TrainConfig, run_dir: Path, records: list, is_main: bool):
    """A pretrained model's own tokenizer, or (scratch) the run's BPE, built once by rank 0 and kept in the
    run directory so a resumed run tokenises exactly as before."""
    if cfg.model.path:
        return load_tokenizer(cfg.model.path)
    tok_dir = run_dir / "tokenizer"
    if is_main and not (tok_dir / "tokenizer.json").is_file():
        s = cfg.model.scratch
        build_tiny_tokenizer(records, s.vocab_size, s.max_position_embeddings, tok_dir)
    distributed.barrier()
    return AutoTokenizer.from_pretrained(tok_dir)


def scratch_config(s: ScratchConfig, tokenizer) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=s.hidden_size, intermediate_size=s.intermediate_size,
        num_hidden_layers=s.num_layers, num_attention_heads=s.num_heads, num_key_value_heads=s.num_heads,
        max_position_embeddings=s.max_position_embeddings, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)


def build_model(cfg: ModelConfig, tokenizer, dtype: torch.dtype, device: torch.device, seed: int,
                quantization=None):
    """The model on CPU (the backend moves or partitions it). Under ZeRO-3 a pretrained model is loaded
    straight into partitions when the caller holds an ``HfDeepSpeedConfig``. With ``quantization`` (QLoRA's
    bitsandbytes config) the base is quantized as it loads, straight onto this process's GPU."""
    attn = pick_attention(cfg.attn_implementation, device, dtype)
    if cfg.path:
        placement = {"device_map": {"": device.index or 0}} if quantization is not None else {}
        model = AutoModelForCausalLM.from_pretrained(cfg.path, dtype=dtype, attn_implementation=attn,
                                                     quantization_config=quantization, **placement)
    else:
        torch.manual_seed(seed)  # the initial weights are part of the run's determinism
        model = AutoModelForCausalLM.from_config(scratch_config(cfg.scratch, tokenizer), dtype=dtype,
                                                 attn_implementation=attn)
    model.config.use_cache = False  # no KV cache in training; restored for the exported model
    if cfg.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model


def count_params(model: torch.nn.Module) -> int:
    # ZeRO-3 partitioned parameters report their full size in ds_numel.
    return sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())
