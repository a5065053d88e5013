"""One shard of a judging run: judge the chunks it owns that are not done yet, committing each chunk whole.
``run_chunks`` is that loop for any store laid out in chunks (answer generation runs it too).

Running a shard again is always safe: finished chunks are skipped, so a killed, cancelled or requeued shard
resumes where it stopped and never judges a committed unit twice. A stop request (the requeue signal) is
honoured between chunks, so the work in flight is not thrown away, and not before the attempt's first chunk, so
every attempt makes progress.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from judgelm.data.verdicts import Status
from judgelm.inference import make_engine
from judgelm.inference.prepare import prepare_chunk
from judgelm.inference.usage import write_usage
from judgelm.judging.config import JudgeConfig, load_run_config
from judgelm.judging.panel import panel_member
from judgelm.judging.preemption import StopRequest
from judgelm.judging.progress import ShardProgress, read_progress, write_progress
from judgelm.judging.resample import ChunkDraws, extra_draws
from judgelm.judging.store import TOP_IDS, TOP_LOGPROBS, ChunkLayout, ChunkVerdicts, VerdictStore
from judgelm.judging.verdict_cache import VerdictCache, generate_with_cache, open_cache
from judgelm.profiles import make_profile
from judgelm.profiles.prompts import Mode
from judgelm.rundir import RunDir, environment_fault

log = logging.getLogger("judgelm.judging.shard")


@dataclass
class ShardResult:
    shard: int
    units_total: int
    units_done: int
    units_judged: int  # by this attempt
    interrupted: bool
    signum: int | None = None


def set_threads(cfg_threads: int) -> None:
    n = cfg_threads or int(os.environ.get("SLURM_CPUS_PER_TASK", 0)) or os.cpu_count() or 1
    torch.set_num_threads(max(1, n))


def judge_chunk(store: VerdictStore, chunk: int, engine, cfg: JudgeConfig,
                cache: VerdictCache | None = None) -> ChunkVerdicts:
    mode = Mode(cfg.prompt.mode)
    max_new = cfg.engine.new_tokens()
    limit = cfg.engine.max_prompt_tokens or engine.context_length - max_new
    profile = make_profile(cfg.judge)
    profile.check_mode(mode)
    prep = prepare_chunk(store.chunk_inputs(chunk), engine.tokenizer, mode, limit, cfg.engine.too_long, profile)
    n = len(prep.unit)
    scores = np.full((n, store.n_scores), np.nan, dtype=np.float32)
    status = np.full(n, Status.PROMPT_TOO_LONG, dtype=np.int8)
    texts = [""] * n
    new_tokens = np.zeros(n, dtype=np.int32)
    extras = store.empty_extras(n)
    todo = np.flatnonzero(~prep.rejected)
    gens, cached = generate_with_cache(engine, prep, todo, cache)
    for i, g in zip(todo, gens):
        texts[i] = g.text
        new_tokens[i] = len(g.token_ids)
        parsed = profile.parse(g.text, mode, store.n_scores)
        if parsed is None:
            status[i] = Status.PARSE_FAILED
        else:
            status[i], scores[i] = Status.OK, parsed
        if TOP_IDS in extras and g.top_ids is not None:
            extras[TOP_IDS][i], extras[TOP_LOGPROBS][i] = g.top_ids, g.top_logprobs
    draws = ChunkDraws(todo, prep.unit[todo], [prep.ids[i] for i in todo], n)
    extras = {**extras, **extra_draws(engine, cfg.engine, draws, texts, store.n_scores, store.n_units,
                                      lambda text, n_scores: profile.parse(text, mode, n_scores))}
    return ChunkVerdicts(scores=scores, status=status, text=texts,
                         prompt_tokens=np.array([len(x) for x in prep.ids], dtype=np.int32),
                         new_tokens=new_tokens, truncated=prep.truncated, extras=extras or None, cached=cached)


def load_engine(cfg: JudgeConfig):
    """The judge's engine. A model directory that lost its files since the run was created (``model.path`` is
    always a local directory by then) is named as such: a vanished file is the environment's doing."""
    try:
        return make_engine(cfg.model, cfg.engine)
    except OSError as e:
        path = Path(cfg.model.path)
        has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
        gone = next((p for p in (path, path / "config.json") if not p.exists()), None if has_weights else path)
        if gone is not None:
            what = "the judge's model directory holds no weights" if gone == path and path.exists() else \
                "the judge's model file is gone"
            raise FileNotFoundError(errno.ENOENT, what, str(gone)) from e
        raise


@dataclass
class Started:
    """What a shard's ``start()`` loaded: its engine, the commit of one chunk, the cache it reads (or None)."""

    engine: object
    commit: Callable[[int, int], None]
    cache: VerdictCache | None = None


