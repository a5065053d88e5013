"""Sliding-window attention (Mistral family) in the engine's decode batches.

A decode batch holds prompts of several widths in one cache: row i's tokens fill slots ``[0, len_i + step]``, so
its query at decode step ``step`` sits at slot and position ``len_i + step``. ``transformers`` builds a sliding
window from one query slot for the whole batch, the widest row's, so a narrower row would see too few of its recent
positions and its verdict would change. Here the window is counted from each row's own query: a 4-D mask, which
SDPA and eager attention take as given. flash-attention needs nothing: it drops the masked slots and counts each
row's window from its own last token.
"""

from __future__ import annotations

import torch


def attention_window(text_config, attn_implementation: str) -> int | None:
    """The window to apply by position, or ``None`` when nothing needs doing (full attention, or
    flash-attention). Models that mix full and sliding layers would need a mask per layer kind: refused."""
    window = getattr(text_config, "sliding_window", None)
    kinds = set(getattr(text_config, "layer_types", None) or ["sliding_attention" if window else "full_attention"])
    if window is None or "sliding_attention" not in kinds or attn_implementation == "flash_attention_2":
        return None
    if kinds != {"sliding_attention"}:
        raise ValueError(f"{type(text_config).__name__} mixes sliding-window and full-attention layers, which the hf "
                         f"engine batches exactly only with model.attn_implementation=flash_attention_2 (on a GPU) "
                         f"or engine.backend=vllm, not with {attn_implementation}")
    return int(window)


def position_mask(lengths: torch.Tensor, step: int, window: int,
                  additive_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The ``(rows, 1, 1, slots)`` mask of decode step ``step``, whose query sits at slot ``len_i + step``.

    A slot is seen when it is within ``window`` before the query (``transformers``' rule: ``key > query - window``).
    ``additive_dtype`` gives eager attention's form (0 or the dtype's minimum).
    """
    query = (lengths + step)[:, None]
    slots = torch.arange(int(query.max()) + 1, device=lengths.device)[None, :]
    seen = (slots <= query) & (slots > query - window)
    if additive_dtype is not None:
        seen = torch.zeros(seen.shape, dtype=additive_dtype, device=seen.device).masked_fill(
            ~seen, torch.finfo(additive_dtype).min)
    return seen[:, None, None, :]
