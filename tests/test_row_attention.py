"""Decode attention over spans of rows (judgelm.inference.row_attention): which rows share a span, and that spans,
a shared prefix read once among them, attend as SDPA over the whole batch under a mask."""

import math

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from judgelm.inference.row_attention import SPAN_PADDING, reading_rows, row_spans, rows_attention

NONE = (-1, 0)


def test_spans_hold_live_rows_of_similar_length():
    assert row_spans([100, 98, 95, 60, 59], [True] * 5, [NONE] * 5) == [(0, 3, 0), (3, 5, 0)]
    assert row_spans([100, 98, 95, 60, 59], [True, False, True, True, False], [NONE] * 5) == [
        (0, 1, 0), (2, 3, 0), (3, 4, 0)]
    assert row_spans([10, 10], [False, False], [NONE] * 2) == []
    # A row joins a span while the span reads at most SPAN_PADDING more slots than its rows' own tokens.
    joins = math.ceil(300 / (1 + SPAN_PADDING) - 200)
    assert row_spans([100, 100, joins], [True] * 3, [NONE] * 3) == [(0, 3, 0)]
    assert row_spans([100, 100, joins - 1], [True] * 3, [NONE] * 3) == [(0, 2, 0), (2, 3, 0)]


def test_rows_sharing_a_prefix_span_together_and_count_padding_after_it():
    # Rows 0-2 share a 90-slot prefix: their own parts (10, 5, 2 slots) differ by far more than SPAN_PADDING, but
    # splitting them would read the prefix again; the prefix-less row 3 starts its own span, as does another prefix.
    shared = [(0, 90)] * 3 + [NONE, (4, 90), (4, 90)]
    assert row_spans([100, 95, 92, 92, 100, 100], [True] * 6, shared) == [(0, 3, 90), (3, 4, 0), (4, 6, 90)]
    # Padding that costs more than a second read of the prefix does split.
    assert row_spans([300, 100, 100], [True] * 3, [(0, 90)] * 3) == [(0, 1, 90), (1, 3, 90)]


class Head:
    is_causal = True
    num_key_value_groups = 1


def test_spans_attend_as_one_masked_call_and_finished_rows_get_zeros():
    torch.manual_seed(0)
    rows, heads, dim, step = 5, 3, 8, 2
    lengths = torch.tensor([9, 8, 8, 4, 3])
    q = torch.randn(rows, heads, 1, dim)
    k, v = torch.randn(rows, heads, 20, dim), torch.randn(rows, heads, 20, dim)
    n = int(lengths.max()) + step + 1
    mask = (torch.arange(n)[None, :] <= (lengths + step)[:, None])[:, None, None, :]
    whole = sdpa_attention_forward(Head(), q, k[:, :, :n], v[:, :, :n], mask)[0]
    live = [True, True, True, True, False]
    spans = row_spans(lengths.tolist(), live, [NONE] * rows)
    assert len(spans) == 2
    with reading_rows(spans, lengths, step):
        out = rows_attention(Head(), q, k, v, None)[0]
    torch.testing.assert_close(out[:4], whole[:4])
    assert not out[4].any()
    # Outside reading_rows it is SDPA itself.
    torch.testing.assert_close(rows_attention(Head(), q, k[:, :, :n], v[:, :, :n], mask)[0], whole)


def test_a_shared_prefix_read_once_attends_as_every_row_reading_its_copy():
    torch.manual_seed(1)
    rows, heads, kv_heads, dim, prefix, step = 4, 6, 3, 8, 7, 1  # grouped-query attention: 2 query heads per kv head
    lengths = torch.tensor([12, 11, 11, 9])
    q = torch.randn(rows, heads, 1, dim)
    k, v = torch.randn(rows, kv_heads, 20, dim), torch.randn(rows, kv_heads, 20, dim)
    k[:, :, :prefix], v[:, :, :prefix] = k[0, :, :prefix], v[0, :, :prefix]
    n = int(lengths.max()) + step + 1
    mask = (torch.arange(n)[None, :] <= (lengths + step)[:, None])[:, None, None, :]
    head = Head()
    head.num_key_value_groups = heads // kv_heads
    whole = sdpa_attention_forward(head, q, k[:, :, :n], v[:, :, :n], mask)[0]
    with reading_rows([(0, rows, prefix)], lengths, step):
        out = rows_attention(head, q, k, v, None)[0]
    torch.testing.assert_close(out, whole)
