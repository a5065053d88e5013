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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from judgelm.data.verdicts import Status
from judgelm.inference import make_engine
from judgelm.inference.prepare import Prepared, prepare_chunk
from judgelm.inference.usage import write_usage
from judgelm.judging.config import JudgeConfig, load_run_config
from judgelm.judging.panel import panel_member
from judgelm.judging.phases import PhaseTimer, startup_once
from judgelm.judging.preemption import StopRequest
from judgelm.judging.progress import ShardProgress, ShardResult, read_progress, write_progress
from judgelm.judging.resample import ChunkDraws, extra_draws
from judgelm.judging.store import TOP_IDS, TOP_LOGPROBS, ChunkLayout, ChunkVerdicts, VerdictStore
from judgelm.judging.verdict_cache import VerdictCache, cache_keys, cache_misses, generate_with_cache, open_cache
from judgelm.profiles import make_profile
from judgelm.profiles.prompts import Mode
from judgelm.rundir import RunDir, environment_fault

log = logging.getLogger("judgelm.judging.shard")

_prepared_ahead: dict[tuple[str, int], Future] = {}
"""(whose chunk, chunk) -> its preparation, started by the shard this process ran before, while its last chunk was
computed: a local worker runs its shards one after the other, and each shard's first chunk would otherwise be
tokenized with the engine idle."""


def set_threads(cfg_threads: int) -> None:
    n = cfg_threads or int(os.environ.get("SLURM_CPUS_PER_TASK", 0)) or os.cpu_count() or 1
    torch.set_num_threads(max(1, n))


def prepare_prompts(store: VerdictStore, chunk: int, engine, cfg: JudgeConfig) -> Prepared:
    """One chunk's prompts, rendered and tokenized (run in the background while the engine judges the chunk before)."""
    mode = Mode(cfg.prompt.mode)
    limit = cfg.engine.max_prompt_tokens or engine.context_length - cfg.engine.new_tokens()
    profile = make_profile(cfg.judge)
    profile.check_mode(mode)
    return prepare_chunk(store.chunk_inputs(chunk), engine.tokenizer, mode, limit, cfg.engine.too_long, profile)


def to_judge(prep: Prepared) -> np.ndarray:
    """The units of a prepared chunk the judge is asked about: those whose prompt fits."""
    return np.flatnonzero(~prep.rejected)


def judge_chunk(store: VerdictStore, prep: Prepared, engine, cfg: JudgeConfig,
                cache: VerdictCache | None = None) -> ChunkVerdicts:
    mode = Mode(cfg.prompt.mode)
    profile = make_profile(cfg.judge)
    n = len(prep.unit)
    scores = np.full((n, store.n_scores), np.nan, dtype=np.float32)
    status = np.full(n, Status.PROMPT_TOO_LONG, dtype=np.int8)
    texts = [""] * n
    new_tokens = np.zeros(n, dtype=np.int32)
    extras = store.empty_extras(n)
    todo = to_judge(prep)
    gens, cached = generate_with_cache(engine, prep, todo, cache)
    for i, g in zip(todo, gens):
        texts[i] = g.text
        new_tokens[i] = g.n_new
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
    """What a shard's ``start(timer)`` loaded: its engine, the work of one chunk in three steps, the cache it reads.

    ``prepare(c)`` reads and readies chunk ``c``'s inputs (prompts rendered and tokenized) in a background thread
    while the engine works on the chunk before; ``compute(c, prepared)`` is the engine's work, on the shard's
    thread; ``write(c, computed, attempt)`` commits the chunk whole (its arrays, ``done`` last, then the cache
    entries it made) in another background thread while the engine goes on with the next chunk. Before a chunk's
    ``compute``, ``expect(prepared, following)`` gives the engine that chunk's preparation and the next one's (a
    future), whose work the engine may queue while the chunk's last batches end."""

    engine: object
    compute: Callable[[int, object], object]
    write: Callable[[int, object, int], None]
    cache: VerdictCache | None = None
    prepare: Callable[[int], object] = lambda c: c
    expect: Callable[[object, Future], None] = lambda current, following: None


def chunk_cache(cache: VerdictCache | None, previous: VerdictCache | None = None) -> VerdictCache | None:
    """A view of ``cache`` whose staged entries are one chunk's: the chunk being committed flushes its own entries
    while the next chunk stages its own. It finds the ``previous`` chunk's entries too, flushed or not."""
    return None if cache is None else dataclasses.replace(cache, staged={},
                                                          pending=previous.staged if previous is not None else {})


