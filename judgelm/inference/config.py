"""Settings of the judge model and of the engine that runs it; torch-free, so reading a run's config is cheap."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FAST_MAX_NEW_TOKENS = 16
FULL_MAX_NEW_TOKENS = 512


def adapter_base(path: str) -> str | None:
    """The base model of a PEFT adapter directory (``adapter_config.json``), or ``None`` for a plain model."""
    f = Path(path) / "adapter_config.json"
    return json.loads(f.read_text())["base_model_name_or_path"] if f.is_file() else None


@dataclass
class ModelConfig:
    """Which judge to load and how."""

    path: str = "models/tiny-judge"
    """A local model directory or a hub id (``BAAI/JudgeLM-7B-v1.0``). The default is the tiny judge shipped in
    ``models/tiny-judge`` (built by ``make train SIZE=tiny``; ``models/tiny-judge/BUILD.md``)."""
    dtype: str = "auto"
    """``auto`` (the checkpoint's own dtype on a GPU, fp32 on a CPU), ``bfloat16``, ``float16`` or ``float32``.
    The same for the HF and vLLM engines."""
    attn_implementation: str = "auto"
    """``auto`` (flash_attention_2 where usable, else sdpa), ``sdpa``, ``eager`` or ``flash_attention_2``."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``. On CUDA one replica spans every GPU the task sees."""


@dataclass
class Runtime:
    """What a judge was loaded with, for the run's records."""

    dtype: str
    attention: str
    devices: list[str]


@dataclass
class EngineConfig:
    """How judgements are generated."""

    backend: str = "hf"
    """``hf`` (transformers, any device), ``vllm`` (the ``vllm`` extra on GPU nodes; ``make vllm-env`` and ``python``
    below on a CPU machine) or ``openai`` (any OpenAI-compatible server: vLLM, SGLang, ``transformers serve``, hosted
    APIs; the ``openai`` extra)."""
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
    batch_tokens: int = 0
    """Token budget of one batch: rows × (longest prompt + max_new_tokens). Bounds the memory a batch needs.
    0 derives it from the free GPU memory after loading and the model's KV bytes per token (65,536 on a CPU)."""
    memory_margin: float = 0.10
    """Share of each GPU's memory kept free when ``batch_tokens`` is derived (allocator fragmentation, spikes)."""
    tensor_parallel_size: int = 0
    """GPUs one model replica spans (vLLM's ``tensor_parallel_size``; the hf engine spreads layers over them).
    0 uses every GPU the task sees, which ``gpus_per_task`` of the cluster profile sets."""
    max_batch: int = 64
    """At most this many rows per batch."""
    prefill_tokens: int = 0
    """Prompt positions computed by one forward pass of the prefill (rows × longest prompt); 0: 2048 on a CPU
    (activations stay in the cache), no limit on a GPU. Decoding still batches the rows of many prefills."""
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
    cpu_processes: int = 0
    """hf engine on a CPU: processes that judge batches side by side, forked from the shard's process (sharing its
    weights), one torch thread each. 0: one per thread for a model under 10M parameters (a tiny model's operations
    are too small for threads to help), else 1 (threads only: a bigger model's decode reads its weights and KV cache
    once per step for the whole batch). Results do not depend on it."""
    logprobs_topk: int = 0
    """If > 0, store the top-k log-probabilities at each of the first generated positions (fast mode), from
    which the merge derives an expected score and a confidence per verdict."""
    samples: int = 1
    """Verdicts per unit. With k > 1 the unit is judged k times at ``temperature`` (which must be above 0), each
    draw seeded by (seed, unit, sample) so it does not depend on batching or sharding; sample 0 is the unit's
    primary verdict and ``merge.policy`` decides from all k (``judgelm.scoring.verdict_policy``)."""
    parse_retries: int = 0
    """Re-asks of a unit whose primary verdict did not parse, until one parses; each sampled at
    ``retry_temperature`` and seeded by (seed, unit, attempt), every attempt stored (``judgelm.judging.resample``)."""
    retry_temperature: float = 0.7
    """Temperature of re-asks: a greedy judge asked again would only repeat the answer that failed."""

    # --- backend=openai: the server and how to talk to it -------------------------------------------------------
    base_url: str = ""
    """The server's API root (``http://host:8000/v1``), or ``file:PATH``: read it from the file a judge-server job
    writes when its server answers (``launch/server.py``), waiting up to ``server_wait_s`` for it."""
    api: str = "completions"
    """``completions`` sends the prompt text exactly as the in-process engines would see it (verdicts comparable
    with them); ``chat`` sends the profile's messages and lets the server apply the model's chat template."""
    served_model: str = ""
    """The ``model`` name sent to the server; empty sends ``model.path``. ``model.path`` still names the tokenizer
    used to count and fit prompt tokens."""
    api_key_env: str = ""
    """Name of the environment variable holding the API key (the key itself is never in a config, log or store);
    empty for servers without authentication."""
    concurrency: int = 8
    """Requests in flight at once per shard."""
    request_timeout_s: float = 600.0
    """Seconds before a request counts as timed out (and is retried)."""
    max_retries: int = 6
    """Retries of a request after a 429, a 5xx, a timeout or a refused connection; then the shard fails and a
    resubmission resumes from its last committed chunk."""
    backoff_s: float = 2.0
    """First retry delay; it doubles with each retry (capped at 120 s)."""
    server_wait_s: float = 1800.0
    """With ``base_url=file:PATH``: how long to wait for the judge server to come up."""
    cost_per_1k_prompt: float = 0.0
    """Price per 1000 prompt tokens, for the cost in the run's usage summary (0: not priced)."""
    cost_per_1k_completion: float = 0.0
    """Price per 1000 generated tokens."""

    prefix_sharing: bool = True
    """Compute a prompt prefix shared by several units once (the question, and in model evaluation the baseline
    answer too): HF groups such rows in one prefill, vLLM keeps its prefix cache on."""
    python: str = ""
    """The Python the shards run with; empty: the one that submits. vLLM's CPU build needs a transformers older
    than this project's, so on a CPU machine ``backend=vllm`` goes with ``python=.venv-vllm/bin/python``
    (made by ``make vllm-env``)."""
    gpu_memory_utilization: float = 0.0
    """vLLM: share of the GPU's memory it may take (on a CPU: of host RAM, for its KV cache); 0 picks 0.9 on a
    GPU and 0.1 on a CPU, where the memory is shared with everything else."""

    def new_tokens(self) -> int:
        if self.max_new_tokens > 0:
            return self.max_new_tokens
        return FAST_MAX_NEW_TOKENS if self.mode == "fast" else FULL_MAX_NEW_TOKENS

    def validate(self) -> None:
        from judgelm.inference import (
            BACKENDS,  # the one table of backends; imported here as it imports this module
        )

        if self.backend not in BACKENDS:
            raise ValueError(f"engine.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.backend == "openai":
            self.validate_server()
        if self.mode not in ("fast", "full"):
            raise ValueError(f"engine.mode must be fast or full, got {self.mode!r}")
        if self.too_long not in ("truncate", "reject"):
            raise ValueError(f"engine.too_long must be truncate or reject, got {self.too_long!r}")
        if self.temperature < 0:
            raise ValueError("engine.temperature must be >= 0")
        if not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError(f"engine.top_p must be in (0, 1] and engine.top_k >= 0, got {self.top_p}, {self.top_k}")
        if self.batch_tokens < 0 or self.max_batch < 1 or self.max_new_tokens < 0 or self.max_padding < 0:
            raise ValueError("engine.max_batch must be positive, engine.batch_tokens, engine.max_new_tokens and "
                             "engine.max_padding not negative")
        if not 0 <= self.memory_margin < 1 or self.tensor_parallel_size < 0:
            raise ValueError(f"engine.memory_margin must be in [0, 1) and engine.tensor_parallel_size >= 0, got "
                             f"{self.memory_margin}, {self.tensor_parallel_size}")
        if self.logprobs_topk < 0 or self.cpu_processes < 0 or self.prefill_tokens < 0:
            raise ValueError("engine.logprobs_topk, engine.cpu_processes and engine.prefill_tokens must be >= 0")
        if self.samples < 1 or self.parse_retries < 0 or self.retry_temperature <= 0:
            raise ValueError(f"engine.samples must be >= 1, engine.parse_retries >= 0 and engine.retry_temperature "
                             f"> 0, got {self.samples}, {self.parse_retries}, {self.retry_temperature}")
        if self.samples > 1 and self.temperature <= 0:
            raise ValueError(f"engine.samples={self.samples} draws several verdicts per unit, which needs sampling: "
                             f"set engine.temperature above 0 (JudgeLM samples at 0.2)")

        if not 0 <= self.gpu_memory_utilization <= 1:
            raise ValueError(f"engine.gpu_memory_utilization must be in [0, 1], got {self.gpu_memory_utilization}")

    def validate_server(self) -> None:
        if not self.base_url:
            raise ValueError("engine.backend=openai needs engine.base_url (http://host:port/v1, or file:PATH "
                             "written by a judge-server job)")
        if self.api not in ("completions", "chat"):
            raise ValueError(f"engine.api must be completions or chat, got {self.api!r}")
        if self.concurrency < 1 or self.max_retries < 0 or self.request_timeout_s <= 0 or self.backoff_s < 0:
            raise ValueError("engine.concurrency and engine.request_timeout_s must be positive, engine.max_retries "
                             "and engine.backoff_s not negative")


def context_length(model_cfg: ModelConfig, cfg: EngineConfig) -> int:
    """The model's context, from its config where the tokenizer's directory has one, else from the settings.
    A ``max_position_embeddings`` at the top of ``config.json`` is what transformers would read; only other layouts
    go through it (which imports torch: seconds of a generation run's creation)."""
    try:
        size = json.loads((Path(model_cfg.path) / "config.json").read_text()).get("max_position_embeddings")
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    except (OSError, ValueError, AttributeError):
        pass  # transformers below says what is wrong, or the settings stand in
    from transformers import AutoConfig

    try:
        return int(AutoConfig.from_pretrained(model_cfg.path).max_position_embeddings)
    except (OSError, ValueError, AttributeError) as e:
        if not cfg.max_prompt_tokens:
            raise ValueError(f"cannot read the context length of {model_cfg.path}: "
                             f"set engine.max_prompt_tokens") from e
        return cfg.max_prompt_tokens + cfg.new_tokens()
