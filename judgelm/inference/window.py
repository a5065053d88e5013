"""Sliding-window attention (Mistral family) in the engine's decode batches.

A decode batch holds prompts of several widths in one cache: row i's prompt fills slots ``[0, len_i)``, slots up to
the widest prompt ``W`` stay masked, and its generated tokens go to slots ``W, W+1, ...``. ``transformers`` builds
a sliding window from slot indices, so a narrower row loses the ``W - len_i`` most recent positions of its window
and its verdict changes. Here the window is counted in positions instead: a 4-D mask from each row's own positions,
which SDPA and eager attention take as given. flash-attention needs nothing: it drops the masked slots before
applying its window, so slot and position agree again.
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


def position_mask(valid: torch.Tensor, lengths: torch.Tensor, step: int, width: int, window: int,
                  additive_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The ``(rows, 1, 1, slots)`` mask of decode step ``step``, whose query sits at position ``len_i + step``.

    ``valid``: the 2-D slot mask (1 = a real token); ``width``: the widest prompt, where generated slots begin.
    A slot is seen when valid and its position is within ``window`` before the query (``transformers``' rule:
    ``key > query - window``). ``additive_dtype`` gives eager attention's form (0 or the dtype's minimum).
    """
    slots = torch.arange(valid.shape[1], device=valid.device)[None, :]
    pos = torch.where(slots < width, slots, lengths[:, None] + slots - width)
    query = (lengths + step)[:, None]
    seen = valid.bool() & (pos <= query) & (pos > query - window)
    if additive_dtype is not None:
        seen = torch.zeros(seen.shape, dtype=additive_dtype, device=seen.device).masked_fill(
            ~seen, torch.finfo(additive_dtype).min)
    return seen[:, None, None, :]
