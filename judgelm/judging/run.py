"""Creating a judging run: validate the inputs, lay out the units, create the store, save the config.

Everything is decided here, before anything is submitted, so a mistake costs the user one line at the prompt rather
than 64 failed array tasks: the data is loaded and validated once, the mode's rules are checked, and the run
directory either comes out whole or not at all.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from judgelm.config import ConfigError
from judgelm.data.benchmarks import absolute_spec, load_dataset
from judgelm.data.benchmarks.suites import check_mode
from judgelm.data.records import Loaded, write_rejects
from judgelm.inference.config import EngineConfig, adapter_base
from judgelm.judging.config import JudgeConfig
from judgelm.judging.store import VerdictStore, draw_arrays, logprob_arrays, plan_chunks
from judgelm.judging.units import UnitPlan, plan_units, spread_permutation
from judgelm.judging.validate import check_run_inputs, data_notes
from judgelm.profiles import make_profile, store_attrs
from judgelm.profiles.prompts import Mode
from judgelm.rundir import RunDir, new_run

log = logging.getLogger("judgelm.judging.run")

def is_tiny_judge(model_path: str) -> bool:
    """Whether the judge is toy-sized (under 100M parameters by its config), so its metrics carry a warning."""
    try:
        c = json.loads((Path(adapter_base(model_path) or model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    h, n_layers, vocab = c.get("hidden_size", 0), c.get("num_hidden_layers", 0), c.get("vocab_size", 0)
    return 0 < 12 * n_layers * h * h + 2 * vocab * h < 100_000_000


def local_model(path: str) -> str:
    """The judge's local directory: ``path`` itself, or a hub id's snapshot downloaded once, here, so 64 array tasks
    read one copy instead of each downloading it. A path that cannot be a hub id must exist."""
    looks_local = Path(path).is_absolute() or path.startswith(".") or path.count("/") != 1
    if looks_local and not Path(path).exists():
        raise ConfigError(f"model.path={path}: no such directory (give a model directory or a hub id)")
    if Path(path).exists() and not Path(path).is_dir():
        raise ConfigError(f"model.path={path}: is a file; give the model's directory (with config.json)")
    if Path(path).is_dir():
        return str(Path(path).resolve())
    from judgelm.inference.models import resolve_model  # torch, for the hub: not for a local directory
    return str(Path(resolve_model(path)).resolve())


def check_model(path: str, weights: bool = True) -> None:
    """Read the judge's config (when the shards load its ``weights``) and tokenizer once, here, so a wrong
    ``model.path`` is one line at the prompt instead of a Hugging Face traceback in every shard.

    A fast tokenizer (``tokenizer.json``) and the config are read as the files they are, without ``transformers``:
    through it, reading a Llama config imports torch and most of ``transformers`` (seconds of every run's start,
    paid again by the shards). A tokenizer without ``tokenizer.json`` (SentencePiece only) loads through it. A PEFT
    adapter directory has its base's config (and the tokenizer the trainer saved beside the adapter)."""
    root = Path(path)

    def config() -> None:
        cfg = json.loads((Path(adapter_base(path) or path) / "config.json").read_text())
        if not isinstance(cfg, dict) or not isinstance(cfg.get("model_type"), str):
            raise ValueError("config.json has no model_type")

    def tokenizer() -> None:
        if not (root / "tokenizer.json").is_file():
            from judgelm.inference.models import load_tokenizer
            load_tokenizer(path)
            return
        from tokenizers import Tokenizer

        Tokenizer.from_file(str(root / "tokenizer.json"))
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            if (root / name).is_file():
                json.loads((root / name).read_text())

    loaders = (("config", config),) if weights else ()
    for what, load in (*loaders, ("tokenizer", tokenizer)):
        try:
            load()
        except Exception as e:  # a missing file, bad JSON, a tokenizer library error: the first line says which
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"model.path={path}: cannot load its {what}: {first}") from None


def check_shard_python(engine: EngineConfig) -> None:
    """``engine.python``, the shards' interpreter, made an absolute path jobs can start from anywhere."""
    if engine.python:
        if not os.access(engine.python, os.X_OK):
            raise ConfigError(f"engine.python={engine.python} is not an executable Python; for the vllm backend "
                              f"on a CPU machine run `make vllm-env` first")
        engine.python = os.path.abspath(engine.python)


def n_scores_of(mode: Mode, loaded: Loaded) -> int:
    """Scores per verdict: two for a pair, one for single-answer grading, one per answer for N-answer grading."""
    return {Mode.PAIR: 2, Mode.SINGLE: 1}.get(mode) or len(loaded.records[0].answers)


