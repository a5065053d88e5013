"""Linear layers whose weights are packed once for oneDNN's (or MKL's) GEMM while a decode batch keeps its size.

A decode step multiplies a few rows (the batch) by every weight matrix, so on a CPU it is bound by reading the
weights. ``F.linear`` hands MKL the weight as it is, and MKL repacks it into its GEMM layout on every call: for the
52.5M bench model's layers at 8-24 rows that costs as much again as the product (1.4-2.3× slower than a weight packed
beforehand, measured on this project's 2-core Intel VM). ``torch.ops.mkldnn._reorder_linear_weight`` packs a weight
once for one row count, which is what inductor uses for frozen CPU models, and ``_linear_pointwise`` multiplies with
it; a torch without oneDNN gets MKL's pair (``torch.ops.mkl._mkl_reorder_linear_weight``, ``_mkl_linear``, which this
module used until 2026-12-07). On the 2-core AMD EPYC (AVX2) VM of that day, oneDNN's product was 1.5× faster than
MKL's packed one on the 52.5M model's layers at 8 rows and 2.9× on its 32,000-word head, and that model's 256-token
generation went from 15.0 to 9.3 s (docs/speed.md); prefills (hundreds of rows and more) gained nothing, so they
still use ``F.linear``.

A decode batch keeps its rows for many steps (it shrinks only when finished rows leave), so a layer packs its weight
once it has seen the same row count ``REPEATS`` times in a row, keeps one packed copy, and packs again when the count
or the weight changes. A prefill's layers (thousands of rows, where packing gains nothing) and fast mode's two or
three decode steps per batch never pack. On a model as small as the tiny judge (hidden size 128) the packed call is
slower than ``F.linear``, so the engine packs only models from ``SMALL_MODEL`` parameters up
(``judgelm.inference.hf``), and the copy doubles the weights' memory, so not beyond ``MAX_PARAMS``.

The packed product rounds differently in the last bits; ``tests/test_packed_linear.py`` compares an engine's tokens
with packing on against JudgeLM's one-at-a-time generation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REPEATS = 4
"""Calls with the same row count before a layer packs its weight (a pack costs about one unpacked call)."""

MIN_ROWS, MAX_ROWS = 2, 256
"""Row counts that pack: one row is a matrix-vector product, already fast; above ``MAX_ROWS`` the product's own
work hides the repacking."""

MAX_PARAMS = 1_000_000_000
"""Models up to this size get packed copies (4 GB more in fp32); larger ones keep ``F.linear``."""


ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
"""Whether layers pack for oneDNN (else MKL)."""


def available() -> bool:
    return ONEDNN or (torch.backends.mkl.is_available() and hasattr(torch.ops.mkl, "_mkl_linear"))


def pack(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """``weight`` in the layout of the GEMM that multiplies ``rows`` rows by it."""
    if ONEDNN:
        return torch.ops.mkldnn._reorder_linear_weight(weight, rows)
    return torch.ops.mkl._mkl_reorder_linear_weight(weight, rows)


def multiply(x: torch.Tensor, packed: torch.Tensor, layer: nn.Linear, rows: int) -> torch.Tensor:
    if ONEDNN:
        return torch.ops.mkldnn._linear_pointwise(x, packed, layer.bias, "none", [], "")
    return torch.ops.mkl._mkl_linear(x, packed, layer.weight, layer.bias, rows)


class PackedLinear(nn.Linear):
    """``nn.Linear`` with the packing above; its parameters and state dict are the layer's own, unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        key = (rows, *self._weight_key())
        if key != self.key:
            self.key, self.calls, self.packed = key, 0, None
        self.calls += 1
        if (self.calls < REPEATS or not MIN_ROWS <= rows <= MAX_ROWS or x.dtype != torch.float32
                or not torch.is_inference_mode_enabled()):
            return F.linear(x, self.weight, self.bias)
        if self.packed is None:
            self.packed = pack(self.weight, rows)
        return multiply(x, self.packed, self, rows)

    def _weight_key(self) -> tuple[int, int]:
        """Changes with the weight (an optimizer step bumps its version, a ``.data`` swap its address): a model
        judged while it trains (``judgelm.train.validation``) never multiplies with a stale copy."""
        w = self.weight
        return 0 if w.is_inference() else w._version, w.data_ptr()


def install(model: nn.Module) -> int:
    """Make ``model``'s fp32 ``nn.Linear`` layers on the CPU pack their weights while decoding; returns how many."""
    n = 0
    for layer in model.modules():
        if type(layer) is nn.Linear and layer.weight.dtype == torch.float32 and layer.weight.device.type == "cpu":
            layer.__class__ = PackedLinear
            layer.key, layer.calls, layer.packed = None, 0, None
            n += 1
    return n
