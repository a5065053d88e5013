"""A KV cache that appends in place, for batched decoding.

``transformers``' ``DynamicLayer`` grows by ``torch.cat`` at every step, which copies the whole cache of every layer
once per generated token: for a batch of 32 prompts of ~900 tokens on a 12-layer model that is more than a gigabyte
of memory traffic per step, more than the step's own work. Here a decode batch's buffers are allocated once, with
room for the widest prompt plus the tokens still to come; each new token is written into them, and attention gets
a view of the filled part.

A decode batch is assembled from prefill groups of different widths (few padded positions in each prefill, many
rows per decode step): each group writes its keys and values straight into its rows of the batch's buffers
(``row_block``), so forming the batch copies nothing. Decoding then writes each row's new token right after its own
tokens (``decode_at``): row i's tokens fill slots ``[0, len_i + step]``, slot and position agree, and attention
can read each row's own slots only (``judgelm.inference.row_attention``); the slots beyond are masked.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


class AppendLayer(DynamicLayer):
    """One layer's keys and values for ``rows`` rows, with room for ``capacity`` positions."""

    def __init__(self, rows: int, capacity: int):
        super().__init__()
        self.rows, self.capacity = rows, capacity
        self.length = 0
        self.slots: torch.Tensor | None = None  # decoding: the slot of each row's next token
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None

    def allocate(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Uninitialised buffers (zeroing a whole batch cache took a tenth of a prefill): every slot attention reads
        is written before, except those after each prefill group's tokens, which ``seal`` zeroes."""
        shape = (self.rows, key_states.shape[1], self.capacity, key_states.shape[-1])
        self._k, self._v = key_states.new_empty(shape), value_states.new_empty(shape)
        self.lazy_initialization(key_states, value_states)

    def seal(self, length: int) -> None:
        """The prefill is written: ``length`` slots (the widest row) are in use."""
        self.length = length
        self.keys, self.values = self._k[..., :length, :], self._v[..., :length, :]

    def at(self, slots: torch.Tensor, furthest: int) -> None:
        """The next token of row i goes to slot ``slots[i]``; the slots in use, as ``transformers`` counts them
        for its masks, end before the furthest of them."""
        self.slots, self.length = slots, furthest

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        n = key_states.shape[-2]
        if self.length + n > self._k.shape[-2]:
            raise RuntimeError(f"KV cache full: {self.length} + {n} positions > capacity {self._k.shape[-2]}")
        if self.slots is None:
            self._k[..., self.length: self.length + n, :] = key_states
            self._v[..., self.length: self.length + n, :] = value_states
        else:
            rows = torch.arange(key_states.shape[0], device=self._k.device)
            slots = self.slots.to(self._k.device)  # a replica spread over GPUs keeps each layer on its own
            self._k[rows, :, slots] = key_states[:, :, 0]
            self._v[rows, :, slots] = value_states[:, :, 0]
        self.length += n
        self.keys, self.values = self._k[..., : self.length, :], self._v[..., : self.length, :]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        indices = indices.to(self._k.device)  # a replica spread over GPUs keeps each layer on its own
        self._k, self._v = self._k[indices], self._v[indices]
        self.keys, self.values = self._k[..., : self.length, :], self._v[..., : self.length, :]


class RowBlockLayer(DynamicLayer):
    """Rows ``start..`` of an ``AppendLayer``, prefilled on their own: their keys and values go straight there."""

    def __init__(self, parent: AppendLayer, start: int):
        super().__init__()
        self.parent, self.start, self.length, self.rows = parent, start, 0, 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        p = self.parent
        if p._k is None:
            p.allocate(key_states, value_states)
        self.rows = key_states.shape[0]
        rows, n = slice(self.start, self.start + self.rows), key_states.shape[-2]
        p._k[rows, :, self.length: self.length + n] = key_states
        p._v[rows, :, self.length: self.length + n] = value_states
        self.length += n
        self.keys, self.values = p._k[rows, :, : self.length], p._v[rows, :, : self.length]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length


def _cache_of(layers: list[DynamicLayer]) -> DynamicCache:
    cache = DynamicCache()
    cache.layers = layers
    cache.layer_class_to_replicate = None
    return cache


def batch_cache(n_layers: int, rows: int, width: int, reserve: int) -> DynamicCache:
    """The cache of a decode batch: ``rows`` rows of at most ``width`` prompt tokens and ``reserve`` new ones."""
    return _cache_of([AppendLayer(rows, width + reserve) for _ in range(n_layers)])


def row_block(cache: DynamicCache, start: int) -> DynamicCache:
    """A cache through which one prefill group writes its rows, from row ``start``, into the batch's ``cache``."""
    return _cache_of([RowBlockLayer(layer, start) for layer in cache.layers])


def seal(cache: DynamicCache, width: int, blocks: list[DynamicCache]) -> None:
    """After the prefill groups (written through ``blocks``): ``width`` (the widest group) slots are in use. The slots
    after each group's prefill are masked in attention until decoding writes them, but must hold finite values
    (uninitialised memory may hold NaN, and NaN times a zero attention weight is still NaN): they are zeroed."""
    for layer in cache.layers:
        layer.seal(width)
    for block in blocks:
        for part in block.layers:
            rows = slice(part.start, part.start + part.rows)
            part.parent._k[rows, :, part.length:] = 0
            part.parent._v[rows, :, part.length:] = 0


def decode_at(cache: DynamicCache, slots: torch.Tensor) -> None:
    """The next decode step writes row i's token to slot ``slots[i]``, right after that row's own tokens."""
    furthest = int(slots.max())
    for layer in cache.layers:
        layer.at(slots, furthest)


def share_prefix(cache: DynamicCache, block: DynamicCache, src: int, start: int, rows: int, length: int) -> None:
    """Rows ``start..start + rows`` of ``cache`` get row ``src``'s first ``length`` positions, a prefix they all
    share; their prefill ``block`` then continues after it."""
    for layer, part in zip(cache.layers, block.layers):
        for buf in (layer._k, layer._v):
            buf[start: start + rows, :, :length] = buf[src, :, :length].clone()
        part.length = length
