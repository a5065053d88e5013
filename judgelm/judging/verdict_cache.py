"""Verdicts are never computed twice: a cache of generations keyed by judge, decoding settings and exact prompt.

Key = sha256 of (the judge's weights fingerprint, the decoding settings, the prompt's token ids). Anything that
could change the generated text is in it; nothing else is, so the same prompt judged by another run (a re-run, an
evaluation with one more model, another pairing that repeats a comparison) is a hit. Sampled decoding is not
cached: its noise is seeded per unit, so a verdict reused from another unit would not be the one this unit draws.

Layout (``<runs>/.verdict-cache/``, next to the runs): immutable files ``<sha256 of the content>.jsonl``, one per
committed chunk, one JSON line per verdict. A writer writes a temporary file and ``os.replace``s it into place, so
a reader never sees half a file; two shards writing the same entries at once write files of the same name and
content, and whichever replace lands last changes nothing. Readers take the union of all files. Nothing is ever
rewritten, so no lock is needed on a shared filesystem. A shard reads the whole directory once when it starts
(about 100 bytes of memory and disk per fast-mode verdict); deleting the directory only costs re-judging.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # only for annotations: readers of the cache need neither torch nor transformers
    from judgelm.inference.hf import Generation
    from judgelm.inference.prepare import Prepared
    from judgelm.judging.config import JudgeConfig

CACHE_DIR = ".verdict-cache"
_SAMPLED_BLOCK = 1 << 20  # bytes hashed per sample of a large weight file
_FULL_HASH_LIMIT = 256 << 20  # weight files up to this size are hashed whole
_MODEL_FILES = ("*.safetensors", "*.bin", "*.pt", "config.json", "tokenizer*", "*.model", "special_tokens_map.json")


def _file_digest(path: Path) -> str:
    """sha256 of a file; for a large one, of its size and 16 evenly spread 1 MiB blocks (hashing a 13 GB
    checkpoint in every shard would cost minutes; a changed checkpoint changes its size or its sampled bytes)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        if size <= _FULL_HASH_LIMIT:
            for block in iter(lambda: f.read(_SAMPLED_BLOCK), b""):
                h.update(block)
        else:
            for k in range(16):
                f.seek(k * (size - _SAMPLED_BLOCK) // 15)
                h.update(f.read(_SAMPLED_BLOCK))
    return h.hexdigest()


@lru_cache(maxsize=8)
def judge_fingerprint(model_path: str) -> str:
    """A digest of the judge's weights, config and tokenizer files; a hub id without a local copy is its name."""
    path = Path(model_path)
    if not path.is_dir():
        return hashlib.sha256(f"hub:{model_path}".encode()).hexdigest()
    files = sorted({p for pattern in _MODEL_FILES for p in path.glob(pattern) if p.is_file()})
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.name}\0{_file_digest(p)}\n".encode())
    return h.hexdigest()


def cache_key(fingerprint: str, decoding: dict[str, Any], token_ids: list[int], prompt: Any = None) -> str:
    """``prompt`` (a ``judgelm.profiles.base.Prompt``) adds the rendered text: a chat server applies its own template
    to the messages, so the token ids alone do not say what it was sent."""
    h = hashlib.sha256(fingerprint.encode())
    h.update(json.dumps(decoding, sort_keys=True).encode())
    h.update(np.asarray(token_ids, dtype=np.int64).tobytes())
    if prompt is not None:
        h.update(json.dumps([prompt.messages(), prompt.chat]).encode())
    return h.hexdigest()


@dataclass
class Entry:
    """A cached generation: what ``judge_chunk`` needs to fill a unit's verdict."""

    text: str
    token_ids: list[int]
    top_ids: list | None = None
    top_logprobs: list | None = None
    stopped: bool = True  # ended on EOS (or the score line's newline), not at max_new_tokens

    @classmethod
    def of(cls, g: Generation) -> Entry:
        return cls(g.text, list(g.token_ids), None if g.top_ids is None else g.top_ids.tolist(),
                   None if g.top_logprobs is None else g.top_logprobs.tolist(), bool(g.stopped))

    def generation(self, unit: int) -> Generation:
        from judgelm.inference.hf import Generation

        return Generation(unit=unit, token_ids=self.token_ids, text=self.text, stopped=self.stopped,
                          top_ids=None if self.top_ids is None else np.array(self.top_ids, dtype=np.int32),
                          top_logprobs=None if self.top_logprobs is None else np.array(self.top_logprobs))

    def to_json(self, key: str) -> str:
        return json.dumps({"key": key, "text": self.text, "token_ids": self.token_ids, "top_ids": self.top_ids,
                           "top_logprobs": self.top_logprobs, "stopped": self.stopped}, ensure_ascii=False)