@dataclass
class PlannedRun:
    """A run's records and units, decided but not yet written; ``cfg`` has its final shards and chunk size."""

    cfg: JudgeConfig
    loaded: Loaded
    plan: UnitPlan
    file_index: np.ndarray
    """Each record's place in the data file (``loaded.records`` are spread: ``units.spread_permutation``)."""

    @property
    def n_units(self) -> int:
        return len(self.plan)


def plan_run(cfg: JudgeConfig, loaded: Loaded | None = None) -> PlannedRun:
    """Load (unless given) and validate the data, lay out the units and size the chunks for ``cfg.shards``."""
    cfg.data.source = absolute_spec(cfg.data.source)  # jobs must not depend on the submitter's directory
    check_shard_python(cfg.engine)
    cfg.model.path = local_model(cfg.model.path)
    # Behind a server (engine.backend=openai) model.path only needs to give the judge's tokenizer.
    check_model(cfg.model.path, weights=cfg.engine.backend != "openai")
    mode = Mode(cfg.prompt.mode)
    check_mode(cfg.data.source, mode.value)
    if loaded is None:
        loaded = load_dataset(cfg.data.source, cfg.data.skip_invalid)
    check_run_inputs(cfg, loaded)
    profile = make_profile(cfg.judge)
    profile.check_mode(mode)
    if cfg.data.limit:
        loaded = dataclasses.replace(loaded, records=loaded.records[: cfg.data.limit])
    if cfg.prompt.turns:
        loaded = dataclasses.replace(loaded, records=[r.first_turns(cfg.prompt.turns) for r in loaded.records])
    if not loaded.records:
        raise ConfigError(f"no valid records in {cfg.data.source}")
    profile.check_turns(max(r.n_turns for r in loaded.records))
    file_index = spread_permutation(loaded.records)
    loaded = dataclasses.replace(loaded, records=[loaded.records[i] for i in file_index])
    plan = plan_units(loaded.records, mode, cfg.prompt.reference, cfg.prompt.orders)
    chunk, shards = plan_chunks(len(plan), cfg.shards, cfg.store.chunk_units)
    if shards < cfg.shards:
        log.warning("%d units fill only %d shards, not %d", len(plan), shards, cfg.shards)
    cfg.store.chunk_units, cfg.shards = chunk, shards
    return PlannedRun(cfg, loaded, plan, file_index)


def create_run(planned: PlannedRun, saved_config: str, attrs: dict | None = None) -> RunDir:
    """Write the run directory: logs, rejects, the store (inputs, units, empty verdicts) and ``config.yaml``.

    ``saved_config`` is the YAML every shard and the merge read back (the launcher's, a superset of the library's).
    A failure part-way removes the directory, so a run that exists is always one that can be resumed.
    """
    with new_run(planned.cfg.runs_dir, planned.cfg.run) as rd:
        write_store(rd, planned, attrs or {})
        rd.config.write_text(saved_config)
    return rd


def write_store(rd: RunDir, planned: PlannedRun, attrs: dict) -> None:
    """The rejects and the store of a planned run, in its directory. ``create_run`` calls it; so does the job that
    builds an evaluation's judging run once its models' answers are generated, in the directory its jobs were
    submitted from (``judgelm.generation.evaluation``)."""
    cfg, loaded = planned.cfg, planned.loaded
    if loaded.rejects:
        write_rejects(loaded.rejects, rd.rejects)
        log.warning("skipped %d invalid records (see %s)", len(loaded.rejects), rd.rejects)
    mode = Mode(cfg.prompt.mode)
    VerdictStore.create(rd.store, loaded.records, planned.plan, n_scores_of(mode, loaded), cfg.store.chunk_units,
                        extra_arrays={**logprob_arrays(cfg.engine.new_tokens(), cfg.engine.logprobs_topk),
                                      **draw_arrays(n_scores_of(mode, loaded), cfg.engine.samples,
                                                    cfg.engine.parse_retries)}, attrs={
        "run": cfg.run, "model": cfg.model.path, "data": cfg.data.source, "mode": mode.value,
        "n_shards": cfg.shards, **data_notes(loaded), **store_attrs(cfg.judge),
        "tiny_judge": is_tiny_judge(cfg.model.path), "created": time.time(), "config_hash": cfg.fingerprint(),
        **attrs,
    })
    log.info("run %s: %d records, %d units in %d chunks of %d, %d shards", cfg.run, len(planned.loaded.records),
             planned.n_units, math.ceil(planned.n_units / cfg.store.chunk_units), cfg.store.chunk_units, cfg.shards)


def incomplete_shards(rd: RunDir, n_shards: int) -> list[int]:
    """Shards owning at least one chunk that is not done, decided from the store alone."""
    return VerdictStore(rd.store).incomplete_shards(n_shards)
