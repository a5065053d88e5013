"""Batched judging with a ``transformers`` model: our own decode loop over the model's KV cache.

Why not ``model.generate``: JudgeLM's fast mode needs each row to stop at the end of its score line, and
``generate`` keeps finished rows in the batch (computing them until the last row ends) and checks stop strings
by decoding text every step. Here a row is done the step it emits EOS or, in fast mode, a token that contains a
newline, and done rows leave the batch with their KV cache rows. Text is decoded once per row, at the end.

Units are sorted by prompt length (longest first, so a batch that does not fit in memory fails at once, not an
hour in). Prefill runs in groups of similar length, so few padded positions are computed; consecutive groups then
decode together as one batch filled up to a token budget, so each decode step serves many rows and memory stays
bounded; on a CPU each decode step's attention still reads each row's own tokens only
(``judgelm.inference.row_attention``). Rows sharing a long prompt prefix (the question; in model evaluation also the
baseline answer) are grouped so that the prefix is computed once per batch (``judgelm.inference.prefix``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from judgelm.inference import packed_linear, row_attention
from judgelm.inference.config import EngineConfig
from judgelm.inference.cpu_memory import keep_freed_memory
from judgelm.inference.fork_pool import ForkPool
from judgelm.inference.kv_cache import batch_cache, decode_at, row_block, seal, share_prefix
from judgelm.inference.memory import gpu_budget, kv_width
from judgelm.inference.prefix import (
    MIN_PREFIX,
    attention_positions_per_token,
    common_prefix,
    prefill_cost,
    prefix_groups,
    worth_sharing,
)
from judgelm.inference.sampling import next_tokens
from judgelm.inference.window import attention_window, position_mask


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
    new_tokens: int | None = None  # a server's own count, where its text re-encoded is not its tokens (None: theirs)

    @property
    def n_new(self) -> int:
        """How many tokens were generated."""
        return len(self.token_ids) if self.new_tokens is None else self.new_tokens


def newline_token_ids(tokenizer) -> list[int]:
    """Every token whose text contains a newline (``\\n``, ``.\\n``, SentencePiece's ``<0x0A>``...). Each token is
    decoded alone, so a byte-fallback ``<0x0A>`` counts even where it follows an incomplete UTF-8 sequence (decoded
    in context, those bytes all become replacement characters and the newline is lost)."""
    return [i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])]


def end_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a reply: the tokenizer's EOS and all of ``generation_config.eos_token_id`` (Llama-3 and
    Qwen instruct judges list several, e.g. ``<|eot_id|>`` besides ``<|end_of_text|>``)."""
    ids = {tokenizer.eos_token_id}
    gen = getattr(model, "generation_config", None)
    listed = getattr(gen, "eos_token_id", None)
    ids |= set(listed) if isinstance(listed, (list, tuple)) else {listed}
    return sorted(i for i in ids if i is not None)


def plan_batches(lengths: list[int], max_new: int, batch_tokens: int, max_batch: int,
                 max_padding: float, prefill_tokens: int = 0) -> list[list[int]]:
    """Indices grouped into prefill groups, longest prompt first.

    A batch stays within the token budget (rows × (longest prompt + max_new)), at most ``max_batch`` rows, at most
    ``prefill_tokens`` prompt positions (0: no limit) and at most ``max_padding`` of its prompt positions are
    padding: padded positions cost a full forward pass each.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    real = 0
    for i in order:
        if cur:
            n, width = len(cur) + 1, lengths[cur[0]]
            if (n > max_batch or n * (width + max_new) > batch_tokens or 0 < prefill_tokens < n * width
                    or n * width > (1 + max_padding) * (real + lengths[i])):
                batches.append(cur)
                cur, real = [], 0
        cur.append(i)
        real += lengths[i]
    if cur:
        batches.append(cur)
    return batches


def decode_batches(groups: list[list[int]], lengths: list[int], max_new: int, batch_tokens: int,
                   max_batch: int) -> list[list[list[int]]]:
    """Consecutive prefill groups merged into decode batches of at most ``max_batch`` rows whose cache, rows ×
    (widest prompt + max_new), stays within the token budget.

    A decode step costs far less per row in a big batch than alone (every weight is read once per step; on this
    project's 2-core CPU 24 rows cost 3.8× one row, on a GPU close to 1×), so rows decode together even when their
    prompts were too different in length to prefill together.
    """
    batches: list[list[list[int]]] = []
    rows = 0
    for g in groups:
        if batches:
            width = lengths[batches[-1][0][0]]  # groups come longest first
            if rows + len(g) <= max_batch and (rows + len(g)) * (width + max_new) <= batch_tokens:
                batches[-1].append(g)
                rows += len(g)
                continue
        batches.append([g])
        rows = len(g)
    return batches


def prefill_plan(ids: list[list[int]], max_new: int, batch_tokens: int, max_batch: int, max_padding: float,
                 per_token: float | None, prefill_tokens: int = 0) -> tuple[list[list[int]], dict[int, int]]:
    """Prefill groups, longest first, and the shared prefix length of each group that has one (keyed by its first
    row). ``per_token``: the model's ``attention_positions_per_token``; ``None`` shares nothing; ``prefill_tokens``
    caps the prompt positions of one prefill (0: no cap).

    Rows sharing a prefix are grouped by the length of what follows it, under the same padding and token budget
    rules as other rows; a prefix split over several groups is still computed once per decode batch.
    """
    lengths = [len(x) for x in ids]
    shared, alone = [], []
    for p, rows in (prefix_groups(ids) if per_token is not None else [(0, list(range(len(ids))))]):
        worth = [i for i in rows if p and worth_sharing(p, lengths[i] - p, per_token)]
        worth = worth if len(worth) > 1 else []
        if worth:
            shared.append((p, worth))
        alone += [i for i in rows if i not in worth]
    groups = [[alone[i] for i in g] for g in
              plan_batches([lengths[i] for i in alone], max_new, batch_tokens, max_batch, max_padding, prefill_tokens)]
    prefix_of = {}
    for p, rows in shared:  # the budget counts whole rows: the prefix rides along with max_new
        for g in plan_batches([lengths[i] - p for i in rows], max_new + p, batch_tokens, max_batch, max_padding,
                              prefill_tokens):
            groups.append([rows[i] for i in g])
            prefix_of[groups[-1][0]] = p
    groups.sort(key=lambda g: -lengths[g[0]])
    return groups, prefix_of


CPU_PREFILL_TOKENS = 2048
"""Prompt positions of one prefill on a CPU by default: a small judge's activations then stay in the core's cache,
where its elementwise operations (norms, rotary embeddings, activations) run faster than from memory, and the matrix
products are as fast at this size (tiny judge, one core: 10-20 % less CPU time than unbounded prefills)."""

SMALL_MODEL = 10_000_000
"""Parameters below which a CPU engine judges in one process per thread by default. Measured on this project's
2-core CPU (docs/speed.md, "Processes or threads"): the 1.9M tiny judge is 7-18 % faster in two one-thread processes
than in one two-thread process (its operations are too small for two threads to share), while the 52.5M bench model
is up to 2.4× faster with threads (0.95-2.4× over the bench's workloads): its decode steps are bound by reading the
weights and the KV cache, which one process does once per step for the whole batch and two processes each do for
their half. Nothing between the two sizes was measured. From this size up, a CPU engine also packs its weights for
decoding (``judgelm.inference.packed_linear``): slower on the tiny judge; on the 52.5M model 3-11 % faster with MKL's
packing on the Intel VM, 1.1-1.6× faster with oneDNN's than with MKL's on the AMD VM of 2026-12-07."""


def cpu_processes(requested: int, device: torch.device, params: int) -> int:
    """How many processes judge side by side (``judgelm.inference.fork_pool``): only ever on a CPU; ``requested``
    (``EngineConfig.cpu_processes``), or for 0 one per torch thread for a small model, else one."""
    if device.type != "cpu":
        return 1
    if requested:
        return requested
    return min(torch.get_num_threads(), 8) if params < SMALL_MODEL else 1


def cache_keyword(model) -> str:
    """The name of a model's KV-cache argument and output: transformers 5.24 renamed ``past_key_values`` to
    ``cache`` (the old name warns in every shard's log, and goes in 5.40); vLLM's own venv holds 5.19."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class HFEngine:
    """Judges lists of tokenized prompts with a loaded causal LM."""

    def __init__(self, model, tokenizer, device: torch.device, cfg: EngineConfig):
        if not cfg.batch_tokens:  # measured once, now that the weights are in memory
            cfg = replace(cfg, batch_tokens=gpu_budget(model, cfg.memory_margin))
        self.model, self.tokenizer, self.device, self.cfg = model, tokenizer, device, cfg
        self.max_new = cfg.new_tokens()
        stop = set(end_token_ids(model, tokenizer))
        if cfg.mode == "fast":
            stop |= set(newline_token_ids(tokenizer))
        self.stop_ids = torch.tensor(sorted(stop), device=device, dtype=torch.long)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.logprob_steps = self.max_new if cfg.logprobs_topk > 0 else 0
        text_cfg = model.config.get_text_config()
        # A replica spread over several GPUs returns outputs to the input GPU only from its top-level call; the
        # decoder and head called one by one (plain_head) would leave hidden states on the last GPU.
        self.per_token = attention_positions_per_token(text_cfg.hidden_size, text_cfg.intermediate_size)
        spread = len(set(getattr(model, "hf_device_map", {}).values())) > 1
        self.plain_head = not spread and not any(getattr(text_cfg, k, None) for k in
                                  ("final_logit_softcapping", "logit_scale", "logits_scaling"))
        self.window = attention_window(text_cfg, model.config._attn_implementation)
        self.cache_kw = cache_keyword(model)
        self.eager = model.config._attn_implementation == "eager"
        # On a GPU, flash-attention already reads each row's own slots only (and SDPA's kernels would be launched
        # once per span); a sliding window needs its own mask.
        self.row_attention = (device.type == "cpu" and self.window is None
                              and model.config._attn_implementation in ("sdpa", row_attention.NAME))
        if self.row_attention:
            row_attention.install(model)
            self.call_slots = row_attention.CALL_ELEMENTS // kv_width(text_cfg)
        if device.type == "cpu":
            keep_freed_memory()
        params = sum(p.numel() for p in model.parameters())
        self.cpu_processes = cpu_processes(cfg.cpu_processes, device, params)
        if device.type == "cpu" and SMALL_MODEL <= params <= packed_linear.MAX_PARAMS and packed_linear.available():
            packed_linear.install(model)
        self.prefill_tokens = cfg.prefill_tokens or (CPU_PREFILL_TOKENS if device.type == "cpu" else 0)
        self.pool: ForkPool | None = None
        self._following: Callable[[], tuple[list[int], list[list[int]]]] | None = None  # see ``expect``
        self._queued: tuple | None = None  # (pool, units, ids, batches, job numbers) of a call queued ahead of it

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    def generate(self, units: list[int], ids: list[list[int]], prompts: list | None = None) -> list[Generation]:
        """One ``Generation`` per prompt, in the order given. ``prompts`` (the rendered texts) are for engines
        that send text to a server; this one judges the token ids."""
        out: list[Generation | None] = [None] * len(ids)
        pool, following = self._pool(), self._following
        self._following = None
        if pool is None:
            batches, jobs = self._plan(units, ids, 1)
            results = [self._run_job(job) for job in jobs]
        else:
            batches, numbers = self._queued_for(pool, units, ids)
            more = (lambda: self._queue(pool, following)) if following is not None else None
            results = pool.collect(self._run_job, numbers, more)
        for batch, result in zip(batches, results):
            for i, gen in zip((i for g in batch for i in g), result):
                out[i] = self._finish(gen)
        return out  # type: ignore[return-value]

    def expect(self, following: Callable[[], tuple[list[int], list[list[int]]]]) -> None:
        """What the call after the next ``generate`` will ask (units, token ids), as a function that may wait for
        them: with several compute processes, its batches are queued when the next call has none left to hand out,
        so that the processes done first go on with them instead of idling while its last batches end, and while
        this process makes texts of the call's results. Results do not depend on it."""
        self._following = following

    def _queued_for(self, pool: ForkPool, units: list[int], ids: list[list[int]]) -> tuple[list, range]:
        """This call's batches and their job numbers in ``pool``: queued already if an earlier call expected it
        (a call in between, a resample's, leaves that queue to the call it was made for)."""
        q = self._queued
        if q is not None and q[0] is pool and q[1] == units and q[2] == ids:
            self._queued = None
            return q[3], q[4]
        batches, jobs = self._plan(units, ids, pool.processes)
        return batches, pool.submit(jobs)

    def _queue(self, pool: ForkPool, following: Callable[[], tuple[list[int], list[list[int]]]]) -> None:
        try:
            units, ids = following()
        except Exception:  # (the preparation failed): its own call shows the error; nothing is queued
            return
        if self._queued is not None and self._queued[0] is pool:  # expected, but asked otherwise: never collected
            pool.drop(self._queued[4])
        self._queued = None
        if ids:
            batches, jobs = self._plan(units, ids, pool.processes)
            self._queued = (pool, list(units), list(ids), batches, pool.submit(jobs))

    def _plan(self, units: list[int], ids: list[list[int]], processes: int) -> tuple[list, list[tuple]]:
        """Decode batches (each a list of prefill groups of row indices) and the job of each."""
        lengths = [len(x) for x in ids]
        # With several processes, batches are kept small enough that each process gets a few of them.
        max_batch = self.cfg.max_batch if processes == 1 else max(1, min(self.cfg.max_batch,
                                                                         -(-len(ids) // (2 * processes))))
        groups, prefix_of = prefill_plan(ids, self.max_new, self.cfg.batch_tokens, max_batch,
                                         self.cfg.max_padding, self.per_token if self.cfg.prefix_sharing else None,
                                         self.prefill_tokens)
        batches = decode_batches(groups, lengths, self.max_new, self.cfg.batch_tokens, max_batch)
        if processes > 1 and prefix_of:
            # The processes claim jobs in order. Longest prompts first is costliest first until shared prefixes
            # make some batches cheaper than their lengths say; then the costliest could be claimed last and end
            # alone (the tiny judge's PandaLM rows, sharing on: one process idle for the last 15-25 % of a call).
            batches.sort(key=lambda b: -sum(prefill_cost([lengths[i] for i in g], prefix_of.get(g[0], 0),
                                                         self.per_token) for g in b))
        jobs = [(self.cfg, [units[i] for g in batch for i in g], [[ids[i] for i in g] for g in batch],
                 [prefix_of.get(g[0], 0) for g in batch]) for batch in batches]
        return batches, jobs

    def _pool(self) -> ForkPool | None:
        """The compute processes this engine judges with on a CPU (``EngineConfig.cpu_processes``), forked at
        first use; ``None``: this process alone."""
        n = self.cpu_processes
        if n <= 1:
            return None
        if self.pool is None or not self.pool.alive:
            if self.pool is not None:
                self.pool.close()
            self.pool = ForkPool(self._run_job, n - 1)
        return self.pool

    def _run_job(self, job: tuple) -> list[Generation]:
        """One decode batch, with the settings it was planned with (they travel with the job to a child; here, a
        batch queued ahead of a resample's call must not leave its settings behind)."""
        saved, self.cfg = self.cfg, job[0]
        try:
            return self._run_batch(*job[1:])
        finally:
            self.cfg = saved

    def _finish(self, g: Generation) -> Generation:
        """The generation's text, decoded here rather than in a compute process (one tokenizer call per unit)."""
        eos = self.tokenizer.eos_token_id
        g.text = self.tokenizer.decode([t for t in g.token_ids if t != eos], skip_special_tokens=True)
        return g

    @torch.inference_mode()
    def _prefill(self, groups: list[list[list[int]]], prefixes: list[int]):
        """Each group's right-padded, mask-free prefill, written into one cache for the whole decode batch.

        With right padding a causal model never lets a real token see a pad (pads come after it), so no mask is
        needed and the result is exact; a left-padded batch would need an explicit mask, which sends SDPA to its
        slow path and materialises a rows × length² tensor. A group whose rows share their first ``prefixes[g]``
        tokens gets that prefix's keys and values computed once (or copied from an earlier group of the batch with
        the same prefix, or computed after the part of it an earlier row holds: ``_prefill_prefix``) and prefills
        only the rest. Returns the cache, each row's length and the logits at each row's last real token.
        """
        lengths = [len(p) for g in groups for p in g]
        width = max(lengths)
        cache = batch_cache(self.model.config.get_text_config().num_hidden_layers, len(lengths), width, self.max_new)
        logits, start, blocks = [], 0, []
        computed: dict[tuple[int, ...], int] = {}  # a prefix -> a row of the batch that holds its keys and values
        written: list[tuple[list[int], int]] = []  # each prompt already in the cache, and its row
        for g, p in zip(groups, prefixes):
            block = row_block(cache, start)
            blocks.append(block)
            if p:
                key = tuple(g[0][:p])
                if key not in computed:
                    self._prefill_prefix(g[0][:p], cache, block, start, written)
                    computed[key] = start
                share_prefix(cache, block, computed[key], start, len(g), p)
            logits.append(self._prefill_group([x[p:] for x in g], block))
            written += [(x, start + r) for r, x in enumerate(g)]
            start += len(g)
        seal(cache, width, blocks)
        return cache, torch.tensor(lengths, device=self.device), torch.cat(logits)

    def _prefill_prefix(self, prefix: list[int], cache, block, row: int, written: list[tuple[list[int], int]]):
        """A group's shared ``prefix`` into its first ``row``, continuing from the longest start it has in common
        with a prompt already in the batch's cache, where that start is worth sharing. PandaLM's prefixes nest
        (the question is shared by every pair of answers to it, the first answer by the pairs it opens) where the
        groups are one level: the 52.5M bench model's PandaLM batch computes 6,716 prompt positions instead of
        7,771, the tiny judge's PandaLM batches 20,450 instead of 21,401 (docs/speed.md)."""
        held, src = max(((common_prefix(prefix, x), r) for x, r in written), default=(0, -1))
        if held >= MIN_PREFIX and worth_sharing(held, len(prefix) - held, self.per_token):
            share_prefix(cache, block, src, row, 1, held)
        else:
            held = 0
        if held < len(prefix):
            self._prefill_group([prefix[held:]], block)

    def _prefill_group(self, prompts: list[list[int]], cache):
        b, width = len(prompts), max(len(p) for p in prompts)
        input_ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        for r, p in enumerate(prompts):
            input_ids[r, : len(p)] = torch.tensor(p)
        lengths = torch.tensor([len(p) for p in prompts], device=self.device)
        input_ids, rows = input_ids.to(self.device), torch.arange(b, device=self.device)
        if self.plain_head:  # logits of the last real token of each row only
            out = self.model.get_decoder()(input_ids=input_ids, **{self.cache_kw: cache}, use_cache=True)
            return self.model.get_output_embeddings()(out.last_hidden_state[rows, lengths - 1])
        # Models that transform their logits (soft-capping, scaling) go through their own head, at the positions
        # some row ends at.
        ends, col = torch.unique(lengths - 1, return_inverse=True)
        out = self.model(input_ids=input_ids, **{self.cache_kw: cache}, use_cache=True, logits_to_keep=ends)
        return out.logits[rows, col]

    def _step_attention(self, lengths: torch.Tensor, finished: torch.Tensor, step: int):
        """Decode step ``step``'s attention mask, and the context its forward pass runs in. Row i reads slots
        ``[0, len_i + step]``: spans of live rows each over their own slots (``row_attention``), or one mask over
        the widest row's slots; for a sliding-window model the window counted from each row's own query."""
        if self.row_attention:
            spans = row_attention.row_spans((lengths + step).tolist(), (~finished).tolist(), self.call_slots)
            return None, row_attention.reading_rows(spans, lengths, step)
        if self.window is not None:
            return position_mask(lengths, step, self.window, self.model.dtype if self.eager else None), nullcontext()
        slots = torch.arange(int(lengths.max()) + step + 1, device=self.device)
        return (slots[None, :] <= (lengths + step)[:, None]).long(), nullcontext()

    @torch.inference_mode()
    def _run_batch(self, units: list[int], groups: list[list[list[int]]], prefixes: list[int]) -> list[Generation]:
        b = len(units)
        cache, lengths, logits = self._prefill(groups, prefixes)
        unit_t = torch.tensor(units, device=self.device)
        rows = torch.arange(b, device=self.device)  # batch position -> original row
        finished = torch.zeros(b, dtype=torch.bool, device=self.device)  # rows done but not yet dropped
        generated: list[list[int]] = [[] for _ in range(b)]
        stopped = [False] * b
        k = self.cfg.logprobs_topk
        top_ids = np.zeros((b, self.logprob_steps, k), dtype=np.int32) if k else None
        top_lp = np.full((b, self.logprob_steps, k), np.nan, dtype=np.float32) if k else None
        for step in range(self.max_new):
            live = ~finished
            if k and step < self.logprob_steps:
                lp = torch.log_softmax(logits[live].float(), dim=-1).topk(k, dim=-1)
                idx = rows[live].cpu().numpy()
                top_ids[idx, step] = lp.indices.cpu().numpy()
                top_lp[idx, step] = lp.values.cpu().numpy()
            tok = next_tokens(logits, unit_t[rows], step, self.cfg.temperature, self.cfg.top_k, self.cfg.top_p,
                              self.cfg.seed)
            ends = torch.isin(tok, self.stop_ids) & live
            for r, t in zip(rows[live].tolist(), tok[live].tolist()):
                generated[r].append(t)
            for r in rows[ends].tolist():
                stopped[r] = True
            finished |= ends
            if bool(finished.all()) or step == self.max_new - 1:
                break
            # Finished rows leave the batch with their cache rows. Compacting copies the whole cache, so it
            # waits until a quarter of the batch is finished; until then those rows' outputs are ignored (and with
            # row_attention their attention is skipped).
            if int(finished.sum()) * 4 >= len(rows):
                keep = (~finished).nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                rows, tok, lengths = rows[keep], tok[keep], lengths[keep]
                finished = finished[keep]
            decode_at(cache, lengths + step)
            mask, attending = self._step_attention(lengths, finished, step)
            with attending:
                out = self.model(input_ids=tok[:, None], attention_mask=mask, position_ids=(lengths + step)[:, None],
                                 **{self.cache_kw: cache}, use_cache=True)
            cache, logits = getattr(out, self.cache_kw), out.logits[:, -1]

        return [Generation(unit=units[r], token_ids=generated[r], text="", stopped=stopped[r],
                           top_ids=None if top_ids is None else top_ids[r],
                           top_logprobs=None if top_lp is None else top_lp[r]) for r in range(b)]
