"""Verdicts are never computed twice: a cache of generations keyed by judge, decoding settings and exact prompt.

Key = sha256 of (the judge's weights fingerprint, the decoding settings, the prompt's token ids). Anything that
could change the generated text is in it; nothing else is, so the same prompt judged by another run (a re-run, an
evaluation with one more model, another pairing that repeats a comparison) is a hit. Sampled decoding is not
cached: its noise is seeded per unit, so a verdict reused from another unit would not be the one this unit draws.

Layout (``<runs>/.verdict-cache/``, next to the runs; ``CacheFiles``): immutable files ``<sha256 of the
content>.jsonl``, one per committed chunk: a header line naming the cache version, then one JSON line per verdict,
its key first. A writer writes a temporary file and ``os.replace``s it into place, so a reader never sees half a
file; two shards writing the same entries at once write files of the same name and content, and whichever replace
lands last changes nothing. Readers take the union of all files. Nothing is ever rewritten, so no lock is needed
on a shared filesystem; deleting the directory only costs re-judging.

Opening reads every file once, checks it against the checksum its name is, and indexes the keys without parsing
a line (a million entries open in about a second); a hit parses its one line. A file that fails its checksum
(overwritten, truncated, emptied) or was written by another cache version cannot stop a run: it is skipped with
one warning (which file, how many entries), moved to ``unreadable/``, and counted in the run's summary; the units
it would have served are judged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
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

log = logging.getLogger("judgelm.judging.verdict_cache")
CACHE_DIR = ".verdict-cache"
UNREADABLE_DIR = "unreadable"  # where files that cannot be read are moved, under the cache directory
_SAMPLED_BLOCK = 1 << 20  # bytes hashed per sample of a large weight file
_FULL_HASH_LIMIT = 256 << 20  # weight files up to this size are hashed whole
_MODEL_FILES = ("*.safetensors", "*.bin", "*.pt", "config.json", "adapter_config.json", "tokenizer*", "*.model",
                "special_tokens_map.json")


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
    new_tokens: int | None = None  # ``Generation.new_tokens``: a server's count of what it generated

    @classmethod
    def of(cls, g: Generation) -> Entry:
        return cls(g.text, list(g.token_ids), None if g.top_ids is None else g.top_ids.tolist(),
                   None if g.top_logprobs is None else g.top_logprobs.tolist(), bool(g.stopped), g.new_tokens)

    def generation(self, unit: int) -> Generation:
        from judgelm.inference.hf import Generation

        return Generation(unit=unit, token_ids=self.token_ids, text=self.text, stopped=self.stopped,
                          top_ids=None if self.top_ids is None else np.array(self.top_ids, dtype=np.int32),
                          top_logprobs=None if self.top_logprobs is None else np.array(self.top_logprobs),
                          new_tokens=self.new_tokens)

    def fields(self) -> dict[str, Any]:
        """What a cache file holds for this entry, besides its key (fields that are None are left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_fields(cls, row: dict[str, Any]) -> Entry:
        """The entry a cache file's row holds (its other fields, a key or one a later version adds, ignored)."""
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls) if f.name in row})


@dataclass(frozen=True)
class Unreadable:
    """A cache file that was skipped: where it was (and where it went), why, and how many entries were lost."""

    path: Path
    reason: str
    entries: int
    moved_to: Path | None


_KEY_PREFIX = b'{"key": "'  # every entry line starts so (``json.dumps`` keeps the key first): keys index unparsed
_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)


def _entry_lines(data: bytes) -> int:
    """Entry lines in a file, whole or cut short: what is lost when the file cannot be used."""
    return data.count(b"\n" + _KEY_PREFIX) + data.startswith(_KEY_PREFIX)


