"""The training loop: records in, a Hugging Face judge out. Meant to be read in one sitting.

One optimizer step = one global batch (``BatchPlan``), split into this rank's micro-batches. The loss is the
mean cross-entropy over every target token of the global batch, whatever the number of processes or
micro-batches: each micro-batch contributes ``sum(token losses) / (target tokens in the global batch)``, so a
long judgement weighs as much in a 1-GPU run as in a 16-GPU run (JudgeLM averages per micro-batch instead).
Logits are only computed where a label exists; the prompt positions never reach the LM head.

Between steps the loop asks ``stop()`` (the requeue signal); the answer is agreed across ranks in the same
all-reduce that counts the step's tokens, then every rank checkpoints and the run returns ``preempted``.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from judgelm.config import ConfigError, to_yaml
from judgelm.records import write_rejects
from judgelm.train import checkpoint, distributed, export
from judgelm.train.backends import DeepSpeedBackend, SingleBackend, deepspeed_config, zero_stage
from judgelm.train.config import TrainConfig, repo_path
from judgelm.train.data import IGNORE, BatchPlan, SampleBuilder, collate, load_train_records
from judgelm.train.mfu import FlopCounter, peak_flops
from judgelm.train.model import build_model, count_params, load_or_build_tokenizer, param_dtype


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
        self.text = run_dir / "train.log"
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
    out = backend.forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          logits_to_keep=keep)
    return F.cross_entropy(out.logits.float(), targets[targets != IGNORE], reduction="sum")


def train(cfg: TrainConfig, run_dir: Path, stop: Callable[[], bool] = lambda: False) -> TrainResult:
    """Train (or resume) the run in ``run_dir`` until it is finished or ``stop()`` says so."""
    env = distributed.init(use_deepspeed=cfg.backend == "deepspeed", threads=cfg.threads)
    if env.world_size != cfg.world_size:
        raise ConfigError(f"{env.world_size} processes were started but the config asks for "
                          f"{cfg.world_size} (resources.*); the global batch split depends on it")
    # No teardown after an error: its barrier would wait for ranks that may never get there. The process
    # exits with the error, and the launcher (torchrun, Slurm) ends the others.
    result = _train(cfg, run_dir, env, stop)
    distributed.teardown()
    return result


def _train(cfg: TrainConfig, run_dir: Path, env: distributed.DistEnv, stop: Callable[[], bool]) -> TrainResult:
    log = RunLog(run_dir, env.is_main)
    ckpt_root = run_dir / "checkpoints"
    if env.is_main:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        checkpoint.remove_partial(ckpt_root)
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
    _seed_all(cfg.seed + env.rank)

    loaded = load_train_records([repo_path(p) for p in cfg.data.train_files], cfg.data.skip_invalid)
    records = loaded.records
    if loaded.rejects and env.is_main:
        write_rejects(loaded.rejects, run_dir / "rejects.jsonl")
    tokenizer = load_or_build_tokenizer(cfg, run_dir, records, env.is_main)
    plan = BatchPlan(len(records), cfg.global_batch, cfg.micro_batch, env.world_size, cfg.seed)
    if plan.steps_per_epoch == 0:
        raise ConfigError(f"{len(records)} valid records do not fill one global batch of {cfg.global_batch}")
    total_steps = plan.steps_per_epoch * cfg.epochs

    dtype = param_dtype(cfg, env.device)
    if cfg.backend == "deepspeed":
        from transformers.integrations import HfDeepSpeedConfig

        ds_config = deepspeed_config(cfg, bf16=dtype == torch.bfloat16)
        # While this object lives, from_pretrained loads a ZeRO-3 model straight into partitions instead of
        # materialising the full model in every process.
        hf_ds = HfDeepSpeedConfig(ds_config) if zero_stage(ds_config) == 3 and cfg.model.path else None
        model = build_model(cfg.model, tokenizer, dtype, env.device, cfg.seed)
        backend = DeepSpeedBackend(model, cfg, total_steps, ds_config)
    else:
        hf_ds = None
        model = build_model(cfg.model, tokenizer, dtype, env.device, cfg.seed)
        backend = SingleBackend(model, cfg, total_steps, env.device)
    flops = FlopCounter(model.config, count_params(model))
    peak = peak_flops(env.device, cfg.peak_tflops) * env.world_size
    del model  # the backend owns it now (a stray reference would block the teardown, cpu-stack §3.2)

    step, dropped_total, saved_step = 0, 0, None
    resume = checkpoint.latest(ckpt_root)
    if resume is not None:
        marker = checkpoint.read_marker(resume)
        if marker["training_hash"] != cfg.training_hash():
            raise ConfigError(f"{resume} was written by a different training config; start a new run")
        backend.load(resume)
        _set_rng_state(torch.load(resume / f"rng-rank{env.rank:05d}.pt", weights_only=False))
        step, dropped_total = marker["step"], marker["dropped"]
        saved_step = step
    log.info(f"run {run_dir.name}: {cfg.backend} on {env.world_size} × {env.device.type} (pid {os.getpid()}), "
             f"{dtype}, attention {backend.unwrapped().config._attn_implementation}, "
             f"{flops.body_params / 1e6:.2f} M non-embedding params")
    log.info(f"{len(records)} records ({len(loaded.rejects)} rejected), {plan.steps_per_epoch} steps/epoch × "
             f"{cfg.epochs} epochs, global batch {cfg.global_batch} = {cfg.micro_batch} micro × "
             f"{plan.grad_accum} accum × {env.world_size} procs"
             + (f"; resumed from {resume.name}" if resume is not None else ""))

    def save() -> int:
        info = {"training_hash": cfg.training_hash(), "epoch": plan.epoch_of(step), "dropped": dropped_total}
        with checkpoint.atomic_checkpoint(ckpt_root, step, env.is_main, info) as d:
            backend.save(d)
            torch.save(_rng_state(), d / f"rng-rank{env.rank:05d}.pt")
        if env.is_main:
            checkpoint.prune(ckpt_root, cfg.keep_checkpoints)
        log.info(f"checkpoint step-{step:08d} complete")
        return step

    builder = SampleBuilder(records, tokenizer, cfg.data.max_length, cfg.seed, cfg.data.ref_prob, cfg.data.swap_prob)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.unk_token_id
    while step < total_steps:
        t0 = time.perf_counter()
        epoch = plan.epoch_of(step)
        groups = plan.micro_batches(step, env.rank, lambda i: builder.size_hint(epoch, i))
        samples = [[builder.build(epoch, i) for i in g] for g in groups]
        kept = [s for g in samples for s in g if s is not None]
        my_targets = sum(sum(t != IGNORE for t in s.labels) for s in kept)
        counts = torch.tensor([my_targets, sum(s is None for g in samples for s in g), float(stop())],
                              dtype=torch.float64)
        n_targets, n_dropped, n_stop = distributed.all_reduce_sum(counts).tolist()
        if n_stop:
            break
        lr = backend.lr()  # the rate this step's update uses (DeepSpeed advances it inside the last backward)
        loss_sum = torch.zeros((), dtype=torch.float64)
        for g in samples:
            batch = {k: v.to(env.device) for k, v in collate(g, pad_id, tokenizer.bos_token_id).items()}
            ce = target_loss_sum(backend, batch)
            # DDP-style averaging over ranks divides by the world size: scale it back in.
            backend.backward(ce * (env.world_size / max(n_targets, 1.0)))
            loss_sum += ce.detach().double().cpu()
        grad_norm = backend.step()
        step += 1
        dropped_total += int(n_dropped)
        seq_lens = [len(s.input_ids) for s in kept]
        stats = torch.tensor([loss_sum.item(), sum(seq_lens), flops.step_flops(seq_lens, my_targets)],
                             dtype=torch.float64)
        loss_all, tokens, step_flops = distributed.all_reduce_sum(stats).tolist()
        dt = time.perf_counter() - t0
        row = {"step": step, "epoch": epoch, "loss": loss_all / max(n_targets, 1.0), "lr": lr,
               "grad_norm": grad_norm, "tokens_per_s": tokens / dt, "mfu": step_flops / dt / peak if peak else None,
               "target_tokens": int(n_targets), "dropped": int(n_dropped), "step_time_s": dt}
        log.record(row)
        if step % cfg.log_every == 0 or step == total_steps:
            mfu = f"{100 * row['mfu']:.2f}%" if row["mfu"] is not None else "n/a"
            log.info(f"step {step}/{total_steps} | epoch {epoch} | loss {row['loss']:.4f} | lr {row['lr']:.2e} | "
                     f"grad_norm {grad_norm:.3f} | {row['tokens_per_s']:.0f} tok/s | mfu {mfu} | "
                     f"dropped {dropped_total}")
        if cfg.save_every and step % cfg.save_every == 0 and step < total_steps:
            saved_step = save()

    if saved_step != step:
        save()
    if step < total_steps:
        log.info(f"stopping at step {step} on request (checkpoint saved; resume continues from here)")
        return TrainResult("preempted", step, total_steps, None)

    log.info(f"training finished: {total_steps} steps, {dropped_total} samples dropped as too long "
             f"(max_length {cfg.data.max_length})")
    out = run_dir / "model"
    export.export_model(backend, tokenizer, out, env.is_main)
    if env.is_main and cfg.export_dir:
        export.publish(out, repo_path(cfg.export_dir))
        log.info(f"exported {out} and published it to {repo_path(cfg.export_dir)}")
    else:
        log.info(f"exported {out}")
    del hf_ds  # kept alive until here: transformers consults it while the ZeRO-3 model exists
    return TrainResult("finished", step, total_steps, str(out))
