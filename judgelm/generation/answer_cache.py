"""Answers are never generated twice: a cache keyed by model, generation settings and the exact conversation.

It is the verdict cache's mechanism (``judgelm.judging.verdict_cache``: immutable content-addressed files, the union
read at start, safe under concurrent shards on a shared filesystem) in a directory of its own,
``<runs_dir>/.answer-cache/``. Key = sha256 of the model's weights fingerprint, the generation settings and the
turn's prompt (its token ids and its messages). The settings are the backend, ``max_new_tokens``, dtype, the server
API and served model, the chat template, the temperature the turn is sampled at and, when it samples, ``top_k``,
``top_p``, the seed and the turn's noise id (question, turn, sample). A sampled answer is a pure function of all
that (``judgelm.inference.sampling``), so unlike a sampled verdict it can be cached: a re-run generates nothing,
and an evaluation with one more model generates only that model's answers. An entry keeps the raw text (a server's
separate reasoning put back in ``<think>`` tags), its token ids and whether it ended on EOS.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgelm.generation.chat import Conversation, template_digest, template_text
from judgelm.generation.config import GenerationConfig
from judgelm.judging.verdict_cache import Entry, VerdictCache, cache_key, judge_fingerprint

CACHE_DIR = ".answer-cache"


def noise_id(question_id: int | str, turn: int, sample: int) -> int:
    """The key of one answer turn's sampling noise (31 bits, as the engines take it): the same in any batch, shard,
    attempt or run, so an answer never depends on them."""
    digest = hashlib.sha256(f"{question_id}\0{turn}\0{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def generation_settings(cfg: GenerationConfig) -> dict[str, Any]:
    """The settings besides the weights and the prompt that change every answer of a run."""
    e = cfg.engine
    return {"kind": "answer", "backend": e.backend, "max_new_tokens": e.max_new_tokens, "dtype": cfg.model.dtype,
            "api": e.api, "served_model": e.served_model,
            "chat_template": template_digest(template_text(cfg.generate.chat_template))}


@dataclass
class AnswerCache:
    """One run's view of the cache: keys per turn (temperature and noise differ by question and turn)."""

    cache: VerdictCache
    top_k: int
    top_p: float
    seed: int

    def key(self, temperature: float, noise: int, token_ids: list[int], conversation: Conversation) -> str:
        decoding = {**self.cache.decoding, "temperature": float(temperature)}
        if temperature > 0:
            decoding.update(top_k=self.top_k, top_p=self.top_p, seed=self.seed, noise=noise)
        return cache_key(self.cache.fingerprint, decoding, token_ids, conversation)

    def get(self, key: str) -> Entry | None:
        return self.cache.get(key)

    def stage(self, key: str, entry: Entry) -> None:
        self.cache.stage(key, entry)

    def flush(self) -> None:
        """Write the staged answers; called once their chunk is committed to the store."""
        self.cache.flush()


def open_answer_cache(cfg: GenerationConfig) -> AnswerCache | None:
    """The cache next to the runs for this run's model and settings, or ``None`` when ``answer_cache=false``."""
    if not cfg.answer_cache:
        return None
    cache = VerdictCache.open(Path(cfg.runs_dir) / CACHE_DIR, judge_fingerprint(cfg.model.path),
                              generation_settings(cfg))
    return AnswerCache(cache, cfg.engine.top_k, cfg.engine.top_p, cfg.engine.seed)
