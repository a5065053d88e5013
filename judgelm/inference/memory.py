"""How many tokens a decode batch may hold: from the GPU memory left after loading the model.

A decode batch keeps keys and values of every row's prompt and new tokens for every layer, and a prefill group
briefly needs one layer's activations for each of its tokens. The budget is what fits into the free memory of the
model's GPUs after a safety margin (the CUDA context, allocator fragmentation, logits). A fixed budget either
wastes an 80 GB GPU on a 7B judge or runs a 13B judge out of memory; on a CPU the long-standing 65,536 stays.
"""

from __future__ import annotations

import torch

CPU_BATCH_TOKENS = 65536
MIN_BATCH_TOKENS = 4096  # below this a judge that loads cannot batch anything useful anyway
RESERVE_BYTES = 1 << 30  # CUDA context, cuBLAS workspaces, sampling buffers: outside what torch reports free


def head_dim(text_config) -> int:
    return int(getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads)


def kv_width(text_config) -> int:
    """Values one token keeps per layer for its keys (as many again for its values): key/value heads × head dim."""
    kv_heads = getattr(text_config, "num_key_value_heads", None) or text_config.num_attention_heads
    return int(kv_heads) * head_dim(text_config)


def kv_bytes_per_token(text_config, dtype: torch.dtype) -> int:
    """Cache bytes one token costs: layers × 2 (keys, values) × key/value heads × head dim × bytes per value."""
    return text_config.num_hidden_layers * 2 * kv_width(text_config) * dtype.itemsize


def activation_bytes_per_token(text_config, dtype: torch.dtype) -> int:
    """Peak working memory of one token in a prefill (one layer at a time): the residual stream and its normed
    copy, the query/key/value projections and attention output, and the MLP's gate, up and activated tensors."""
    qkv = text_config.num_attention_heads * head_dim(text_config) + 2 * kv_width(text_config)
    return (3 * text_config.hidden_size + qkv + 3 * text_config.intermediate_size) * dtype.itemsize


def batch_token_budget(text_config, dtype: torch.dtype, free_bytes: int, total_bytes: int, margin: float) -> int:
    """Tokens (rows × (prompt + new tokens)) that fit into ``free_bytes`` after ``margin`` of ``total_bytes``."""
    usable = free_bytes - margin * total_bytes - RESERVE_BYTES
    per_token = kv_bytes_per_token(text_config, dtype) + activation_bytes_per_token(text_config, dtype)
    return max(MIN_BATCH_TOKENS, int(usable // per_token))


def gpu_budget(model, margin: float) -> int:
    """The budget of ``model`` where it sits now: from the free memory of all its GPUs, or the CPU default."""
    devices = {p.device for p in model.parameters() if p.device.type == "cuda"}
    if not devices:
        return CPU_BATCH_TOKENS
    free = total = 0
    for d in devices:
        f, t = torch.cuda.mem_get_info(d)
        free, total = free + f, total + t
    return batch_token_budget(model.config.get_text_config(), model.dtype, free, total, margin)