@dataclass
class VerdictCache:
    """One judge and decoding setup's view of the cache directory: look up, stage new entries, flush them."""

    root: Path
    fingerprint: str
    decoding: dict[str, Any]
    entries: dict[str, Entry] = field(default_factory=dict)
    staged: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def open(cls, root: str | Path, fingerprint: str, decoding: dict[str, Any]) -> VerdictCache:
        """Read every entry in ``root`` (the union of its files; other judges' entries simply never match)."""
        cache = cls(Path(root), fingerprint, decoding)
        for path in sorted(cache.root.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                key = row.pop("key")
                cache.entries[key] = Entry(**row)
        return cache

    def key(self, token_ids: list[int], prompt: Any = None) -> str:
        return cache_key(self.fingerprint, self.decoding, token_ids, prompt)

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key) or self.staged.get(key)

    def stage(self, key: str, entry: Entry) -> None:
        """Remember a new verdict; it is written by ``flush``, after its chunk is committed to the store."""
        self.staged[key] = entry

    def flush(self) -> Path | None:
        """Write the staged entries as one immutable, content-addressed file; returns it (None if none)."""
        if not self.staged:
            return None
        text = "".join(e.to_json(k) + "\n" for k, e in sorted(self.staged.items()))
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{hashlib.sha256(text.encode()).hexdigest()}.jsonl"
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        self.entries.update(self.staged)
        self.staged = {}
        return path


def decoding_settings(cfg: JudgeConfig) -> dict[str, Any]:
    """Every setting besides the weights and the prompt that changes what the judge generates."""
    e = cfg.engine
    return {"backend": e.backend, "mode": e.mode, "max_new_tokens": e.new_tokens(), "logprobs_topk": e.logprobs_topk,
            "dtype": cfg.model.dtype, "temperature": e.temperature, "api": e.api, "served_model": e.served_model,
            "profile": cfg.judge.profile}


def open_cache(runs_dir: str | Path, cfg: JudgeConfig) -> VerdictCache | None:
    """The cache next to the runs for this run's judge and decoding, or None when off, when decoding is sampled, or
    when a unit keeps more than its verdict (re-asks on parse failure: a cached unit would have no attempts)."""
    if not cfg.verdict_cache or cfg.engine.temperature > 0 or cfg.engine.parse_retries > 0:
        return None
    return VerdictCache.open(Path(runs_dir) / CACHE_DIR, judge_fingerprint(cfg.model.path), decoding_settings(cfg))


def generate_with_cache(engine, prep: Prepared, todo: np.ndarray,
                        cache: VerdictCache | None) -> tuple[list[Generation], np.ndarray]:
    """Generations for the units ``todo`` of a prepared chunk (in ``todo`` order), taken from the cache where it has
    them; the others are generated and staged for the cache. Also returns, per unit of the chunk, whether it was a
    hit."""
    hit = np.zeros(len(prep.unit), dtype=bool)
    keys = {i: cache.key(prep.ids[i], prep.prompts[i]) for i in todo} if cache is not None else {}
    out: dict[int, Generation] = {}
    for i, key in keys.items():
        entry = cache.get(key)
        if entry is not None:
            out[i], hit[i] = entry.generation(int(prep.unit[i])), True
    miss = [i for i in todo if i not in out]
    gens = engine.generate([int(prep.unit[i]) for i in miss], [prep.ids[i] for i in miss],
                           [prep.prompts[i] for i in miss]) if miss else []
    for i, g in zip(miss, gens):
        out[i] = g
        if cache is not None:
            cache.stage(keys[i], Entry.of(g))
    return [out[i] for i in todo], hit
