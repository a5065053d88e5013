"""Judging engines. Both backends take token ids and return ``Generation``s, so the shard code is shared."""

from __future__ import annotations

from judgelm.inference.config import EngineConfig
from judgelm.models import ModelConfig


def make_engine(model_cfg: ModelConfig, engine_cfg: EngineConfig):
    """The configured backend, with its model loaded."""
    engine_cfg.validate()
    if engine_cfg.backend == "vllm":
        from judgelm.inference.vllm_engine import VLLMEngine
        return VLLMEngine(model_cfg, engine_cfg)
    from judgelm.inference.hf import HFEngine
    from judgelm.models import load_judge
    model, tok, device, _ = load_judge(model_cfg)
    return HFEngine(model, tok, device, engine_cfg)
