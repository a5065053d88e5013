"""One chunk of answers, every turn: the conversations of the chunk's units advance one turn at a time, batched.

Turn ``t`` of every unit that has one is generated in one call to the engine (grouped by the temperature its
question is sampled at), from the whole conversation so far: the system message, the user turns and the model's own
earlier answers (their thinking left out, as chat templates of reasoning models do), as FastChat's
gen_model_answer.py generates MT-Bench's second turn. Each turn's sampling noise is keyed by (question, turn,
sample) (``answer_cache.noise_id``), never by batch, shard or attempt, and answers already in the answer cache are
taken from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from judgelm.generation.answer_cache import AnswerCache, noise_id
from judgelm.generation.chat import Conversation, encode, render, split_thinking, with_reasoning
from judgelm.generation.store import LENGTH, NOT_ASKED, STOP, TOO_LONG, ChunkAnswers
from judgelm.judging.verdict_cache import Entry


@dataclass(frozen=True)
class TurnSettings:
    """What every conversation of a run shares."""

    max_new_tokens: int
    template: str | None  # None: the model's own chat template
    system_prompt: str  # empty: none
    keep_thinking: bool


@dataclass(frozen=True)
class Request:
    noise: int
    ids: list[int]
    conversation: Conversation
    temperature: float


class CacheMiss(Exception):
    """An answer the cache does not hold, asked of an engine that only reads the cache (``CacheOnly``)."""


@contextlib.contextmanager
def sampling_at(engine, temperature: float) -> Iterator[None]:
    """The engine samples at ``temperature`` for the block. Every backend reads ``engine.cfg`` per call, so one
    loaded engine serves every category's temperature."""
    cfg = engine.cfg
    engine.cfg = dataclasses.replace(cfg, temperature=float(temperature))
    try:
        yield
    finally:
        engine.cfg = cfg


def generate_cached(engine, cache: AnswerCache | None, requests: list[Request]) -> list[tuple[object, bool]]:
    """``(generation, from the cache)`` per request, in order; the others generated (per temperature) and staged
    for the cache. A server's separate reasoning is put back in front of the text (``chat.with_reasoning``)."""
    out: list[tuple[object, bool] | None] = [None] * len(requests)
    keys = [cache.key(r.temperature, r.noise, r.ids, r.conversation) if cache else "" for r in requests]
    for k, key in enumerate(keys):
        entry = cache.get(key) if cache else None
        if entry is not None:
            out[k] = (entry.generation(requests[k].noise), True)
    misses: dict[float, list[int]] = {}
    for k, r in enumerate(requests):
        if out[k] is None:
            misses.setdefault(r.temperature, []).append(k)
    for temperature, ks in misses.items():
        with sampling_at(engine, temperature):
            gens = engine.generate([requests[k].noise for k in ks], [requests[k].ids for k in ks],
                                   [requests[k].conversation for k in ks])
        for k, g in zip(ks, gens):
            g = dataclasses.replace(g, text=with_reasoning(g.text, g.extra.get("reasoning")))
            out[k] = (g, False)
            if cache is not None:
                cache.stage(keys[k], Entry(g.text, list(g.token_ids), stopped=bool(g.stopped), new_tokens=g.new_tokens))
    return out  # type: ignore[return-value]


def answer_chunk(inputs: dict, n_turns: int, engine, settings: TurnSettings,
                 cache: AnswerCache | None) -> ChunkAnswers:
    """Every turn of every unit of a chunk (``AnswerStore.chunk_inputs``), ``n_turns`` columns wide."""
    n = len(inputs["unit"])
    tok = engine.tokenizer
    text = [[""] * n_turns for _ in range(n)]
    reasoning = [[""] * n_turns for _ in range(n)]
    finish = np.full((n, n_turns), NOT_ASKED, dtype=np.int8)
    prompt_tokens = np.zeros((n, n_turns), dtype=np.int32)
    new_tokens = np.zeros((n, n_turns), dtype=np.int32)
    cached = np.zeros((n, n_turns), dtype=bool)
    system = [("system", settings.system_prompt)] if settings.system_prompt else []
    history = [list(system) for _ in range(n)]
    limit = engine.context_length - settings.max_new_tokens
    for t in range(n_turns):
        rows = [i for i in range(n) if t < inputs["n_turns"][i] and finish[i, t] == NOT_ASKED]  # not cut off before
        if not rows:
            break
        convs = [render(tok, history[i] + [("user", inputs["turns"][i][t])], settings.template) for i in rows]
        ids = encode(tok, convs)
        prompt_tokens[rows, t] = [len(x) for x in ids]
        fits = [k for k, x in enumerate(ids) if len(x) <= limit]
        for k in sorted(set(range(len(rows))) - set(fits)):  # not generated; the conversation cannot go on
            finish[rows[k], t:inputs["n_turns"][rows[k]]] = TOO_LONG
        requests = [Request(noise_id(inputs["question_id"][rows[k]], t, int(inputs["sample"][rows[k]])), ids[k],
                            convs[k], float(inputs["temperature"][rows[k]])) for k in fits]
        for k, (g, hit) in zip(fits, generate_cached(engine, cache, requests)):
            i = rows[k]
            thinking, answer = split_thinking(g.text)
            text[i][t], reasoning[i][t] = (g.text if settings.keep_thinking else answer), thinking
            finish[i, t] = STOP if g.stopped else LENGTH
            new_tokens[i, t], cached[i, t] = g.n_new, hit
            history[i] += [("user", inputs["turns"][i][t]), ("assistant", answer)]
    return ChunkAnswers(text, reasoning, finish, prompt_tokens, new_tokens, cached, np.full(n, time.time()))


class CacheOnly:
    """An engine that answers only from the cache: used at run creation to commit every chunk the cache already
    holds, so that a re-run or an added model submits nothing it need not."""

    def __init__(self, tokenizer, context_length: int, cfg):
        self.tokenizer, self.context_length, self.cfg = tokenizer, context_length, cfg

    def generate(self, units, ids, prompts=None):
        raise CacheMiss
