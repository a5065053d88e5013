"""Batched judging with a ``transformers`` model: our own decode loop over the model's KV cache.

Why not ``model.generate``: JudgeLM's fast mode needs each row to stop at the end of its score line, and
``generate`` keeps finished rows in the batch (computing them until the last row ends) and checks stop strings
by decoding text every step. Here a row leaves the batch the step it emits EOS or, in fast mode, a token that
contains a newline; its KV cache rows are dropped with it. Text is decoded once per row, at the end.

Batches are built from units sorted by prompt length (longest first, so a batch that does not fit in memory
fails at once, not an hour in) and filled up to a token budget, so padding is small and memory is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from judgelm.inference.config import EngineConfig
from judgelm.inference.sampling import next_tokens


@dataclass
class Generation:
    """The engine's output for one unit."""

    unit: int
    token_ids: list[int]
    text: str
    stopped: bool  # ended on EOS or, in fast mode, a newline (False: hit max_new_tokens)
    top_ids: np.ndarray | None = None  # (steps, k) top-k token ids at the first generated positions
    top_logprobs: np.ndarray | None = None  # (steps, k), matching top_ids
    extra: dict = field(default_factory=dict)


def newline_token_ids(tokenizer) -> list[int]:
    """Every token whose text contains a newline (``\\n``, ``.\\n``, SentencePiece's ``<0x0A>``...)."""
    return [i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])]


def plan_batches(lengths: list[int], max_new: int, batch_tokens: int, max_batch: int) -> list[list[int]]:
    """Indices grouped into batches, longest prompt first, each within the token budget."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        width = (lengths[cur[0]] if cur else lengths[i]) + max_new
        if cur and (len(cur) + 1 > max_batch or (len(cur) + 1) * width > batch_tokens):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


class HFEngine:
    """Judges lists of tokenized prompts with a loaded causal LM."""

    def __init__(self, model, tokenizer, device: torch.device, cfg: EngineConfig):
        self.model, self.tokenizer, self.device, self.cfg = model, tokenizer, device, cfg
        self.max_new = cfg.new_tokens()
        stop = set() if tokenizer.eos_token_id is None else {tokenizer.eos_token_id}
        if cfg.mode == "fast":
            stop |= set(newline_token_ids(tokenizer))
        self.stop_ids = torch.tensor(sorted(stop), device=device, dtype=torch.long)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.logprob_steps = self.max_new if cfg.logprobs_topk > 0 else 0

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    def generate(self, units: list[int], ids: list[list[int]]) -> list[Generation]:
        """One ``Generation`` per prompt, in the order given."""
        out: list[Generation | None] = [None] * len(ids)
        for batch in plan_batches([len(x) for x in ids], self.max_new, self.cfg.batch_tokens, self.cfg.max_batch):
            for i, g in zip(batch, self._run_batch([units[i] for i in batch], [ids[i] for i in batch])):
                out[i] = g
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def _run_batch(self, units: list[int], prompts: list[list[int]]) -> list[Generation]:
        b, width = len(prompts), max(len(p) for p in prompts)
        input_ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        for r, p in enumerate(prompts):
            input_ids[r, width - len(p):] = torch.tensor(p)
            mask[r, width - len(p):] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        unit_t = torch.tensor(units, device=self.device)
        alive = torch.arange(b, device=self.device)  # batch row -> original row
        generated: list[list[int]] = [[] for _ in range(b)]
        stopped = [False] * b
        k = self.cfg.logprobs_topk
        top_ids = np.zeros((b, self.logprob_steps, k), dtype=np.int32) if k else None
        top_lp = np.full((b, self.logprob_steps, k), np.nan, dtype=np.float32) if k else None

        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                         logits_to_keep=1)
        cache, last_pos = out.past_key_values, positions[:, -1]
        logits = out.logits[:, -1]
        for step in range(self.max_new):
            if k and step < self.logprob_steps:
                lp = torch.log_softmax(logits.float(), dim=-1).topk(k, dim=-1)
                rows = alive.cpu().numpy()
                top_ids[rows, step] = lp.indices.cpu().numpy()
                top_lp[rows, step] = lp.values.cpu().numpy()
            tok = next_tokens(logits, unit_t[alive], step, self.cfg.temperature, self.cfg.top_k, self.cfg.top_p,
                              self.cfg.seed)
            done = torch.isin(tok, self.stop_ids)
            for r, t, d in zip(alive.tolist(), tok.tolist(), done.tolist()):
                generated[r].append(t)
                stopped[r] = d
            keep = (~done).nonzero().squeeze(-1)
            if keep.numel() == 0 or step == self.max_new - 1:
                break
            if keep.numel() < alive.numel():  # finished rows leave the batch, with their cache
                cache.batch_select_indices(keep)
                alive, tok, mask, last_pos = alive[keep], tok[keep], mask[keep], last_pos[keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            last_pos = last_pos + 1
            out = self.model(input_ids=tok[:, None], attention_mask=mask, position_ids=last_pos[:, None],
                             past_key_values=cache, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1]

        eos = self.tokenizer.eos_token_id
        results = []
        for r in range(b):
            ids = [t for t in generated[r] if t != eos]
            results.append(Generation(unit=units[r], token_ids=generated[r],
                                      text=self.tokenizer.decode(ids, skip_special_tokens=True), stopped=stopped[r],
                                      top_ids=None if top_ids is None else top_ids[r],
                                      top_logprobs=None if top_lp is None else top_lp[r]))
        return results