class CacheFiles:
    """A directory of immutable, content-addressed JSONL files of ``{"key": <64 hex>, ...}`` rows, each starting
    with a header line ``{kind: version}``; looked up by key. The mechanism under the verdict cache, for any cache
    of generations keyed by sha256 (``kind`` names which)."""

    def __init__(self, root: str | Path, kind: str = "judgelm_verdict_cache", version: int = 1):
        self.root, self.kind, self.version = Path(root), kind, version
        self.header = json.dumps({kind: version}) + "\n"
        self.files: list[Path] = []
        self.unreadable: list[Unreadable] = []
        # One row per indexed entry, sorted by the key's first 64 bits: which file, where its line starts and ends.
        self._prefix = np.zeros(0, np.uint64)
        self._where = np.zeros((0, 3), np.int64)

    @classmethod
    def open(cls, root: str | Path, **kwargs: Any) -> CacheFiles:
        """Index every readable file under ``root`` (none if it does not exist); set aside the unreadable ones."""
        files = cls(root, **kwargs)
        paths = sorted(files.root.glob("*.jsonl"))
        sizes = []
        for path in paths:
            try:
                sizes.append(path.stat().st_size)
            except OSError:
                sizes.append(0)
        buf = bytearray(sum(sizes))  # every file read straight into one buffer: indexed in one pass, no copies
        view, at, spans, headers = memoryview(buf), 0, [], []  # (the index keeps offsets only, not the buffer)
        for path, size in zip(paths, sizes):
            try:
                with open(path, "rb") as f:
                    got = f.readinto(view[at:at + size])
                    whole = got == size and not f.read(1)
            except FileNotFoundError:  # set aside by another reader a moment ago
                continue
            except OSError as e:
                files._skip(path, f"cannot be read ({e.strerror})", 0)
                continue
            data = view[at:at + got]
            header = files._check(path, data if whole else path.read_bytes())
            if header is not None and whole:
                files.files.append(path)
                spans.append((at, at + got))
                headers.append(header)
                at += got  # the next file overwrites what an unreadable one left
        files._index(np.frombuffer(buf, np.uint8, count=at), spans, headers)
        return files

    def _check(self, path: Path, data: bytes | memoryview) -> int | None:
        """The length of a file's header line (0 for files written before headers, version 1), or None when the
        file is unreadable: it fails the checksum its name is, or it is of another version."""
        newline = bytes(data[-1:]) == b"\n"
        if hashlib.sha256(data).hexdigest() != path.stem or (len(data) and not newline):
            why = "empty" if not len(data) else "its content does not match its checksum (overwritten or truncated)"
            self._skip(path, why, _entry_lines(bytes(data)))
            return None
        first = bytes(data[: bytes(data[:4096]).find(b"\n") + 1])
        if not first or first.startswith(_KEY_PREFIX):
            return 0
        try:
            version = json.loads(first).get(self.kind)
        except (ValueError, AttributeError):
            version = None
        if version != self.version:
            self._skip(path, f"not a version-{self.version} {self.kind} file (header {first[:60]!r})",
                       _entry_lines(bytes(data)))
            return None
        return len(first)

    def _skip(self, path: Path, reason: str, entries: int) -> None:
        moved: Path | None = self.root / UNREADABLE_DIR / path.name
        try:
            moved.parent.mkdir(exist_ok=True)
            os.replace(path, moved)
        except FileNotFoundError:
            return  # another reader set it aside first, and said so
        except OSError:
            moved = None  # a cache we may not change: skipped all the same
        self.unreadable.append(Unreadable(path, reason, entries, moved))
        log.warning("verdict cache: %s skipped: %s; %d entries lost (their units are judged again)%s", path, reason,
                    entries, f"; moved to {moved}" if moved else "")

    def _index(self, buf: np.ndarray, spans: list[tuple[int, int]], headers: list[int]) -> None:
        """One pass over all files at once (per-file numpy calls would cost more than the work at 10^4 files)."""
        if not spans:
            return
        file_start = np.array([a for a, _ in spans], dtype=np.int64)
        ends = np.flatnonzero(buf == ord("\n")) + 1  # every file ends with a newline: no line spans two
        starts = np.concatenate([[0], ends[:-1]])
        entry = np.ones(len(starts), dtype=bool)
        entry[np.searchsorted(starts, file_start[np.array(headers) > 0])] = False  # header lines
        entry &= ends - starts > len(_KEY_PREFIX) + 16
        starts, ends = starts[entry], ends[entry]
        hexes = _HEX[buf[starts[:, None] + len(_KEY_PREFIX) + np.arange(16)]]
        # the key's first 16 hex digits as 8 bytes, read as one big-endian 64-bit number
        prefix = ((hexes[:, 0::2] << 4) | hexes[:, 1::2]).view(">u8").ravel().astype(np.uint64)
        file_no = np.searchsorted(file_start, starts, side="right") - 1
        order = np.argsort(prefix)
        self._prefix = prefix[order]
        self._where = np.stack([file_no, starts - file_start[file_no], ends - file_start[file_no]], axis=1)[order]

    def __len__(self) -> int:
        return len(self._prefix)

    def row(self, key: str) -> dict | None:
        """The row stored under ``key``, or None (also when its file has gone since it was indexed)."""
        p = np.uint64(int(key[:16], 16))
        i = int(np.searchsorted(self._prefix, p))
        while i < len(self._prefix) and self._prefix[i] == p:
            file_no, start, end = (int(x) for x in self._where[i])
            try:
                with open(self.files[file_no], "rb") as f:
                    f.seek(start)
                    row = json.loads(f.read(end - start))
            except (OSError, ValueError):
                row = None
            if row is not None and row.get("key") == key:
                return row
            i += 1
        return None

    def write(self, rows: dict[str, dict]) -> Path | None:
        """Write ``rows`` (key: fields) as one new immutable file; returns it (None when there are none)."""
        if not rows:
            return None
        text = self.header + "".join(json.dumps({"key": k, **v}, ensure_ascii=False) + "\n"
                                     for k, v in sorted(rows.items()))
        data = text.encode("utf-8")
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{hashlib.sha256(data).hexdigest()}.jsonl"
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            if e.filename is None:
                e.filename = str(path)
            raise
        return path


