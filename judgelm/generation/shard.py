"""One shard of a generation run: answer the chunks it owns that are not done yet, committing each chunk whole.

The loop is judging's (``judgelm.judging.shard.run_chunks``): a killed, cancelled or requeued shard resumes at its
first uncommitted chunk, a stop request is honoured between chunks, and progress and server usage are written
after every chunk.
"""

from __future__ import annotations

from pathlib import Path

from judgelm.generation.answer_cache import open_answer_cache
from judgelm.generation.config import load_generation_config
from judgelm.generation.generate import answer_chunk
from judgelm.generation.run import turn_settings
from judgelm.generation.store import AnswerStore
from judgelm.judging.preemption import StopRequest
from judgelm.judging.shard import ShardResult, Started, run_chunks, set_threads
from judgelm.rundir import RunDir


def run_shard(run_dir: str | Path, shard: int, n_shards: int, stop: StopRequest | None = None,
              job_id: str = "", threads: int = 0) -> ShardResult:
    """Generate shard ``shard`` of ``n_shards`` of the run in ``run_dir``; ``threads`` overrides the config's."""
    from judgelm.inference import make_engine

    rd = RunDir(Path(run_dir))
    cfg = load_generation_config(rd.root)
    store = AnswerStore(rd.answer_store, mode="r+")

    def start() -> Started:
        set_threads(threads or cfg.engine.threads)
        engine = make_engine(cfg.model, cfg.engine)
        cache, settings = open_answer_cache(cfg), turn_settings(cfg)

        def commit(c: int, attempt: int) -> None:
            store.write_chunk(c, answer_chunk(store.chunk_inputs(c), store.n_turns, engine, settings, cache), attempt)
            if cache is not None:  # only answers of a committed chunk enter the cache
                cache.flush()
        return Started(engine, commit, cache.cache if cache is not None else None)

    return run_chunks(rd.root, store, shard, n_shards, rd.shard_progress(shard), start, stop, job_id)
