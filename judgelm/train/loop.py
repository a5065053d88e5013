"""The training loop: records in, a Hugging Face judge out. Meant to be read in one sitting.

One optimizer step = one global batch (``BatchPlan``), split into this rank's micro-batches. The loss is the
mean cross-entropy over every target token of the global batch, whatever the number of processes or
micro-batches: each micro-batch contributes ``sum(token losses) / (target tokens in the global batch)``, so a
long judgement weighs as much in a 1-GPU run as in a 16-GPU run (JudgeLM averages per micro-batch instead).
Logits are only computed where a label exists; the prompt positions never reach the LM head.

Batches are right-padded and go in without an attention mask: in a causal model a real token never sees the
padding that follows it, so the mask changes nothing that reaches the loss, while without it SDPA takes its
causal kernel instead of materialising a mask (measured ~15 % of a tiny-judge step on a CPU).

Between steps the loop asks ``stop()`` (the requeue signal); the answer is agreed across ranks in the same
all-reduce that counts the step's tokens, then every rank checkpoints and the run returns ``preempted``.
Every ``eval_every`` steps and at the end the weights judge the validation set (``judgelm.train.validation``);
that step is checkpointed, and the best one by ``eval.metric`` is kept (never pruned) and named in
``metrics.json`` and by the ``checkpoints/best`` link. Curves go to TensorBoard / W&B (``judgelm.train.curves``).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from judgelm.config import ConfigError, to_yaml
from judgelm.data.records import write_rejects
from judgelm.rundir import RunDir, finite, write_text_atomic
from judgelm.train import adapters, checkpoint, distributed, export
from judgelm.train.backends import DeepSpeedBackend, SingleBackend, deepspeed_config, zero_stage
from judgelm.train.config import EVAL_METRICS, TrainConfig, repo_path
from judgelm.train.curves import Curves
from judgelm.train.data import IGNORE, BatchPlan, SampleBuilder, collate, load_train_records, split_holdout
from judgelm.train.mfu import FlopCounter, peak_flops
from judgelm.train.model import build_model, count_params, load_or_build_tokenizer, param_dtype
from judgelm.train.validation import ValidationSet, eval_records


@dataclass
class TrainResult:
    status: str  # "finished" or "preempted"
    step: int
    total_steps: int
    model_dir: str | None  # the exported model, when finished


class RunLog:
    """Rank 0's human log (stdout and ``train.log``) and machine log (``metrics.jsonl``)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.text = RunDir(run_dir).train_log
        self.metrics = run_dir / "metrics.jsonl"

    def info(self, msg: str) -> None:
        if self.enabled:
            line = f"{time.strftime('%H:%M:%S')} {msg}"
            print(line, flush=True)
            with self.text.open("a") as f:
                f.write(line + "\n")

    def record(self, row: dict) -> None:
        if self.enabled:
            with self.metrics.open("a") as f:
                f.write(json.dumps(row) + "\n")


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def target_loss_sum(backend, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed cross-entropy over the target tokens of one micro-batch."""
    labels = batch["labels"]
    targets = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = targets != IGNORE  # position p predicts token p + 1
    out = backend.forward(input_ids=batch["input_ids"], logits_to_keep=keep)  # no mask: see the module doc
    return F.cross_entropy(out.logits.float(), targets[targets != IGNORE], reduction="sum")


def train(cfg: TrainConfig, run_dir: Path, stop: Callable[[], bool] = lambda: False) -> TrainResult:
    """Train (or resume) the run in ``run_dir`` until it is finished or ``stop()`` says so."""
    env = distributed.init(use_deepspeed=cfg.backend == "deepspeed", threads=cfg.threads)
    if env.world_size != cfg.world_size:
        raise ConfigError(f"{env.world_size} processes were started but the config asks for "
                          f"{cfg.world_size} (resources.*); the global batch split depends on it")
    # No teardown after an error: its barrier would wait for ranks that may never get there. The process
    # exits with the error, and the launcher (torchrun, Slurm) ends the others.
    t = setup(cfg, RunDir(Path(run_dir)), env)
    resume(t)
    t.curves = Curves(cfg, t.rd.root, env.is_main, t.step)
    builder = SampleBuilder(t.records, t.tokenizer, cfg.data.max_length, cfg.seed, cfg.data.ref_prob,
                            cfg.data.swap_prob)
    try:
        if cfg.eval_every and 0 < t.step < t.total_steps and t.step % cfg.eval_every == 0 and t.step not in t.evals:
            evaluate(t)  # stopped after the checkpoint of an evaluated step, before its figures were written
        while t.step < t.total_steps and train_step(t, builder, stop):
            if t.step == t.total_steps:
                break
            if cfg.eval_every and t.step % cfg.eval_every == 0:
                evaluate(t)  # checkpoints this step too
            elif cfg.save_every and t.step % cfg.save_every == 0:
                save(t)
        result = finish(t)
    finally:
        t.curves.close()
    distributed.teardown()
    return result


@dataclass
class Trainer:
    """Everything ``setup`` builds, and the position in the run (``step``) that checkpoints save and restore."""

    cfg: TrainConfig
    rd: RunDir
    env: distributed.DistEnv
    log: RunLog
    records: list
    tokenizer: object
    plan: BatchPlan
    backend: object
    flops: FlopCounter
    peak: float
    total_steps: int
    hf_ds: object = None  # transformers consults it while a ZeRO-3 model exists: kept alive until the export
    validation: ValidationSet | None = None
    curves: Curves | None = None
    step: int = 0
    dropped_total: int = 0
    saved_step: int | None = None
    evals: dict[int, dict] = field(default_factory=dict)  # step -> validation figures

    @property
    def best_step(self) -> int | None:
        """The evaluated step with the best ``eval.metric`` (the earliest among equals)."""
        metric = self.cfg.eval.metric
        sign = EVAL_METRICS[metric]
        scored = [(-sign * e[metric], s) for s, e in self.evals.items() if e.get(metric) is not None]
        return min(scored)[1] if scored else None

    @property
    def ckpt_root(self) -> Path:
        return self.rd.root / "checkpoints"


def setup(cfg: TrainConfig, rd: RunDir, env: distributed.DistEnv) -> Trainer:
    """Records, tokenizer, batch plan and the backend holding the model, on every rank."""
    log = RunLog(rd.root, env.is_main)
    if env.is_main:
        (rd.root / "checkpoints").mkdir(parents=True, exist_ok=True)
        checkpoint.remove_partial(rd.root / "checkpoints")
        rd.config.write_text(to_yaml(cfg))
    _seed_all(cfg.seed + env.rank)
    loaded = load_train_records([repo_path(p) for p in cfg.data.train_files], cfg.data.skip_invalid)
    if loaded.rejects and env.is_main:
        write_rejects(loaded.rejects, rd.rejects)
    records, holdout = split_holdout(loaded.records, cfg.data.holdout, cfg.seed)
    tokenizer = load_or_build_tokenizer(cfg, rd.root, records, env.is_main)
    plan = BatchPlan(len(records), cfg.global_batch, cfg.micro_batch, env.world_size, cfg.seed)
    if plan.steps_per_epoch == 0:
        raise ConfigError(f"{len(records)} valid records do not fill one global batch of {cfg.global_batch}")
    total_steps = plan.steps_per_epoch * cfg.epochs
    dtype = param_dtype(cfg, env.device)
    ds_config = deepspeed_config(cfg, bf16=dtype == torch.bfloat16) if cfg.backend == "deepspeed" else None
    zero3 = ds_config is not None and zero_stage(ds_config) == 3
    check_runnable(cfg)
    hf_ds = None
    if zero3 and cfg.model.path:
        from transformers.integrations import HfDeepSpeedConfig

        # While this object lives, from_pretrained loads a ZeRO-3 model straight into partitions instead of
        # materialising the full model in every process.
        hf_ds = HfDeepSpeedConfig(ds_config)
    quant = adapters.quantization_config(cfg.lora) if cfg.method == "qlora" else None
    model = adapters.add_adapters(build_model(cfg.model, tokenizer, dtype, env.device, cfg.seed, quant), cfg)
    if ds_config is not None:
        backend = DeepSpeedBackend(model, cfg, total_steps, ds_config)
    else:
        backend = SingleBackend(model, cfg, total_steps, env.device)
    flops = FlopCounter(adapters.inner_model(model).config, count_params(model))
    trainable, total = adapters.count_trainable(model)
    del model  # the backend owns it now (a stray reference would block the teardown, cpu-stack §3.2)
    log.info(f"run {rd.name}: {cfg.backend} on {env.world_size} × {env.device.type} (pid {os.getpid()}), "
             f"{dtype}, attention {adapters.inner_model(backend.unwrapped()).config._attn_implementation}, "
             f"{flops.body_params / 1e6:.2f} M non-embedding params")
    log.info(f"method {cfg.method}: {trainable:,} of {total:,} parameters train ({100 * trainable / total:.2f} %)")
    log.info(f"{len(records)} records ({len(loaded.rejects)} rejected, {len(holdout)} held out), "
             f"{plan.steps_per_epoch} steps/epoch × {cfg.epochs} epochs, global batch {cfg.global_batch} = "
             f"{cfg.micro_batch} micro × {plan.grad_accum} accum × {env.world_size} procs")
    validation = None
    if cfg.eval_every:
        inner = adapters.inner_model(backend.unwrapped())
        validation = ValidationSet.build(eval_records(cfg.eval, holdout), tokenizer,
                                         int(inner.config.max_position_embeddings), cfg.eval)
        if not len(validation.gt):
            raise ConfigError(f"eval.data={cfg.eval.data} gives no labelled pair that fits the model's context "
                              f"({validation.too_long} too long); name another set or set eval_every=0")
        log.info(f"validation: {len(validation.gt)} pairs of {cfg.eval.data} judged in both orders every "
                 f"{cfg.eval_every} steps and at the end ({validation.too_long} too long for the context); "
                 f"best checkpoint by {cfg.eval.metric}")
    return Trainer(cfg, rd, env, log, records, tokenizer, plan, backend, flops,
                   peak_flops(env.device, cfg.peak_tflops) * env.world_size, total_steps, hf_ds, validation)


def check_runnable(cfg: TrainConfig) -> None:
    """What the config cannot do on this machine, said before any model is loaded."""
    if cfg.method == "qlora":
        problem = adapters.qlora_problem()
        if problem:
            raise ConfigError(f"method=qlora cannot run here: {problem}")


def resume(t: Trainer) -> None:
    """Continue from the latest complete checkpoint, if any: weights, optimizer, RNG and the exact step."""
    latest = checkpoint.latest(t.ckpt_root)
    if latest is None:
        return
    marker = checkpoint.read_marker(latest)
    if marker["training_hash"] != t.cfg.training_hash():
        raise ConfigError(f"{latest} was written by a different training config; start a new run")
    t.backend.load(latest)
    _set_rng_state(torch.load(latest / f"rng-rank{t.env.rank:05d}.pt", weights_only=False))
    t.step, t.dropped_total = marker["step"], marker["dropped"]
    t.saved_step = t.step
    if t.rd.metrics.is_file():  # evaluations after the checkpoint are redone, so they are dropped here
        evals = json.loads(t.rd.metrics.read_text()).get("evals", [])
        t.evals = {e["step"]: e for e in evals if e["step"] <= t.step}
    t.log.info(f"resumed from {latest.name}")


def save(t: Trainer) -> None:
    info = {"training_hash": t.cfg.training_hash(), "epoch": t.plan.epoch_of(t.step), "dropped": t.dropped_total}
    with checkpoint.atomic_checkpoint(t.ckpt_root, t.step, t.env.is_main, info) as d:
        t.backend.save(d)
        torch.save(_rng_state(), d / f"rng-rank{t.env.rank:05d}.pt")
    if t.env.is_main:
        checkpoint.prune(t.ckpt_root, t.cfg.keep_checkpoints, keep_also=t.best_step)
    t.log.info(f"checkpoint step-{t.step:08d} complete")
    t.saved_step = t.step


def train_step(t: Trainer, builder: SampleBuilder, stop: Callable[[], bool]) -> bool:
    """One optimizer step over this rank's micro-batches; ``False`` (and no step) when the ranks agree to stop."""
    t0 = time.perf_counter()
    env, epoch = t.env, t.plan.epoch_of(t.step)
    groups = t.plan.micro_batches(t.step, env.rank, lambda i: builder.size_hint(epoch, i))
    samples = [[builder.build(epoch, i) for i in g] for g in groups]
    kept = [s for g in samples for s in g if s is not None]
    my_targets = sum(sum(tok != IGNORE for tok in s.labels) for s in kept)
    counts = torch.tensor([my_targets, sum(s is None for g in samples for s in g), float(stop())],
                          dtype=torch.float64)
    n_targets, n_dropped, n_stop = distributed.all_reduce_sum(counts).tolist()
    if n_stop:
        return False
    lr = t.backend.lr()  # the rate this step's update uses (DeepSpeed advances it inside the last backward)
    pad_id = t.tokenizer.pad_token_id if t.tokenizer.pad_token_id is not None else t.tokenizer.unk_token_id
    loss_sum = torch.zeros((), dtype=torch.float64)
    for g in samples:
        batch = {k: v.to(env.device) for k, v in collate(g, pad_id, t.tokenizer.bos_token_id).items()}
        ce = target_loss_sum(t.backend, batch)
        # DDP-style averaging over ranks divides by the world size: scale it back in.
        t.backend.backward(ce * (env.world_size / max(n_targets, 1.0)))
        loss_sum += ce.detach().double().cpu()
    grad_norm = t.backend.step()
    t.step += 1
    t.dropped_total += int(n_dropped)
    seq_lens = [len(s.input_ids) for s in kept]
    stats = torch.tensor([loss_sum.item(), sum(seq_lens), t.flops.step_flops(seq_lens, my_targets)],
                         dtype=torch.float64)
    loss_all, tokens, step_flops = distributed.all_reduce_sum(stats).tolist()
    dt = time.perf_counter() - t0
    row = {"step": t.step, "epoch": epoch, "loss": loss_all / max(n_targets, 1.0), "lr": lr, "grad_norm": grad_norm,
           "tokens_per_s": tokens / dt, "mfu": step_flops / dt / t.peak if t.peak else None,
           "target_tokens": int(n_targets), "dropped": int(n_dropped), "step_time_s": dt}
    t.log.record(row)
    t.curves.log(t.step, {"train/loss": row["loss"], "train/lr": lr, "train/grad_norm": grad_norm,
                          "train/tokens_per_s": row["tokens_per_s"], "train/mfu": row["mfu"],
                          "train/dropped": t.dropped_total, "train/epoch": epoch})
    if t.step % t.cfg.log_every == 0 or t.step == t.total_steps:
        mfu = f"{100 * row['mfu']:.2f}%" if row["mfu"] is not None else "n/a"
        t.log.info(f"step {t.step}/{t.total_steps} | epoch {epoch} | loss {row['loss']:.4f} | lr {row['lr']:.2e} | "
                   f"grad_norm {grad_norm:.3f} | {row['tokens_per_s']:.0f} tok/s | mfu {mfu} | "
                   f"dropped {t.dropped_total}")
    return True


def evaluate(t: Trainer) -> None:
    """Judge the validation set with the current weights (collective), log the figures, checkpoint this step and
    name the best checkpoint so far."""
    t0 = time.perf_counter()
    figures = t.validation.judge(t.backend.unwrapped(), t.tokenizer, t.env.device, t.cfg.eval)
    t.evals[t.step] = {"step": t.step, **figures, "seconds": round(time.perf_counter() - t0, 1)}
    t.curves.log(t.step, {f"eval/{k}": figures[k] for k in ("agreement", "consistency", "kappa", "f1",
                                                             "parse_failures")})
    t.log.info(f"eval step {t.step}: agreement {figures['agreement']:.3f} | consistency "
               f"{figures.get('consistency', float('nan')):.3f} | kappa {figures['kappa']:.3f} | "
               f"f1 {figures['f1']:.3f} | parse failures {figures['parse_failures']} of {2 * figures['total_num']} "
               f"| {t.evals[t.step]['seconds']:.0f} s")
    if t.saved_step != t.step:
        save(t)
    best = t.best_step
    if t.env.is_main:
        checkpoint.mark_best(t.ckpt_root, best)
        write_text_atomic(t.rd.metrics, json.dumps(finite({
            "evals": [t.evals[s] for s in sorted(t.evals)], "metric": t.cfg.eval.metric,
            "best": {"step": best, t.cfg.eval.metric: t.evals[best][t.cfg.eval.metric],
                     "checkpoint": f"checkpoints/step-{best:08d}"}}), indent=1) + "\n")
    if best == t.step:
        t.log.info(f"best checkpoint so far by {t.cfg.eval.metric}: step-{best:08d}")


def finish(t: Trainer) -> TrainResult:
    """Checkpoint unless the last step was saved; if the run is complete, judge the validation set a last time
    and export the Hugging Face model (and the best checkpoint's, when another step was better)."""
    if t.step == t.total_steps and t.cfg.eval_every and t.step not in t.evals:
        evaluate(t)
    if t.saved_step != t.step:
        save(t)
    if t.step < t.total_steps:
        t.log.info(f"stopping at step {t.step} on request (checkpoint saved; resume continues from here)")
        return TrainResult("preempted", t.step, t.total_steps, None)
    t.log.info(f"training finished: {t.total_steps} steps, {t.dropped_total} samples dropped as too long "
               f"(max_length {t.cfg.data.max_length})")
    out = export_to(t, "")
    if t.env.is_main and t.cfg.export_dir:
        export.publish(out, repo_path(t.cfg.export_dir))
        t.log.info(f"exported {out} and published it to {repo_path(t.cfg.export_dir)}")
    else:
        t.log.info(f"exported {out}")
    best = t.best_step
    if best is not None and best != t.step:
        t.backend.load(checkpoint.step_dir(t.ckpt_root, best))
        t.log.info(f"exported the best checkpoint (step {best}, {t.cfg.eval.metric} "
                   f"{t.evals[best][t.cfg.eval.metric]:.4f}) to {export_to(t, '-best')}")
    t.hf_ds = None
    return TrainResult("finished", t.step, t.total_steps, str(out))


def export_to(t: Trainer, suffix: str) -> Path:
    """Export the backend's weights to ``model<suffix>/`` (and ``adapter<suffix>/`` for LoRA); collective."""
    out = t.rd.root / f"model{suffix}"
    export.export_model(t.backend, t.tokenizer, out, t.env.is_main, adapter_out=t.rd.root / f"adapter{suffix}",
                        base_path=t.cfg.model.path or "")
    return out
