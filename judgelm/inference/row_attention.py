"""Decode attention that reads each row's own keys and values, not the whole batch's.

A decode batch holds prompts of several widths in one cache (``judgelm.inference.kv_cache``), each row's tokens in
slots ``[0, len_i + step]``. SDPA over the batch reads every row up to the widest row, padding included, and the
rows already finished but not yet dropped; on a CPU a decode step's attention is bound by those reads (the 52.5M
bench model's PandaLM prompts: a quarter of the slots read were padding). Here a decode step's attention runs on
spans of consecutive live rows of similar length instead, each over its own longest row: an attention function
registered with ``transformers`` under ``NAME``, which is SDPA for everything but the decode steps the engine runs
inside ``reading_rows``. A span ends where its padding would cost more than a call of its own (``CALL_ELEMENTS``).

Rows that share a prompt prefix (``judgelm.inference.prefix``) hold copies of its keys and values and read them as
their own. Reading the prefix once for a span's rows instead (small products per span, a joint softmax) read fewer
keys and values, but split the spans by prefix rather than by length, into more and smaller calls: without it the
sharing-on rows of ``make bench`` were 1.02-1.07× faster on the 52.5M model and 1.01-1.03× on the tiny judge, with
the same tokens (docs/speed.md).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "judgelm_rows"

CALL_ELEMENTS = 1 << 19
"""What one more attention call per layer is worth, in key and value elements of padding (about 900 slots of the
52.5M bench model's 9 heads of 64): a row joins the span before it unless the span would then read more padding
than this. The rule it replaces (padding up to 10 % of the rows' own prompt slots) kept three calls per layer for
the whole of that model's 8-answer generation, 188 µs each on the 2-core AMD EPYC VM of docs/speed.md, where one
call over all eight rows costs 517 µs; counted at every step, a batch's spans merge as its answers grow."""

_spans: ContextVar[list | None] = ContextVar("judgelm_row_spans", default=None)


def row_spans(ends: list[int], live: list[bool], call_slots: int) -> list[tuple[int, int]]:
    """``(start, end)``: runs of consecutive live rows, row ``i`` reading slots ``[0, ends[i]]``, each run ended
    where its next row would make it read more than ``call_slots`` padded slots (what a call of its own costs)."""
    spans: list[tuple[int, int]] = []
    start, widest, real = None, 0, 0
    for r, (n, alive) in enumerate(zip(ends, live)):
        if start is not None and (not alive or (r + 1 - start) * max(widest, n) - real - n > call_slots):
            spans.append((start, r))
            start = None
        if alive:
            if start is None:
                start, widest, real = r, 0, 0
            widest, real = max(widest, n), real + n
    if start is not None:
        spans.append((start, len(ends)))
    return spans


@contextmanager
def reading_rows(spans: list[tuple[int, int]], lengths: torch.Tensor, step: int):
    """Decode step ``step`` attends over ``spans`` only; rows outside them get zeros (finished rows, ignored).
    Row ``i`` reads slots ``[0, lengths[i] + step]``; a span whose rows differ in length masks the rest."""
    ends = (lengths + step).tolist()
    plan = []
    for a, b in spans:
        n = max(ends[a:b]) + 1
        mask = None if min(ends[a:b]) + 1 == n else (
            torch.arange(n, device=lengths.device)[None, :] <= (lengths[a:b] + step)[:, None])[:, None, None, :]
        plan.append((a, b, n, mask))
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
    for a, b, n, mask in plan:
        out[a:b] = sdpa_attention_forward(module, query[a:b], key[a:b, :, :n], value[a:b, :, :n], mask, **kwargs)[0]
    return out, None


def install(model) -> None:
    """``model`` attends with ``rows_attention`` (SDPA, masks made as for SDPA, outside ``reading_rows``)."""
    AttentionInterface.register(NAME, rows_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
