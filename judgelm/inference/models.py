"""Loading a judge (any directory or hub id that ``transformers`` can load) with the right runtime choices.

Precision, attention and placement are chosen at run time from the checkpoint and the machine:

* dtype: the checkpoint's own ``dtype``/``torch_dtype`` on a GPU (fp16 for released JudgeLM models, as JudgeLM's
  own evaluation ran), fp32 on a CPU (half-precision matmuls there are slow). One setting for the HF and vLLM
  engines (``resolve_dtype``).
* attention: flash-attention 2 only where it really imports, on CUDA, in fp16/bf16; otherwise SDPA, with the
  reason logged.
* placement: weights go straight to the GPU (``device_map``, memory-mapped safetensors); a task that sees several
  GPUs spreads one replica over all of them.

A released JudgeLM checkpoint on a cluster and the tiny judge built here go through the same code. A PEFT adapter
directory (``make train ARGS="train.method=lora"`` writes ``runs/<run>/adapter``) loads as its base with the
adapter applied, unmerged; its ``adapter_config.json`` names the base.
"""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

import torch

from judgelm.inference.config import ModelConfig, Runtime, adapter_base

log = logging.getLogger("judgelm.inference.models")

HALF = (torch.float16, torch.bfloat16)


class LoadedJudge(NamedTuple):
    model: object
    tokenizer: object
    device: torch.device  # where inputs go (the first layer's GPU when a replica spans several)
    runtime: Runtime


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def checkpoint_dtype(path: str) -> torch.dtype | None:
    """The dtype a checkpoint was saved in (``dtype``, formerly ``torch_dtype``, in its config), if it says."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(adapter_base(path) or path)
    dtype = getattr(cfg, "dtype", None) or getattr(cfg.get_text_config(), "dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else None


def resolve_dtype(requested: str, path: str, device_type: str) -> torch.dtype:
    """The one dtype both engines use: an explicit setting, else the checkpoint's on a GPU (bf16 when it does not
    say), fp32 on a CPU."""
    if requested != "auto":
        dtype = getattr(torch, requested, None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"model.dtype must be auto, bfloat16, float16 or float32, got {requested!r}")
        return dtype
    if device_type == "cpu":
        return torch.float32
    return checkpoint_dtype(path) or torch.bfloat16


def flash_attn_problem(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why flash-attention 2 cannot run here, or ``None`` when it can. The package is imported for real: its
    metadata can be present while the compiled extension fails to load (built for another torch or CUDA)."""
    if device.type != "cuda":
        return f"it needs CUDA (device is {device.type})"
    if dtype not in HALF:
        return f"it needs float16 or bfloat16 (dtype is {dtype})"
    try:
        import flash_attn  # noqa: F401
    except Exception as e:  # ImportError, or OSError/RuntimeError from a mismatched compiled extension
        return f"flash_attn does not import ({type(e).__name__}: {e})"
    return None


def pick_attention(requested: str, device: torch.device, dtype: torch.dtype) -> str:
    """flash_attention_2 only where it can run; asking for it explicitly where it cannot is an error."""
    if requested not in ("auto", "flash_attention_2"):
        return requested
    problem = flash_attn_problem(device, dtype)
    if requested == "flash_attention_2" and problem:
        raise RuntimeError(f"attn_implementation=flash_attention_2 cannot run: {problem}; use auto or sdpa "
                           "(flash-attn: pip install flash-attn --no-build-isolation on a CUDA node)")
    if problem:
        if device.type == "cuda":  # on a CPU there is nothing to report: SDPA is the plan
            log.info("attention: sdpa, not flash_attention_2, because %s", problem)
        return "sdpa"
    return "flash_attention_2"


def device_map_for(device: torch.device):
    """Weights load straight onto the GPU(s): one GPU as it is, several with layers spread over them all."""
    if device.type != "cuda":
        return None
    return "auto" if torch.cuda.device_count() > 1 else {"": device.index or 0}


def resolve_model(path: str) -> str:
    """A local directory for ``path``: itself when it is one, else the hub snapshot, downloaded once (or, with
    ``HF_HUB_OFFLINE=1``, taken from the local cache). Called once at run creation so array tasks all read the
    same files instead of each downloading them."""
    if os.path.isdir(path):
        return path
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        return snapshot_download(path, local_files_only=offline)
    except Exception as e:  # not found, no network, gated: all the user's to fix
        where = "in the local hub cache (HF_HUB_OFFLINE=1)" if offline else "on the hub"
        raise FileNotFoundError(f"model {path!r} is neither a directory nor a model {where}: "
                                f"{type(e).__name__}; give model.path=<local dir> or a valid hub id") from None


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


def load_judge(cfg: ModelConfig) -> LoadedJudge:
    """The model ready for inference, its tokenizer, the input device and the runtime choices made."""
    from transformers import AutoModelForCausalLM

    if not os.path.isdir(cfg.path) and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise FileNotFoundError(f"model directory {cfg.path} not found (and HF_HUB_OFFLINE=1)")
    device = pick_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, cfg.path, device.type)
    attention = pick_attention(cfg.attn_implementation, device, dtype)
    placement = device_map_for(device)
    base = adapter_base(cfg.path)
    model = AutoModelForCausalLM.from_pretrained(base or cfg.path, dtype=dtype, attn_implementation=attention,
                                                 device_map=placement)
    if base:
        model.load_adapter(cfg.path)  # transformers' PEFT integration: LoRA layers in place, not merged
    if placement is None:
        model.to(device)
    model.eval()
    devices = sorted({str(p.device) for p in model.parameters()})
    if any(not d.startswith(device.type) for d in devices):
        raise RuntimeError(f"{cfg.path} does not fit on the {torch.cuda.device_count()} GPU(s) of this task "
                           f"(placed on {devices}); give each task more GPUs (gpus_per_task in the cluster profile)")
    first = model.get_input_embeddings().weight.device
    return LoadedJudge(model, load_tokenizer(cfg.path), first, Runtime(str(dtype).removeprefix("torch."),
                                                                       attention, devices))
