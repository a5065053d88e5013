"""Judging engines. Every backend takes token ids (and the rendered prompts) and returns ``Generation``s, so the
shard code is shared. ``BACKENDS`` is the one table of them, read by ``make_engine`` and ``EngineConfig.validate``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict

from judgelm.inference.config import EngineConfig, ModelConfig


def _hf(model_cfg: ModelConfig, engine_cfg: EngineConfig):
    from judgelm.inference.hf import HFEngine
    from judgelm.inference.models import load_judge
    judge = load_judge(model_cfg)
    engine = HFEngine(judge.model, judge.tokenizer, judge.device, engine_cfg)
    engine.runtime = judge.runtime  # recorded by the shard: what the judge really ran with (dtype, attention)
    return engine


def _vllm(model_cfg: ModelConfig, engine_cfg: EngineConfig):
    from judgelm.inference.vllm_engine import VLLMEngine
    return VLLMEngine(model_cfg, engine_cfg)


def _openai(model_cfg: ModelConfig, engine_cfg: EngineConfig):
    from judgelm.inference.openai_engine import OpenAIEngine
    return OpenAIEngine(model_cfg, engine_cfg)


BACKENDS: dict[str, Callable] = {"hf": _hf, "vllm": _vllm, "openai": _openai}
IN_PROCESS = ("hf", "vllm")  # backends that hold the model in this process; a server engine also counts usage
_loaded: dict[str, object] = {}  # the last in-process engine made, by its settings


def make_engine(model_cfg: ModelConfig, engine_cfg: EngineConfig):
    """The configured backend, with its model loaded (or its server found). An in-process model is loaded once per
    process: a worker that runs several shards of a run one after the other asks again with the same settings."""
    engine_cfg.validate()
    if engine_cfg.backend not in IN_PROCESS:
        return BACKENDS[engine_cfg.backend](model_cfg, engine_cfg)
    key = json.dumps([asdict(model_cfg), asdict(engine_cfg)], sort_keys=True)
    if key not in _loaded:
        _loaded.clear()  # one model at a time: a panel judge's shards load theirs in place of the run's
        _loaded[key] = BACKENDS[engine_cfg.backend](model_cfg, engine_cfg)
    return _loaded[key]
