"""Choosing the next token: greedy, or sampling whose randomness depends only on (seed, unit, step).

JudgeLM seeds ``torch.manual_seed`` with the index inside a worker's chunk, so its sampled verdicts change with
the number of GPUs. Here the noise for a row is a hash of the unit id, the step and the vocabulary index, so a
unit gets the same verdict in any batch, shard or resumed attempt.
"""

from __future__ import annotations

import torch

_MASK31 = (1 << 31) - 1


def _hash31(x: torch.Tensor) -> torch.Tensor:
    """An integer mixer on 31-bit values; products stay below 2**62, so int64 never overflows."""
    x = x & _MASK31
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & _MASK31
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & _MASK31
    return x ^ (x >> 16)


def uniform_noise(seed: int, units: torch.Tensor, step: int, vocab: int) -> torch.Tensor:
    """``(rows, vocab)`` uniforms in (0, 1), a pure function of its arguments."""
    base = _hash31(units.to(torch.int64) * 1_000_003 + step * 7_919 + seed * 104_729)
    v = torch.arange(vocab, device=units.device, dtype=torch.int64)
    h = _hash31(base[:, None] * 31 + _hash31(v)[None, :])
    return (h.to(torch.float64) + 0.5) / float(1 << 31)


def next_tokens(logits: torch.Tensor, units: torch.Tensor, step: int, temperature: float, top_k: int,
                top_p: float, seed: int) -> torch.Tensor:
    """The next token of each row from its last-position ``logits`` ``(rows, vocab)``."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / temperature
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        sorted_scores, idx = torch.sort(scores, descending=True, dim=-1)
        cum = sorted_scores.softmax(-1).cumsum(-1)
        drop_sorted = (cum - sorted_scores.softmax(-1)) > top_p  # keep the token that crosses top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, idx, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    # Gumbel-max: argmax(scores + Gumbel noise) is a sample from softmax(scores).
    gumbel = -torch.log(-torch.log(uniform_noise(seed, units, step, scores.shape[-1]))).to(scores.device)
    return (scores.double() + gumbel).argmax(dim=-1)
