"""Settings of the judging engine."""

from __future__ import annotations

from dataclasses import dataclass

FAST_MAX_NEW_TOKENS = 16
FULL_MAX_NEW_TOKENS = 512


@dataclass
class EngineConfig:
    """How judgements are generated."""

    backend: str = "hf"
    """``hf`` (transformers, any device) or ``vllm`` (the ``vllm`` extra on GPU nodes; ``make vllm-env`` and
    ``python`` below on a CPU machine)."""
    mode: str = "fast"
    """``fast`` stops each row at the end of the score line (JudgeLM's ``--if-fast-eval 1``, used for all its
    metrics); ``full`` also generates the explanation."""
    max_new_tokens: int = 0
    """Generation limit per unit; 0 picks 16 in fast mode and 512 in full mode (JudgeLM's default is 2048)."""
    temperature: float = 0.0
    """0 is greedy. JudgeLM's scripts sample at 0.2 with top-k 50; sampling here is seeded per unit, so a
    verdict does not depend on which batch or shard it ran in."""
    top_k: int = 50
    """Top-k filter when sampling (transformers' default, which JudgeLM's runs used)."""
    top_p: float = 1.0
    """Nucleus filter when sampling."""
    seed: int = 0
    """Seed of the per-unit sampling noise."""
    batch_tokens: int = 65536
    """Token budget of one batch: rows × (longest prompt + max_new_tokens). Bounds the memory a batch needs."""
    max_batch: int = 64
    """At most this many rows per batch."""
    max_padding: float = 0.05
    """At most this share of a batch's prompt positions may be padding (each costs a full forward position);
    lower means more, narrower batches."""
    max_prompt_tokens: int = 0
    """Longest prompt accepted; 0 means the model's context length minus max_new_tokens."""
    too_long: str = "truncate"
    """What to do with a longer prompt: ``truncate`` cuts the answers and reference from their ends, longest
    first, until it fits (the question and template are never cut), or ``reject`` skips the unit. Both are
    counted in the merge."""
    threads: int = 0
    """CPU threads for torch; 0 takes SLURM_CPUS_PER_TASK or this machine's cores divided among local shards."""
    logprobs_topk: int = 0
    """If > 0, store the top-k log-probabilities at each of the first generated positions (fast mode), from
    which the merge derives an expected score and a confidence per verdict."""

    prefix_sharing: bool = True
    """Compute a prompt prefix shared by several units once (the question, and in model evaluation the baseline
    answer too): HF groups such rows in one prefill, vLLM keeps its prefix cache on."""
    python: str = ""
    """The Python the shards run with; empty: the one that submits. vLLM's CPU build needs a transformers older
    than this project's, so on a CPU machine ``backend=vllm`` goes with ``python=.venv-vllm/bin/python``
    (made by ``make vllm-env``)."""
    tensor_parallel_size: int = 1
    """vLLM: GPUs one model replica is split across (a judge larger than one GPU)."""
    gpu_memory_utilization: float = 0.0
    """vLLM: share of the GPU's memory it may take (on a CPU: of host RAM, for its KV cache); 0 picks 0.9 on a
    GPU and 0.1 on a CPU, where the memory is shared with everything else."""

    def new_tokens(self) -> int:
        if self.max_new_tokens > 0:
            return self.max_new_tokens
        return FAST_MAX_NEW_TOKENS if self.mode == "fast" else FULL_MAX_NEW_TOKENS

    def validate(self) -> None:
        if self.backend not in ("hf", "vllm"):
            raise ValueError(f"engine.backend must be hf or vllm, got {self.backend!r}")
        if self.mode not in ("fast", "full"):
            raise ValueError(f"engine.mode must be fast or full, got {self.mode!r}")
        if self.too_long not in ("truncate", "reject"):
            raise ValueError(f"engine.too_long must be truncate or reject, got {self.too_long!r}")
        if self.temperature < 0:
            raise ValueError("engine.temperature must be >= 0")
        if not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError(f"engine.top_p must be in (0, 1] and engine.top_k >= 0, got {self.top_p}, {self.top_k}")
        if self.batch_tokens < 1 or self.max_batch < 1 or self.max_new_tokens < 0 or self.max_padding < 0:
            raise ValueError("engine.batch_tokens and engine.max_batch must be positive, engine.max_new_tokens and "
                             "engine.max_padding not negative")
        if self.logprobs_topk < 0:
            raise ValueError("engine.logprobs_topk must be >= 0")
        if self.tensor_parallel_size < 1 or not 0 <= self.gpu_memory_utilization <= 1:
            raise ValueError("engine.tensor_parallel_size must be >= 1 and engine.gpu_memory_utilization in [0, 1]")
