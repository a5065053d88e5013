"""Loading a judge (any directory or hub id that ``transformers`` can load) with the right runtime choices.

Attention and precision are chosen at run time: flash-attention 2 and bf16 only where CUDA and the
``flash_attn`` package are both present, SDPA and fp32 on a CPU. A released JudgeLM checkpoint on a cluster and
the tiny judge built here go through the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class ModelConfig:
    """Which judge to load and how."""

    path: str = "artifacts/tiny-judge"
    """A local model directory or a hub id (``BAAI/JudgeLM-7B-v1.0``). The default is the tiny judge that
    ``make train SIZE=tiny`` builds on this machine."""
    dtype: str = "auto"
    """``auto`` (bf16 on CUDA, fp32 on CPU), ``bfloat16``, ``float16`` or ``float32``."""
    attn_implementation: str = "auto"
    """``auto`` (flash_attention_2 where usable, else sdpa), ``sdpa``, ``eager`` or ``flash_attention_2``."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``."""


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    if requested == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, requested)


def pick_attention(requested: str, device: torch.device) -> str:
    """flash_attention_2 only where it can run; asking for it explicitly without the package is an error."""
    from transformers.utils import is_flash_attn_2_available

    usable = device.type == "cuda" and is_flash_attn_2_available()
    if requested == "auto":
        return "flash_attention_2" if usable else "sdpa"
    if requested == "flash_attention_2" and not usable:
        raise RuntimeError("attn_implementation=flash_attention_2 needs CUDA and the flash-attn package "
                           "(pip install flash-attn --no-build-isolation); use auto or sdpa")
    return requested


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    # Batched prompts are left-padded so every row's last token sits at the same position for decoding.
    tok.padding_side = "left"
    if tok.pad_token_id is None:  # LLaMA-1 tokenizers (JudgeLM) have none; JudgeLM pads with unk
        tok.pad_token = tok.unk_token if tok.unk_token is not None else tok.eos_token
    return tok


def encode_with_bos(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids with BOS first, as JudgeLM forces ``input_ids[0][0] = bos`` whatever the tokenizer does; the
    same for training and judging, so a judge is trained on exactly the ids it will see."""
    ids = tokenizer(texts, add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None:
        ids = [x if x and x[0] == bos else [bos] + x for x in ids]
    return ids


def load_judge(cfg: ModelConfig):
    """``(model, tokenizer, device)`` ready for inference."""
    from transformers import AutoModelForCausalLM

    if not os.path.isdir(cfg.path) and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise FileNotFoundError(f"model directory {cfg.path} not found (and HF_HUB_OFFLINE=1)")
    device = pick_device(cfg.device)
    dtype = pick_dtype(cfg.dtype, device)
    model = AutoModelForCausalLM.from_pretrained(cfg.path, dtype=dtype,
                                                 attn_implementation=pick_attention(cfg.attn_implementation, device))
    model.to(device).eval()
    return model, load_tokenizer(cfg.path), device
