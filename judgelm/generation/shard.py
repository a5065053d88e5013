"""One shard of a generation run: answer the chunks it owns that are not done yet, committing each chunk whole.

The loop is judging's (``judgelm.judging.shard.run_chunks``): a killed, cancelled or requeued shard resumes at its
first uncommitted chunk, a stop request is honoured between chunks, and progress and server usage are written
after every chunk. A chunk's inputs are read while the engine answers the chunk before, and its answers committed
while it answers the next.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from judgelm.generation.answer_cache import AnswerCache, open_answer_cache
from judgelm.generation.config import load_generation_config
from judgelm.generation.generate import answer_chunk
from judgelm.generation.run import turn_settings
from judgelm.generation.store import AnswerStore, ChunkAnswers
from judgelm.judging.phases import PhaseTimer
from judgelm.judging.preemption import StopRequest
from judgelm.judging.progress import ShardResult
from judgelm.judging.shard import Started, chunk_cache, run_chunks, set_threads
from judgelm.rundir import RunDir


def run_shard(run_dir: str | Path, shard: int, n_shards: int, stop: StopRequest | None = None,
              job_id: str = "", threads: int = 0) -> ShardResult:
    """Generate shard ``shard`` of ``n_shards`` of the run in ``run_dir``; ``threads`` overrides the config's."""
    from judgelm.inference import make_engine

    rd = RunDir(Path(run_dir))
    cfg = load_generation_config(rd.root)
    store = AnswerStore(rd.answer_store, mode="r+")

    def start(timer: PhaseTimer) -> Started:
        with timer("model"):
            set_threads(threads or cfg.engine.threads)
            engine = make_engine(cfg.model, cfg.engine)
        with timer("cache"):
            cache, settings = open_answer_cache(cfg), turn_settings(cfg)

        def compute(c: int, inputs: dict) -> tuple[ChunkAnswers, AnswerCache | None]:
            mine = None if cache is None else dataclasses.replace(cache, cache=chunk_cache(cache.cache))
            return answer_chunk(inputs, store.n_turns, engine, settings, mine), mine

        def write(c: int, computed: tuple[ChunkAnswers, AnswerCache | None], attempt: int) -> None:
            answers, mine = computed
            store.write_chunk(c, answers, attempt)
            if mine is not None:  # only answers of a committed chunk enter the cache
                mine.flush()
        return Started(engine, compute, write, cache.cache if cache is not None else None, store.chunk_inputs)

    return run_chunks(rd.root, store, shard, n_shards, rd.shard_progress(shard), start, stop, job_id)
