"""Judging engines. Every backend takes token ids (and the rendered prompts) and returns ``Generation``s, so the
shard code is shared. ``BACKENDS`` is the one table of them, read by ``make_engine`` and ``EngineConfig.validate``."""

from __future__ import annotations

from collections.abc import Callable

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


def make_engine(model_cfg: ModelConfig, engine_cfg: EngineConfig):
    """The configured backend, with its model loaded (or its server found)."""
    engine_cfg.validate()
    return BACKENDS[engine_cfg.backend](model_cfg, engine_cfg)
