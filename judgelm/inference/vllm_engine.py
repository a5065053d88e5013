"""Judging with vLLM on GPU nodes: same interface and same store as the HF engine.

Install on GPU nodes only (``pip install -e .[vllm]``); vLLM's wheels are CUDA builds pinned to their own torch,
so the CPU machines never install it. One engine per array task (``tensor_parallel_size=1``: judging scales by
more tasks, not by splitting a model that fits on one GPU). Prefix caching is on: the two answer orders and
the reference/no-reference variants of a record share the system line and the question.
"""

from __future__ import annotations

import numpy as np

from judgelm.inference.config import EngineConfig
from judgelm.inference.hf import Generation
from judgelm.models import ModelConfig, load_tokenizer


class VLLMEngine:
    def __init__(self, model_cfg: ModelConfig, cfg: EngineConfig):
        try:
            from vllm import LLM
        except ImportError as e:
            raise RuntimeError("engine.backend=vllm needs the vllm extra on a CUDA node: pip install -e .[vllm]") from e
        self.cfg = cfg
        self.max_new = cfg.new_tokens()
        dtype = "auto" if model_cfg.dtype == "auto" else model_cfg.dtype
        self.llm = LLM(model=model_cfg.path, dtype=dtype, enable_prefix_caching=True, seed=cfg.seed,
                       tensor_parallel_size=1)
        # Prompts are tokenized by the shard (the same code as for HF), so both backends see identical ids.
        self.tokenizer = load_tokenizer(model_cfg.path)

    @property
    def context_length(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)

    def _params(self, unit: int):
        from vllm import SamplingParams

        sampling = self.cfg.temperature > 0
        return SamplingParams(
            temperature=self.cfg.temperature, top_k=self.cfg.top_k if sampling and self.cfg.top_k > 0 else -1,
            top_p=self.cfg.top_p if sampling else 1.0, max_tokens=self.max_new,
            stop=["\n"] if self.cfg.mode == "fast" else None, include_stop_str_in_output=True,
            # A seed per unit: a verdict does not depend on what else is in the batch or the shard.
            seed=self.cfg.seed * 1_000_003 + unit if sampling else None,
            logprobs=self.cfg.logprobs_topk or None,
        )

    def generate(self, units: list[int], ids: list[list[int]], prompts: list | None = None) -> list[Generation]:
        """Like ``HFEngine.generate``: the token ids are judged, ``prompts`` are for text-based engines."""
        outs = self.llm.generate([{"prompt_token_ids": x} for x in ids], [self._params(u) for u in units],
                                 use_tqdm=False)
        k = self.cfg.logprobs_topk
        results = []
        for unit, out in zip(units, outs):
            o = out.outputs[0]
            top_ids = top_lp = None
            if k:
                top_ids = np.zeros((self.max_new, k), dtype=np.int32)
                top_lp = np.full((self.max_new, k), np.nan, dtype=np.float32)
                for step, cand in enumerate((o.logprobs or [])[: self.max_new]):
                    best = sorted(cand.items(), key=lambda kv: kv[1].rank)[:k]
                    top_ids[step, : len(best)] = [t for t, _ in best]
                    top_lp[step, : len(best)] = [lp.logprob for _, lp in best]
            results.append(Generation(unit=unit, token_ids=list(o.token_ids), text=o.text,
                                      stopped=o.finish_reason == "stop", top_ids=top_ids, top_logprobs=top_lp))
        return results