def run_shard(run_dir: str | Path, shard: int, n_shards: int, stop: StopRequest | None = None,
              job_id: str = "", threads: int = 0, judge: str = "", then: int | None = None) -> ShardResult:
    """Judge shard ``shard`` of ``n_shards`` of the run in ``run_dir``; ``threads`` overrides the config's.
    ``judge`` names a panel judge (``judgelm.judging.panel``): its model judges and its verdict arrays are filled.
    ``then``: the shard this process runs next, whose first chunk to do is prepared during this shard's last."""
    rd = RunDir(Path(run_dir))
    cfg = load_run_config(rd.root)
    store = VerdictStore(rd.store, mode="r+")
    if judge:
        store, cfg = panel_member(store, cfg, judge)

    def start(timer: PhaseTimer) -> Started:
        with timer("model"):
            set_threads(threads or cfg.engine.threads)
            engine = load_engine(cfg)
        with timer("cache"):
            cache = open_cache(rd.root.parent, cfg)

        views: list[VerdictCache | None] = [None]  # the last chunk's view of the cache

        def compute(c: int, prep: Prepared) -> tuple[ChunkVerdicts, VerdictCache | None]:
            mine = views[0] = chunk_cache(cache, views[0])
            return judge_chunk(store, prep, engine, cfg, mine), mine

        def write(c: int, computed: tuple[ChunkVerdicts, VerdictCache | None], attempt: int) -> None:
            verdicts, mine = computed
            store.write_chunk(c, verdicts, attempt)
            if mine is not None:  # only verdicts of a committed chunk enter the cache
                mine.flush()

        def expect(current: Prepared, following: Future) -> None:
            """The engine asks, while judging ``current``, for the next chunk's units the cache will not have."""
            if not hasattr(engine, "expect"):
                return
            view = chunk_cache(cache, views[0])  # what the next chunk will see but the one being judged stages
            coming = set(cache_keys(current, to_judge(current), cache).values())

            def misses() -> tuple[list[int], list[list[int]]]:
                prep = following.result()
                return cache_misses(prep, to_judge(prep), view, coming)
            engine.expect(misses)
        return Started(engine, compute, write, cache, lambda c: prepare_prompts(store, c, engine, cfg), expect)

    ahead = [] if then is None else [c for c in store.shard_chunks(then, n_shards) if not store.chunk_done(c)][:1]
    return run_chunks(rd.root, store, shard, n_shards, rd.shard_progress(shard, judge), start, stop, job_id,
                      (f"{rd.root}:{judge}", ahead))


def run_chunks(run_root: Path, store: ChunkLayout, shard: int, n_shards: int, progress_path: Path,
               start: Callable[[PhaseTimer], Started], stop: StopRequest | None = None,
               job_id: str = "", ahead: tuple[str, list[int]] = ("", [])) -> ShardResult:
    """The loop every shard runs over the chunks it owns that are not done yet, whatever it computes.

    ``start(timer)`` loads what the work needs (only when there is work; ``timer`` takes its phases): the engine,
    the three steps of a chunk (``Started``) and the cache it opened, whose unreadable files the attempt counts.
    The engine computes chunk c while chunk c + 1 is prepared and chunk c - 1 committed, each chunk still committed
    whole and in order. Between chunks the loop honours ``stop``, keeps the shard's progress file (with its phase
    times, ``judgelm.judging.phases``) and, for server engines, the attempt's usage file. ``ahead``: whose chunks
    ``prepare`` makes (any key that names the run and what prepares them) and a chunk of the shard this process
    runs next, prepared during the last one here and kept for it.
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
    timer = PhaseTimer(startup_once())
    started: Started | None = None

    def commit(c: int, computed: object) -> None:
        started.write(c, computed, attempt.attempt)
        attempt.units_judged += size(c)
        attempt.chunks_judged += 1
        attempt.updated = time.time()
        attempt.phases = dict(timer.seconds)  # a copy (atomic): the main thread goes on adding to them
        progress.units_done += size(c)
        write_progress(progress_path, progress)
        if hasattr(started.engine, "usage"):  # server engines report tokens and cost per attempt
            write_usage(run_root, shard, attempt.attempt, started.engine.usage)
        left = progress.units_total - progress.units_done
        rate = progress.rate
        log.info("shard %d: chunk %d done, %d/%d units, %.1f units/s, ETA %.0f s", shard, c,
                 progress.units_done, progress.units_total, rate, left / rate if rate > 0 else float("nan"))

    try:
        if todo:
            started = start(timer)
            if getattr(started.engine, "runtime", None) is not None:
                attempt.runtime = dataclasses.asdict(started.engine.runtime)
                log.info("model loaded with %s", attempt.runtime)
            if started.cache is not None and started.cache.unreadable:  # counted in the run's summary
                attempt.cache_unreadable = [f"{u.path.name}:{u.entries}" for u in started.cache.unreadable]
        with ThreadPoolExecutor(1, "prepare") as preparing, ThreadPoolExecutor(1, "commit") as committing:
            nxt, committed = None, None
            for i, c in enumerate(todo):
                # The requeue signal stops the shard after its chunk; one that came while it was starting still
                # lets it commit one chunk, or a start-up longer than the signal's lead over the time limit would
                # requeue forever without progress.
                if stop() and (i or stop.signum != signal.SIGUSR2):
                    break
                with timer("tokenize"):
                    prepared = (nxt or _prepared_ahead.pop((ahead[0], c), None)
                                or preparing.submit(started.prepare, c)).result()
                nxt = preparing.submit(started.prepare, todo[i + 1]) if i + 1 < len(todo) else None
                following = nxt
                if nxt is None and ahead[1]:
                    following = _prepared_ahead[(ahead[0], ahead[1][0])] = preparing.submit(started.prepare,
                                                                                            ahead[1][0])
                if following is not None:
                    started.expect(prepared, following)
                with timer("engine"):
                    computed = started.compute(c, prepared)
                with timer("store"):
                    if committed is not None:
                        committed.result()
                committed = committing.submit(commit, c, computed)
            with timer("store"):
                if committed is not None:
                    committed.result()
    except BaseException as e:
        attempt.state, attempt.updated, attempt.phases = "failed", time.time(), timer.seconds
        attempt.error = environment_fault(e) or f"{type(e).__name__}: {str(e).strip()[:200]}"
        try:
            write_progress(progress_path, progress)
        except OSError:  # the disk that failed the chunk may fail this too; the failure itself is what matters
            pass
        raise
    finally:
        log.info("%s", timer.line(f"shard {shard}"))
    interrupted = progress.units_done < progress.units_total
    attempt.state = "interrupted" if interrupted else "finished"
    attempt.updated, attempt.phases = time.time(), timer.seconds
    write_progress(progress_path, progress)
    return ShardResult(shard, progress.units_total, progress.units_done, attempt.units_judged, interrupted, stop.signum)
