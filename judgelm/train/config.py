"""The typed config of a training run: ``configs/train/<size>.yaml`` plus ``key=value`` overrides.

``size=NAME`` picks the base file (the launcher adds the cluster profile, ``launch.configs.TrainLaunchConfig``);
every field is documented below and can be overridden on the command line (``optim.lr=1e-5``). The resolved config
is saved as ``runs/<run>/config.yaml``; a resumed run must resolve to the same training config.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

from omegaconf import OmegaConf

from judgelm.config import REPO_ROOT, ConfigError, config_hash, load_config, load_group
from judgelm.rundir import check_run_name

T = TypeVar("T")


@dataclass
class DataConfig:
    """Training records and how samples are drawn from them."""

    train_files: list[str] = field(default_factory=lambda: ["data/tiny_train/judgelm_tiny_train.jsonl"])
    """JudgeLM-format JSONL/JSON files (reference §1.2), read in order. Relative paths are from the repo root."""
    max_length: int = 2048
    """Longest sequence (prompt + judgement + EOS) in tokens. Longer samples are dropped and counted, not
    truncated: a truncated target would teach the judge to stop without EOS."""
    ref_prob: float = 0.5
    """Probability of training a sample on the with-reference prompt and judgement (JudgeLM's
    ``ref_drop_ratio``; records without a reference always train without)."""
    swap_prob: float = 0.5
    """Probability of swap augmentation: answers swapped, first-line scores swapped, Assistant 1/2 exchanged."""
    skip_invalid: bool = True
    """Skip invalid records (written to ``rejects.jsonl`` in the run dir, counted) instead of stopping. Records
    whose judgement text is ``"error"`` or whose first line does not hold two scores are invalid."""
    holdout: int = 0
    """Records of the training files set aside as the validation split (a seeded pick, never trained on), which
    ``eval.data: holdout`` judges during training. 0: none."""


@dataclass
class ScratchConfig:
    """A new Llama built here (the tiny judge), used when ``model.path`` is empty."""

    hidden_size: int = 128
    """Width of the residual stream."""
    num_layers: int = 4
    """Decoder layers."""
    num_heads: int = 4
    """Attention heads (key/value heads are the same: no grouped-query attention)."""
    intermediate_size: int = 352
    """Width of the SwiGLU MLP."""
    max_position_embeddings: int = 2048
    """Context length; must cover the longest evaluation prompt plus the judgement."""
    vocab_size: int = 4096
    """Size of the byte-level BPE trained on the training records and the JudgeLM prompt strings."""


@dataclass
class ModelConfig:
    """The model to fine-tune (or build) and how it runs."""

    path: str | None = None
    """A Hugging Face model directory or hub id to fine-tune (e.g. ``lmsys/vicuna-7b-v1.3``, JudgeLM's base).
    Empty or null: build a new Llama from ``model.scratch`` with a tokenizer trained on the data (the tiny judge)."""
    scratch: ScratchConfig = field(default_factory=ScratchConfig)
    """Architecture of the model built when ``path`` is empty."""
    dtype: str = "auto"
    """Parameter dtype: ``auto`` (bf16 on CUDA with DeepSpeed's fp32 master weights, fp32 on CPU), or
    ``float32``/``bfloat16``."""
    attn_implementation: str = "auto"
    """``auto`` (flash_attention_2 on CUDA when flash-attn is installed, else sdpa), ``sdpa``, ``eager`` or
    ``flash_attention_2``."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: about a third more compute for much less memory."""


@dataclass
class OptimConfig:
    """AdamW with linear warmup and a cosine decay to zero (JudgeLM: HF Trainer's ``cosine`` schedule)."""

    lr: float = 2e-5
    """Peak learning rate."""
    weight_decay: float = 0.0
    """Decoupled weight decay."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    warmup_ratio: float = 0.03
    """Fraction of all optimizer steps spent warming up linearly from 0 (rounded up to whole steps)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0: no clipping)."""


@dataclass
class LoraConfig:
    """Low-rank adapters (PEFT's LoRA) for ``method: lora|qlora``; the base model stays frozen."""

    rank: int = 16
    """Rank ``r`` of each adapter pair (A: r × in, B: out × r)."""
    alpha: float = 32.0
    """Scaling numerator: the adapter's update is multiplied by ``alpha / rank``."""
    dropout: float = 0.05
    """Dropout on the adapter's input during training."""
    target_modules: list[str] = field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    """Module names that get adapters: every linear layer of a Llama/Vicuna decoder (as the QLoRA paper found
    best); ``[q_proj, v_proj]`` is the original LoRA paper's choice."""
    quant_type: str = "nf4"
    """``qlora``: 4-bit data type of the frozen base (``nf4`` or ``fp4``)."""
    double_quant: bool = True
    """``qlora``: also quantize the quantization constants (about 0.4 bits per parameter saved)."""


@dataclass
class EvalConfig:
    """Judge quality measured while training: the current weights judge a held-out set every ``eval_every`` steps
    and at the end, with the project's engine and metrics."""

    data: str = "holdout"
    """``holdout`` (the ``data.holdout`` records set aside from the training files), a benchmark name
    (``pandalm``, ``llmbar``, ...), ``name@N`` or a JudgeLM-format file with labels."""
    limit: int = 0
    """Judge at most this many pairs, the first ones of the set (0: all). Each pair is judged in both orders."""
    with_reference: bool = False
    """Show the reference answer (JudgeLM's with-reference mode); records without one are judged without."""
    metric: str = "agreement"
    """What picks the best checkpoint: ``agreement``, ``kappa``, ``f1``, ``consistency`` (higher is better) or
    ``parse_failures`` (lower is better)."""
    batch_tokens: int = 0
    """Token budget of one judging batch (0: the engine's default)."""


@dataclass
class WandbConfig:
    """Weights & Biases, used only when ``report_to`` names it."""

    project: str = "judgelm"
    """The W&B project."""
    entity: str = ""
    """The W&B entity (team or user); empty: your default."""
    mode: str = ""
    """``online``, ``offline`` (written under the run, ``wandb sync`` later; no network) or empty: the
    ``WANDB_MODE`` environment variable, else online."""


@dataclass
class ResourcesConfig:
    """What one training job of this size needs; the cluster profile says where it runs."""

    nodes: int = 1
    """Nodes per job."""
    gpus_per_node: int = 0
    """GPUs per node, one task (process) each. 0: a CPU run with ``cpu_tasks`` processes."""
    cpu_tasks: int = 1
    """Processes of a CPU run (``gpus_per_node: 0``)."""
    mem_gb: int = 0
    """Memory per node in GB (0: the cluster profile's value)."""
    timeout_min: int = 0
    """Time limit per job in minutes (0: the cluster profile's value); a job that reaches it checkpoints and
    requeues itself."""
    signal_delay_s: int = 0
    """Seconds before the time limit at which the job is told to checkpoint (0: the cluster profile's value).
    Must cover finishing a step plus writing a checkpoint, which grows with the model."""


@dataclass
class TrainConfig:
    """A training run."""

    size: str = "tiny"
    """Name of the size config this run was built from (``configs/train/<size>.yaml``)."""
    run: str = ""
    """Run name; the run lives in ``<runs_dir>/<run>/``. Empty: ``<size>-<date>-<time>``. Naming an existing
    run resumes it from its latest complete checkpoint."""
    runs_dir: str = "runs"
    """Where run directories are created (relative to the repo root unless absolute)."""
    export_dir: str | None = None
    """Where the exported Hugging Face model is also published (e.g. ``artifacts/tiny-judge``); empty or null:
    only ``<run dir>/model``."""
    seed: int = 42
    """Seeds model initialisation, data order and augmentation. Same seed, same config: same run."""
    backend: str = "single"
    """``single`` (plain PyTorch, one process) or ``deepspeed`` (ZeRO, any number of processes)."""
    method: str = "full"
    """``full`` (every weight trains), ``lora`` (PEFT low-rank adapters on a frozen base) or ``qlora`` (the same
    on a 4-bit base through bitsandbytes; CUDA only). A size file's ``methods:`` block holds what changes with the
    method (learning rate, nodes, ZeRO stage)."""
    deepspeed_config: str = "configs/deepspeed/zero3.json"
    """DeepSpeed JSON for ``backend: deepspeed``; its ``"auto"`` values are filled from this config."""
    epochs: int = 3
    """Passes over the training records."""
    global_batch: int = 128
    """Samples per optimizer step, whatever the number of processes: gradient accumulation makes up the rest."""
    micro_batch: int = 1
    """Samples per forward pass per process."""
    log_every: int = 1
    """Log every N optimizer steps (the curves get every step)."""
    eval_every: int = 0
    """Judge the ``eval`` set every N optimizer steps and at the end, and keep the best checkpoint (0: never)."""
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    """Where the curves go, from rank 0: ``tensorboard`` (event files in ``<run>/tensorboard``) and ``wandb``;
    ``[]``: only ``metrics.jsonl``."""
    save_every: int = 0
    """Also checkpoint every N optimizer steps (0: only on preemption and at the end)."""
    keep_checkpoints: int = 2
    """Complete checkpoints kept; older ones are deleted once a newer one is complete."""
    threads: int = 0
    """CPU threads per process (0: the cores this process may use, divided by the processes on the node)."""
    peak_tflops: float = 0.0
    """Peak dense TFLOP/s of one device for MFU (0: looked up for known GPUs, estimated for a CPU)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)

    # --- derived ------------------------------------------------------------------------------------------------

    @property
    def world_size(self) -> int:
        r = self.resources
        return r.nodes * (r.gpus_per_node or r.cpu_tasks)

    @property
    def grad_accum(self) -> int:
        return self.global_batch // (self.micro_batch * self.world_size)

    def validate(self) -> None:
        if self.backend not in ("single", "deepspeed"):
            raise ConfigError(f"backend must be single or deepspeed, got {self.backend!r}")
        if self.backend == "single" and self.world_size != 1:
            raise ConfigError(f"backend=single runs one process, but resources give {self.world_size}; "
                              "use backend=deepspeed")
        per_step = self.micro_batch * self.world_size
        if self.global_batch % per_step:
            raise ConfigError(f"global_batch={self.global_batch} is not a multiple of micro_batch × world size "
                              f"= {self.micro_batch} × {self.world_size}")
        if not 0 <= self.data.ref_prob <= 1 or not 0 <= self.data.swap_prob <= 1:
            raise ConfigError("data.ref_prob and data.swap_prob must be probabilities")
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "qlora" and not self.resources.gpus_per_node:
            raise ConfigError("method=qlora needs CUDA GPUs (bitsandbytes 4-bit), but resources.gpus_per_node is 0; "
                              "on a CPU use method=lora")
        if self.method != "full" and not self.model.path:
            raise ConfigError(f"method={self.method} adapts a pretrained model, but model.path is empty; "
                              "give model.path=DIR (e.g. models/tiny-judge) or use method=full")
        unknown = set(self.report_to) - set(REPORTERS)
        if unknown:
            raise ConfigError(f"report_to takes {', '.join(REPORTERS)}, got {sorted(unknown)}")
        if self.eval.metric not in EVAL_METRICS:
            raise ConfigError(f"eval.metric must be one of {', '.join(EVAL_METRICS)}, got {self.eval.metric!r}")
        if self.eval_every and self.zero_stage() == 3:
            raise ConfigError("eval_every judges in-process, which needs every rank to hold the whole model; ZeRO-3 "
                              "partitions it. Use ZeRO-2 (deepspeed_config=configs/deepspeed/zero2.json) or "
                              "eval_every=0 and judge the exported model with make judge")
        if self.eval_every and self.eval.data == "holdout" and not self.data.holdout:
            raise ConfigError("eval_every is set and eval.data=holdout, but data.holdout is 0: hold out some "
                              "records (data.holdout=200) or name a benchmark (eval.data=pandalm eval.limit=100)")

    def zero_stage(self) -> int:
        """The ZeRO stage of ``deepspeed_config`` (0 without DeepSpeed or when the file cannot be read yet)."""
        if self.backend != "deepspeed":
            return 0
        try:
            ds = json.loads(repo_path(self.deepspeed_config).read_text())
        except (OSError, ValueError):
            return 0
        return int(ds.get("zero_optimization", {}).get("stage", 0))

    def training_hash(self) -> str:
        """Fingerprint of what determines the trained weights; a resumed run must match it. Where the run
        executes, what it is called and how often it logs or saves may change between attempts."""
        d = {f.name: getattr(self, f.name) for f in fields(TrainConfig)}
        for key in ("run", "runs_dir", "export_dir", "log_every", "save_every", "keep_checkpoints", "threads",
                    "peak_tflops", "eval_every", "report_to", "eval", "wandb"):
            d.pop(key)
        d["resources"] = {"world_size": self.world_size}
        return config_hash(d)


METHODS = ("full", "lora", "qlora")
REPORTERS = ("tensorboard", "wandb")
EVAL_METRICS = {"agreement": 1, "kappa": 1, "f1": 1, "consistency": 1, "parse_failures": -1}  # metric -> direction


def repo_path(path: str) -> Path:
    """Relative config paths are from the repo root, so a job runs the same from any working directory."""
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


def load_train_config(argv: list[str], schema: type[T] = TrainConfig, groups: tuple[str, ...] = ()) -> T:  # type: ignore[assignment]
    """``size=NAME`` (default ``tiny``) picks ``configs/train/<size>.yaml``; every other ``key=value`` overrides a
    field of ``schema`` (the launcher passes its wider schema and ``groups=("cluster",)``). A key may carry a
    ``train.`` prefix (``train.method=lora``), as the training config's own name. When the method is not ``full``,
    the size file's ``methods.<method>`` block is merged over the file before the command line."""
    argv = [a.removeprefix("train.") for a in argv]
    sizes = [a for a in argv if a.startswith("size=")]
    size = sizes[-1].split("=", 1)[1] if sizes else "tiny"
    base = load_group("train", size)
    methods = base.pop("methods", None) or {}
    given = [a.split("=", 1)[1] for a in argv if a.startswith("method=")]
    method = given[-1] if given else base.get("method", "full")
    if method in methods:
        base = OmegaConf.merge(base, methods[method])
    known = OmegaConf.structured(schema)
    base = OmegaConf.masked_copy(base, [k for k in base if k in known])  # launcher keys, for a library schema
    cfg = load_config(schema, base, [a for a in argv if not a.startswith("size=")], groups)
    cfg.size = size
    cfg.run = check_run_name(cfg.run or f"{size}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg.validate()
    return cfg
