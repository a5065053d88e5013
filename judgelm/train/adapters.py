"""LoRA and QLoRA through PEFT: adapters on a frozen base, their checkpoint state, and their two exports.

``method: lora`` wraps the loaded model in PEFT's LoRA (``judgelm.train.config.LoraConfig``); ``qlora`` first loads
the base in 4 bits through bitsandbytes (imported only there: CUDA nodes) and prepares it for k-bit training.
Only the adapters train, so a checkpoint holds only them and the optimizer state (the base is read again from
``model.path`` on resume), and the export is twice: the adapter as PEFT writes it (``adapter/``: a few MB, loads
on the base with ``PeftModel.from_pretrained``, served unmerged by vLLM) and the merged weights (``model/``: a plain
Hugging Face checkpoint, merged by PEFT into a fresh full-precision copy of the base, which is also how a QLoRA
adapter is merged).
"""

from __future__ import annotations

from pathlib import Path

import torch

from judgelm.train.config import LoraConfig, TrainConfig

ADAPTER_CONFIG = "adapter_config.json"


def quantization_config(cfg: LoraConfig):
    """bitsandbytes' 4-bit config for QLoRA: NF4, bf16 compute. The 4-bit weights are stored in bf16 words so
    that DeepSpeed ZeRO-3 can partition them like any other bf16 parameter."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.quant_type,
                              bnb_4bit_use_double_quant=cfg.double_quant, bnb_4bit_compute_dtype=torch.bfloat16,
                              bnb_4bit_quant_storage=torch.bfloat16)


def qlora_problem() -> str | None:
    """Why QLoRA cannot run here, or ``None``."""
    if not torch.cuda.is_available():
        return "it needs a CUDA GPU (bitsandbytes 4-bit kernels); on a CPU use method=lora"
    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:  # absent, or built for another CUDA
        return f"bitsandbytes does not import ({type(e).__name__}: {e}); pip install bitsandbytes on the GPU nodes"
    return None


def add_adapters(model, cfg: TrainConfig):
    """The model wrapped for ``cfg.method`` (``full``: as it is). Adapter weights are drawn from ``cfg.seed``."""
    if cfg.method == "full":
        return model
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.model.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif cfg.model.gradient_checkpointing:
        # The frozen embeddings give the checkpointed layers inputs without grad: make them ask for one, or no
        # gradient would reach the adapters of the recomputed layers.
        model.enable_input_require_grads()
    lc = cfg.lora
    peft_cfg = PeftLoraConfig(r=lc.rank, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                              target_modules=list(lc.target_modules), bias="none", task_type="CAUSAL_LM")
    torch.manual_seed(cfg.seed)
    return get_peft_model(model, peft_cfg)


def is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def inner_model(model):
    """The transformers model with the adapters active in it (what an inference engine can drive)."""
    return model.get_base_model() if is_peft(model) else model


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The parameters that train, by name: all of them for a full fine-tune, the adapters for LoRA."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, state: dict[str, torch.Tensor]) -> None:
    missing = set(trainable_state(model)) - set(state)
    if missing:
        raise RuntimeError(f"checkpoint lacks {len(missing)} trainable tensors (e.g. {sorted(missing)[0]})")
    model.load_state_dict(state, strict=False)


def save_adapter(model, state: dict[str, torch.Tensor] | None, tokenizer, out: Path, base_path: str) -> None:
    """PEFT's adapter directory (``adapter_config.json``, ``adapter_model.safetensors``) plus the tokenizer; the
    config names ``base_path`` as its base, which is what loaders and vLLM read."""
    model.peft_config["default"].base_model_name_or_path = base_path
    model.save_pretrained(out, state_dict=state)
    tokenizer.save_pretrained(out)


def merge_adapter(adapter_dir: Path, out: Path, dtype: torch.dtype | None = None) -> None:
    """Merge a saved adapter into a fresh copy of its base, loaded on the CPU in full precision (or ``dtype``),
    and save the plain Hugging Face model with the adapter's tokenizer."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_path = PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype or "auto", device_map=None)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config.use_cache = True
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(out)


def count_trainable(model) -> tuple[int, int]:
    """(trainable, total) parameters; ZeRO-3 partitions report their full size in ``ds_numel``. A 4-bit weight
    counts as its number of values, not its packed bytes."""
    trainable = total = 0
    for p in model.parameters():
        n = getattr(p, "ds_numel", p.numel())
        if getattr(p, "quant_state", None) is not None:
            n = p.quant_state.shape.numel()
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total