@dataclass
class VerdictCache:
    """One judge and decoding setup's view of the cache directory: look up, stage new entries, flush them."""

    root: Path
    fingerprint: str
    decoding: dict[str, Any]
    files: CacheFiles | None = None
    staged: dict[str, Entry] = field(default_factory=dict)
    flushed: dict[str, Entry] = field(default_factory=dict)  # written by this process since it opened the cache
    pending: dict[str, Entry] = field(default_factory=dict)
    """The previous chunk's staged entries, flushed or not: a chunk finds them whether or not that chunk's commit
    (in the background) has ended, so what it asks the engine for does not depend on timing."""

    @classmethod
    def open(cls, root: str | Path, fingerprint: str, decoding: dict[str, Any]) -> VerdictCache:
        """Index every entry in ``root`` (the union of its files; other judges' entries simply never match)."""
        return cls(Path(root), fingerprint, decoding, CacheFiles.open(root))

    @property
    def unreadable(self) -> list[Unreadable]:
        """The files skipped (and set aside) when the cache was opened."""
        return self.files.unreadable if self.files else []

    def __len__(self) -> int:
        """Entries indexed when opened, plus those flushed since."""
        return (len(self.files) if self.files else 0) + len(self.flushed)

    def key(self, token_ids: list[int], prompt: Any = None) -> str:
        return cache_key(self.fingerprint, self.decoding, token_ids, prompt)

    def get(self, key: str) -> Entry | None:
        found = self.staged.get(key) or self.pending.get(key) or self.flushed.get(key)
        if found is None and self.files is not None:
            row = self.files.row(key)
            if row is not None:
                found = Entry.from_fields(row)
        return found

    def stage(self, key: str, entry: Entry) -> None:
        """Remember a new verdict; it is written by ``flush``, after its chunk is committed to the store."""
        self.staged[key] = entry

    def flush(self) -> Path | None:
        """Write the staged entries as one immutable, content-addressed file; returns it (None if none)."""
        files = self.files or CacheFiles(self.root)
        path = files.write({k: e.fields() for k, e in self.staged.items()})
        self.flushed.update(self.staged)
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
    them; the others are generated and staged for the cache, a prompt that occurs several times once. Also returns,
    per unit of the chunk, whether it was taken from the cache (a copy of a prompt generated here included)."""
    keys, out = cache_hits(prep, todo, cache)
    miss = first_of_each([i for i in todo if i not in out], keys)
    gens = engine.generate(*engine_inputs(prep, miss), [prep.prompts[i] for i in miss]) if miss else []
    for i, g in zip(miss, gens):
        out[i] = g
        if cache is not None:
            cache.stage(keys[i], Entry.of(g))
    for i in todo:
        if i not in out:  # the same prompt as a unit generated above
            out[i] = cache.staged[keys[i]].generation(int(prep.unit[i]))
    hit = np.zeros(len(prep.unit), dtype=bool)
    hit[list(set(todo) - set(miss))] = True
    return [out[i] for i in todo], hit


def first_of_each(rows: list[int], keys: dict[int, str]) -> list[int]:
    """``rows`` less those whose cache key an earlier one has (all of them without a cache, whose decoding may
    sample): a data set's duplicate prompts in one chunk are judged once, as they are across chunks."""
    if not keys:
        return rows
    first: dict[str, int] = {}
    for i in rows:
        first.setdefault(keys[i], i)
    return list(first.values())


def cache_keys(prep: Prepared, todo: np.ndarray, cache: VerdictCache | None) -> dict[int, str]:
    """The cache key of each unit of ``todo`` (none without a cache)."""
    return {i: cache.key(prep.ids[i], prep.prompts[i]) for i in todo} if cache is not None else {}


def cache_hits(prep: Prepared, todo: np.ndarray, cache: VerdictCache | None) -> tuple[dict[int, str], dict]:
    """The cache key of each unit of ``todo`` and, for those the cache has, their generation."""
    keys = cache_keys(prep, todo, cache)
    found = {i: cache.get(key) for i, key in keys.items()}
    return keys, {i: entry.generation(int(prep.unit[i])) for i, entry in found.items() if entry is not None}


def engine_inputs(prep: Prepared, rows) -> tuple[list[int], list[list[int]]]:
    """The units and token ids of a chunk's ``rows``, as the engine is asked for them."""
    return [int(prep.unit[i]) for i in rows], [prep.ids[i] for i in rows]


def cache_misses(prep: Prepared, todo: np.ndarray, cache: VerdictCache | None,
                 coming: set[str] = frozenset()) -> tuple[list[int], list[list[int]]]:
    """What ``generate_with_cache`` will ask the engine for: the units of ``todo`` the cache does not have, nor will
    have (``coming``: keys of a chunk being judged)."""
    keys = cache_keys(prep, todo, cache)
    return engine_inputs(prep, first_of_each([i for i in todo if not keys or (keys[i] not in coming
                                                                              and cache.get(keys[i]) is None)], keys))