def run_shard(run_dir: str | Path, shard: int, n_shards: int, stop: StopRequest | None = None,
              job_id: str = "", threads: int = 0, judge: str = "") -> ShardResult:
    """Judge shard ``shard`` of ``n_shards`` of the run in ``run_dir``; ``threads`` overrides the config's.
    ``judge`` names a panel judge (``judgelm.judging.panel``): its model judges and its verdict arrays are filled."""
    rd = RunDir(Path(run_dir))
    cfg = load_run_config(rd.root)
    store = VerdictStore(rd.store, mode="r+")
    if judge:
        store, cfg = panel_member(store, cfg, judge)

    def start() -> Started:
        set_threads(threads or cfg.engine.threads)
        engine = load_engine(cfg)
        cache = open_cache(rd.root.parent, cfg)

        def commit(c: int, attempt: int) -> None:
            store.write_chunk(c, judge_chunk(store, c, engine, cfg, cache), attempt)
            if cache is not None:  # only verdicts of a committed chunk enter the cache
                cache.flush()
        return Started(engine, commit, cache)

    return run_chunks(rd.root, store, shard, n_shards, rd.shard_progress(shard, judge), start, stop, job_id)


def run_chunks(run_root: Path, store: ChunkLayout, shard: int, n_shards: int, progress_path: Path,
               start: Callable[[], Started], stop: StopRequest | None = None,
               job_id: str = "") -> ShardResult:
    """The loop every shard runs over the chunks it owns that are not done yet, whatever it computes.

    ``start()`` loads what the work needs (only when there is work): the engine, ``commit(chunk, attempt)``, which
    computes one chunk and writes it to the store whole, and the cache it opened, whose unreadable files the attempt
    counts. Between chunks the loop honours
    ``stop``, keeps the shard's progress file and, for server engines, the attempt's usage file.
    """
    chunks = store.shard_chunks(shard, n_shards)
    todo = [c for c in chunks if not store.chunk_done(c)]

    def size(c: int) -> int:
        sl = store.chunk_slice(c)
        return sl.stop - sl.start

    progress = read_progress(progress_path) or ShardProgress(shard, store.shard_units(shard, n_shards))
    progress.units_done = progress.units_total - sum(size(c) for c in todo)
    attempt = progress.start_attempt(job_id or os.environ.get("SLURM_JOB_ID", str(os.getpid())))
    write_progress(progress_path, progress)
    log.info("shard %d/%d: %d chunks, %d to do (%d of %d units done), attempt %d, code %s", shard, n_shards,
             len(chunks), len(todo), progress.units_done, progress.units_total, attempt.attempt,
             Path(__file__).resolve().parent)
    stop = stop or StopRequest()
    try:
        if todo:
            started = start()
            engine, commit = started.engine, started.commit
            if getattr(engine, "runtime", None) is not None:
                attempt.runtime = dataclasses.asdict(engine.runtime)
                log.info("model loaded with %s", attempt.runtime)
            cache = started.cache
            if cache is not None and cache.unreadable:  # counted in the run's summary
                attempt.cache_unreadable = [f"{u.path.name}:{u.entries}" for u in cache.unreadable]
        for c in todo:
            # The requeue signal stops the shard after its chunk; one that came while it was starting still lets it
            # commit one chunk, or a start-up longer than the signal's lead over the time limit would requeue
            # forever without progress.
            if stop() and (attempt.chunks_judged or stop.signum != signal.SIGUSR2):
                break
            commit(c, attempt.attempt)
            attempt.units_judged += size(c)
            attempt.chunks_judged += 1
            attempt.updated = time.time()
            progress.units_done += size(c)
            write_progress(progress_path, progress)
            if hasattr(engine, "usage"):  # server engines report tokens and cost per attempt
                write_usage(run_root, shard, attempt.attempt, engine.usage)
            left = progress.units_total - progress.units_done
            rate = progress.rate
            log.info("shard %d: chunk %d done, %d/%d units, %.1f units/s, ETA %.0f s", shard, c,
                     progress.units_done, progress.units_total, rate, left / rate if rate > 0 else float("nan"))
    except BaseException as e:
        attempt.state, attempt.updated = "failed", time.time()
        attempt.error = environment_fault(e) or f"{type(e).__name__}: {str(e).strip()[:200]}"
        try:
            write_progress(progress_path, progress)
        except OSError:  # the disk that failed the chunk may fail this too; the failure itself is what matters
            pass
        raise
    interrupted = progress.units_done < progress.units_total
    attempt.state = "interrupted" if interrupted else "finished"
    attempt.updated = time.time()
    write_progress(progress_path, progress)
    return ShardResult(shard, progress.units_total, progress.units_done, attempt.units_judged, interrupted, stop.signum)
