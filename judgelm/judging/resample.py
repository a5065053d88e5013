"""Draws beyond a unit's primary verdict: extra samples (``engine.samples``) and re-asks after a parse failure
(``engine.parse_retries``), stored in the arrays ``store.draw_arrays`` declares.

Every draw has its own sampling stream. The engines key their per-unit noise by the id they are given, so a draw
is passed ``unit + stream * n_units`` instead of the unit: stream 0 is the primary verdict (the unit id itself, as
before), streams 1..k-1 the extra samples, streams k..k+R-1 the re-asks. Keys are distinct for every (unit,
stream) of a run and depend on nothing else, so a draw is the same in any batch, shard or resumed attempt.

Re-asks follow the primary verdict only: a unit is asked again only while no attempt has parsed, and the first
attempt that parses ends it. Extra samples are never re-asked (the merge's ``first_parseable`` policy covers them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from judgelm.data.verdicts import Status
from judgelm.inference.config import EngineConfig
from judgelm.judging.store import NOT_ASKED

Parse = Callable[[str, int], "tuple[float, ...] | None"]
_KEY_LIMIT = 1 << 31  # the engines hash 31-bit keys; beyond it two draws could share noise


@dataclass(frozen=True)
class ChunkDraws:
    """The judged rows of one chunk: their positions in the chunk, unit ids, prompts, and the chunk's size."""

    rows: np.ndarray
    units: np.ndarray
    prompts: list[list[int]]
    size: int


def noise_key(unit: int, stream: int, n_units: int) -> int:
    """The id a draw is sampled under: ``unit`` itself for stream 0, a distinct id for every other stream."""
    key = unit + stream * n_units
    if key >= _KEY_LIMIT:
        raise ValueError(f"{n_units} units × {stream + 1} draws exceed the 2**31 sampling keys; judge fewer units "
                         f"per run or draw fewer samples")
    return key


@contextmanager
def sampling_at(engine, temperature: float) -> Iterator[None]:
    """Let ``engine`` (either backend: both read ``engine.cfg`` per call) sample at ``temperature`` for a while."""
    saved = engine.cfg
    engine.cfg = dataclasses.replace(saved, temperature=temperature)
    try:
        yield
    finally:
        engine.cfg = saved


def _draw(engine, units: np.ndarray, prompts: list[list[int]], stream: int, n_units: int) -> list[str]:
    keys = [noise_key(int(u), stream, n_units) for u in units]
    return [g.text for g in engine.generate(keys, prompts)] if keys else []


def _arrays(size: int, k: int, n_scores: int) -> dict[str, np.ndarray]:
    return {"scores": np.full((size, k, n_scores), np.nan, dtype=np.float32),
            "status": np.full((size, k), NOT_ASKED, dtype=np.int8), "text": np.full((size, k), "", dtype=object)}


def _record(out: dict[str, np.ndarray], rows: np.ndarray, col: int, texts: list[str], n_scores: int,
            parse: Parse) -> np.ndarray:
    """Store ``texts`` as attempt ``col`` of ``rows``; returns which of them parsed."""
    ok = np.zeros(len(rows), dtype=bool)
    for j, (r, text) in enumerate(zip(rows, texts)):
        parsed = parse(text, n_scores)
        out["text"][r, col] = text
        out["status"][r, col] = Status.PARSE_FAILED if parsed is None else Status.OK
        if parsed is not None:
            out["scores"][r, col], ok[j] = parsed, True
    return ok


def extra_draws(engine, cfg: EngineConfig, chunk: ChunkDraws, primary_text: list[str], n_scores: int, n_units: int,
                parse: Parse) -> dict[str, np.ndarray]:
    """The ``sample_*`` and ``retry_*`` arrays of one chunk (only those the config asks for), indexed by chunk row.

    ``primary_text`` holds every chunk row's primary verdict text; samples 1..k-1 are drawn at the engine's
    temperature, re-asks at ``cfg.retry_temperature`` and only for rows none of whose attempts has parsed yet.
    """
    out: dict[str, np.ndarray] = {}
    k, retries = cfg.samples, cfg.parse_retries
    primary = [primary_text[r] for r in chunk.rows]
    if k > 1:
        samples = _arrays(chunk.size, k, n_scores)
        _record(samples, chunk.rows, 0, primary, n_scores, parse)
        for s in range(1, k):
            _record(samples, chunk.rows, s, _draw(engine, chunk.units, chunk.prompts, s, n_units), n_scores, parse)
        out.update({f"sample_{name}": arr for name, arr in samples.items()})
    if retries:
        tries = _arrays(chunk.size, retries, n_scores)
        failing = np.array([parse(t, n_scores) is None for t in primary], dtype=bool)
        with sampling_at(engine, cfg.retry_temperature):
            for r in range(retries):
                idx = np.flatnonzero(failing)
                if not len(idx):
                    break
                texts = _draw(engine, chunk.units[idx], [chunk.prompts[i] for i in idx], k + r, n_units)
                failing[idx[_record(tries, chunk.rows[idx], r, texts, n_scores, parse)]] = False
        out.update({f"retry_{name}": arr for name, arr in tries.items()})
    return out
