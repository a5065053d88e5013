"""Decode attention that reads each row's own keys and values, not the whole batch's.

A decode batch holds prompts of several widths in one cache (``judgelm.inference.kv_cache``), each row's tokens in
slots ``[0, len_i + step]``. SDPA over the batch reads every row up to the widest row, padding included, and the
rows already finished but not yet dropped; on a CPU a decode step's attention is bound by those reads (the 52.5M
bench model's PandaLM prompts: a quarter of the slots read were padding). Here a decode step's attention runs on
spans of consecutive live rows of similar length instead, each over its own longest row: an attention function
registered with ``transformers`` under ``NAME``, which is SDPA for everything but the decode steps the engine runs
inside ``reading_rows``.

Rows that share a prompt prefix (``judgelm.inference.prefix``) hold identical copies of its keys and values; a span
of such rows reads the prefix once, from its first row, for all of its rows' queries, then each row's own slots,
under one softmax (model evaluation's prompts share the question and the baseline answer: most of each row).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "judgelm_rows"

SPAN_PADDING = 0.1
"""How much padding a span may read, as a fraction of its rows' own prompt tokens, before a row starts a new span:
each span is one more attention call per layer (tens of microseconds), each padded slot one more key and value read."""

_spans: ContextVar[list | None] = ContextVar("judgelm_row_spans", default=None)


def row_spans(lengths: list[int], live: list[bool], shared: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """``(start, end, prefix)``: runs of consecutive live rows that share their first ``prefix`` slots (``shared[i]``:
    a key naming row i's shared prefix and its length, or ``(-1, 0)``) and whose longest row pads the slots after the
    prefix by at most ``SPAN_PADDING`` of them, plus the prefix that a new span would read again."""
    spans: list[tuple[int, int, int]] = []
    start, span_key, widest, real = None, (-1, 0), 0, 0
    for r, (n, alive, key) in enumerate(zip(lengths, live, shared)):
        own = n - key[1]
        padded = (r + 1 - start) * max(widest, own) if start is not None else 0
        if start is not None and (not alive or key != span_key or padded > (1 + SPAN_PADDING) * (real + own) + key[1]):
            spans.append((start, r, span_key[1]))
            start = None
        if alive:
            if start is None:
                start, span_key, widest, real = r, key, 0, 0
            widest, real = max(widest, own), real + own
    if start is not None:
        spans.append((start, len(lengths), span_key[1]))
    return spans


@contextmanager
def reading_rows(spans: list[tuple[int, int, int]], lengths: torch.Tensor, step: int):
    """Decode step ``step`` attends over ``spans`` only; rows outside them get zeros (finished rows, ignored).
    Row ``i`` reads slots ``[0, lengths[i] + step]``; a span whose rows differ in length masks the rest."""
    ends = (lengths + step).tolist()
    plan = []
    for a, b, prefix in spans:
        prefix = prefix if b - a > 1 else 0  # one row gains nothing from reading its prefix apart
        n = max(ends[a:b]) + 1
        mask = None if min(ends[a:b]) + 1 == n else (
            torch.arange(prefix, n, device=lengths.device)[None, :] <= (lengths[a:b] + step)[:, None])[:, None, None, :]
        plan.append((a, b, prefix, n, mask))
    token = _spans.set(plan)
    try:
        yield
    finally:
        _spans.reset(token)


def rows_attention(module, query, key, value, attention_mask, **kwargs):
    """SDPA, span by span inside ``reading_rows``."""
    plan = _spans.get()
    if plan is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    out = query.new_zeros(query.shape[0], query.shape[2], query.shape[1], query.shape[3])
    scale = kwargs.get("scaling") or query.shape[-1] ** -0.5
    for a, b, prefix, n, mask in plan:
        if prefix:
            out[a:b] = shared_prefix_attention(query[a:b], key[a:b, :, :n], value[a:b, :, :n], prefix, mask, scale)
        else:
            out[a:b] = sdpa_attention_forward(module, query[a:b], key[a:b, :, :n], value[a:b, :, :n], mask,
                                              **kwargs)[0]
    return out, None


def shared_prefix_attention(query, key, value, prefix: int, mask, scale: float) -> torch.Tensor:
    """One decode step's attention for rows whose first ``prefix`` slots hold the same keys and values: those are
    read once, from row 0, for every row's query; the slots after them row by row (``mask`` over those, or None).
    ``query``: (rows, heads, 1, dim); keys and values: (rows, kv_heads, slots, dim). Returns (rows, 1, heads, dim)."""
    rows, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    q = query.view(rows, kv_heads, heads // kv_heads, dim)  # query head h reads kv head h // (heads // kv_heads)
    together = q.permute(1, 2, 0, 3).reshape(kv_heads, -1, dim)  # every row's queries against the one prefix
    scores_prefix = (together @ key[0, :, :prefix].transpose(-1, -2)).view(kv_heads, -1, rows, prefix)
    scores_own = q @ key[:, :, prefix:].transpose(-1, -2)
    if mask is not None:
        scores_own = scores_own.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(torch.cat([scores_prefix.permute(2, 0, 1, 3), scores_own], dim=-1) * scale, dim=-1,
                          dtype=torch.float32).to(value.dtype)
    probs_prefix = probs[..., :prefix].permute(1, 2, 0, 3).reshape(kv_heads, -1, prefix)
    out = (probs_prefix @ value[0, :, :prefix]).view(kv_heads, -1, rows, dim).permute(2, 0, 1, 3)
    out = out + probs[..., prefix:] @ value[:, :, prefix:]
    return out.reshape(rows, 1, heads, dim)


def install(model) -> None:
    """``model`` attends with ``rows_attention`` (SDPA, masks made as for SDPA, outside ``reading_rows``)."""
    AttentionInterface.register(NAME, rows_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
