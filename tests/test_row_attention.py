"""Decode attention over spans of rows (judgelm.inference.row_attention): which rows share a span, and that spans
attend as SDPA over the whole batch under a mask."""


import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from judgelm.inference.row_attention import reading_rows, row_spans, rows_attention


def test_spans_hold_live_rows_of_similar_length():
    assert row_spans([100, 98, 95, 60, 59], [True] * 5, 20) == [(0, 3), (3, 5)]
    assert row_spans([100, 98, 95, 60, 59], [True, False, True, True, False], 20) == [(0, 1), (2, 3), (3, 4)]
    assert row_spans([10, 10], [False, False], 20) == []
    # A row joins a span while the span reads at most call_slots padded slots: here 2 + 5 + 40 = 47.
    assert row_spans([100, 98, 95, 60], [True] * 4, 47) == [(0, 4)]
    assert row_spans([100, 98, 95, 60], [True] * 4, 46) == [(0, 3), (3, 4)]
    # A wider row pads the rows before it too.
    assert row_spans([60, 60, 100], [True] * 3, 79) == [(0, 2), (2, 3)]
    assert row_spans([60, 60, 100], [True] * 3, 80) == [(0, 3)]


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
    spans = row_spans((lengths + step).tolist(), live, 2)
    assert len(spans) == 2
    with reading_rows(spans, lengths, step):
        out = rows_attention(Head(), q, k, v, None)[0]
    torch.testing.assert_close(out[:4], whole[:4])
    assert not out[4].any()
    # Outside reading_rows it is SDPA itself.
    torch.testing.assert_close(rows_attention(Head(), q, k[:, :, :n], v[:, :, :n], mask)[0], whole)
