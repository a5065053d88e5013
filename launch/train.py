"""``make train SIZE=...``: resolve the config, create or resume the run, submit the training job, follow it.

    python -m launch.train size=tiny|7b|13b|33b [run=NAME] [cluster=local|a100|...] [dry_run=true] [key=value ...]

``size`` picks ``configs/train/<size>.yaml``, ``cluster`` a profile from ``configs/cluster/``; any other
``key=value`` overrides a field (listed below). The job runs one task per GPU (or ``resources.cpu_tasks``
processes on a CPU) across ``resources.nodes`` nodes, under the job name ``judgelm-train:<run>``. Naming an
existing run resumes it from its latest complete checkpoint; on the requeue signal the job checkpoints and requeues
itself (``launch.tasks.TrainJob``). ``dry_run=true`` prints the resolved config, the resource plan and the sbatch
script, and submits nothing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

from judgelm.config import ConfigError, load_saved, to_yaml
from judgelm.rundir import RunDir
from judgelm.train.backends import zero_stage
from judgelm.train.config import TrainConfig, repo_path
from judgelm.train.memory_plan import plan_memory
from launch.cli import run_main
from launch.cluster import ClusterConfig, make_executor
from launch.configs import TrainLaunchConfig, load_train_launch_config
from launch.sacct import active
from launch.snapshot import snapshot_code
from launch.submission import record_submission
from launch.tasks import TrainJob

log = logging.getLogger("judgelm.launch")


def job_cluster(cfg: TrainLaunchConfig) -> ClusterConfig:
    """The cluster profile with this size's needs filled in (nodes, GPUs; memory and times where it sets them)."""
    r = cfg.resources
    c = cfg.cluster
    return replace(c, nodes=r.nodes, gpus_per_node=r.gpus_per_node, mem_gb=r.mem_gb or c.mem_gb,
                   timeout_min=r.timeout_min or c.timeout_min, signal_delay_s=r.signal_delay_s or c.signal_delay_s)


def tasks_per_node(cfg: TrainConfig) -> int:
    return cfg.resources.gpus_per_node or cfg.resources.cpu_tasks


def job_identity(cfg: TrainLaunchConfig) -> tuple[str, str]:
    return f"judgelm-train:{cfg.run}", f"run={cfg.run} cfg={cfg.training_hash()}"


def plan_text(cfg: TrainLaunchConfig) -> str:
    c, r = job_cluster(cfg), cfg.resources
    device = f"{r.gpus_per_node} GPUs" if r.gpus_per_node else "CPU"
    zero = ""
    if cfg.backend == "deepspeed":
        zero = f" ZeRO-{zero_stage(json.loads(repo_path(cfg.deepspeed_config).read_text()))} ({cfg.deepspeed_config})"
    return "\n".join([
        f"run          {cfg.run} (size {cfg.size}) -> {repo_path(cfg.runs_dir) / cfg.run}",
        f"cluster      {c.name} ({c.executor}), partition {c.partition or '-'}, constraint {c.constraint or '-'}",
        f"resources    {r.nodes} node(s) × {device}, {tasks_per_node(cfg)} task(s)/node = {cfg.world_size} processes, "
        f"{c.cpus_per_task} CPUs/task, mem {f'{c.mem_gb} GB/node' if c.mem_gb else 'partition default'}",
        f"time         {c.timeout_min} min per job; USR2 {c.signal_delay_s} s before the limit -> checkpoint + "
        f"requeue (at most {c.max_num_timeout} times)",
        f"batch        global {cfg.global_batch} = micro {cfg.micro_batch} × accum {cfg.grad_accum} × "
        f"world {cfg.world_size}; {cfg.epochs} epochs, max length {cfg.data.max_length}",
        f"training     {cfg.backend}{zero}, lr {cfg.optim.lr} cosine, warmup {cfg.optim.warmup_ratio:.0%}, "
        f"wd {cfg.optim.weight_decay}, grad ckpt {cfg.model.gradient_checkpointing}, "
        f"model {cfg.model.path or 'scratch (tiny)'}",
        f"method       {method_text(cfg)}",
        f"memory       {memory_text(cfg, c.gpu_mem_gb)}",
        f"curves       {', '.join(cfg.report_to) or 'metrics.jsonl only'}"
        + (f"; judges {cfg.eval.data} every {cfg.eval_every} steps, best checkpoint by {cfg.eval.metric}"
           if cfg.eval_every else ""),
        f"output       {repo_path(cfg.runs_dir) / cfg.run / 'model'}"
        + (f" (merged) and {repo_path(cfg.runs_dir) / cfg.run / 'adapter'}" if cfg.method != "full" else "")
        + (f", published to {repo_path(cfg.export_dir)}" if cfg.export_dir else ""),
    ])


def method_text(cfg: TrainConfig) -> str:
    if cfg.method == "full":
        return "full (every weight trains)"
    lc = cfg.lora
    base = "4-bit NF4 base (bitsandbytes)" if cfg.method == "qlora" else "frozen base"
    return (f"{cfg.method}: rank {lc.rank}, alpha {lc.alpha:g}, dropout {lc.dropout:g} on "
            f"{','.join(lc.target_modules)}, {base}")


def memory_text(cfg: TrainConfig, gpu_gb: float | None) -> str:
    """The planner's per-GPU estimate (``judgelm.train.memory_plan``), or why there is none."""
    zero = zero_stage(json.loads(repo_path(cfg.deepspeed_config).read_text())) if cfg.backend == "deepspeed" else 0
    try:
        plan = plan_memory(cfg, gpu_gb if cfg.resources.gpus_per_node else None, zero)
    except FileNotFoundError as e:
        return f"not planned: {e}"
    return plan.text() if cfg.resources.gpus_per_node else plan.text("process") + " (in RAM: a CPU run)"


def code_dir(run_dir: Path) -> Path:
    """Where a submission's frozen copy of the code goes: one per submission, as the checkout may move on."""
    return run_dir / f"code-{time.strftime('%Y%m%d-%H%M%S')}"


def sbatch_script(cfg: TrainLaunchConfig, run_dir: Path) -> str:
    """The script submitit would hand to sbatch, rendered without submitting."""
    name, comment = job_identity(cfg)
    ex = make_executor(job_cluster(cfg), run_dir / "logs", name, comment=comment, tasks_per_node=tasks_per_node(cfg),
                       chdir=code_dir(run_dir))
    slurm = ex._executor  # submitit renders the script from these parameters at submission
    return slurm._make_submission_file_text(slurm._submitit_command_str, uid="dry-run")


def with_absolute_paths(cfg: TrainLaunchConfig) -> TrainLaunchConfig:
    """Repo-relative paths made absolute: a Slurm job starts in the run's frozen copy of the code, where the
    repo root would be that copy."""
    def absolute(p: str | None) -> str | None:
        return str(repo_path(p)) if p else p
    return replace(cfg, runs_dir=absolute(cfg.runs_dir), export_dir=absolute(cfg.export_dir),
                   deepspeed_config=absolute(cfg.deepspeed_config),
                   data=replace(cfg.data, train_files=[absolute(p) for p in cfg.data.train_files]))


def refuse_if_running(rd: RunDir) -> None:
    """One job per run: a second one would delete the first one's half-written checkpoint."""
    if not rd.jobs.is_file():
        return
    last = [json.loads(x) for x in rd.jobs.read_text().splitlines() if x.strip()][-1]
    if last.get("executor") == "slurm" and active(last["job_ids"]):
        raise ConfigError(f"run {rd.name} already has job {last['job_ids'][0]} queued or running; "
                          f"wait for it or scancel it first")


def check_resume(cfg: TrainConfig, rd: RunDir) -> None:
    saved = rd.config
    if saved.is_file():
        previous = load_saved(TrainConfig, saved)
        if previous.training_hash() != cfg.training_hash():
            raise ConfigError(f"run {cfg.run} exists with a different training config ({saved}); "
                              "pick another run= or the same settings")
        log.info("run %s exists: resuming from its latest complete checkpoint", cfg.run)


def follow(job, log_file: Path, every: float = 2.0) -> None:
    """Print the run's log as it grows until the job ends (requeues included)."""
    pos = 0
    while True:
        done = job.done()
        if log_file.is_file():
            with log_file.open() as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
            print(chunk, end="", flush=True)
        if done:
            return
        time.sleep(every)


def dry_run(cfg: TrainLaunchConfig, rd: RunDir) -> int:
    # The cluster block as the job will get it: the profile with this size's nodes, GPUs, memory and times.
    shown = to_yaml(replace(cfg, cluster=job_cluster(cfg)))
    print(f"# resolved config (cfg={cfg.training_hash()})\n{shown}\n# plan\n{plan_text(cfg)}\n")
    if cfg.cluster.executor == "slurm":
        print(f"# sbatch script\n{sbatch_script(cfg, rd.root)}")
    else:
        print(f"# {cfg.cluster.executor} executor: {tasks_per_node(cfg)} process(es) on this machine, no sbatch script")
    return 0


def submit(cfg: TrainLaunchConfig, rd: RunDir):
    """Submit the training job (its config.yaml is written by rank 0 of the job) and record it."""
    check_resume(cfg, rd)
    refuse_if_running(rd)
    slurm = cfg.cluster.executor == "slurm"
    if not cfg.resources.gpus_per_node:
        # CPU training shares cores with whatever else runs; spinning OpenMP workers then stall each other
        # (measured 8x slower on 2 busy cores). Passive waiting costs next to nothing on an idle machine.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    rd.root.mkdir(parents=True, exist_ok=True)
    name, comment = job_identity(cfg)
    # A queued or requeued job runs the code of its submission, not whatever the checkout holds by then.
    chdir = snapshot_code(code_dir(rd.root)) if slurm else None
    ex = make_executor(job_cluster(cfg), rd.logs, name, comment=comment, tasks_per_node=tasks_per_node(cfg),
                       chdir=chdir)
    job = ex.submit(TrainJob(), cfg, str(rd.root))
    record_submission(rd, "train", cfg.cluster.executor, [job.job_id])
    log.info("submitted %s as job %s (%s)", name, job.job_id, comment)
    return job


def train(argv: list[str]) -> int:
    started = time.time()
    cfg = load_train_launch_config(argv)
    rd = RunDir(repo_path(cfg.runs_dir) / cfg.run)
    if cfg.dry_run:
        return dry_run(cfg, rd)
    cfg = with_absolute_paths(cfg)
    job = submit(cfg, rd)
    if cfg.cluster.executor == "slurm" and not cfg.wait:
        print(f"follow it with: tail -f {rd.train_log}   (job logs: {rd.logs / str(job.job_id)})")
        return 0
    follow(job, rd.train_log)
    try:
        result = job.results()[0]  # one result per task; rank 0's speaks for the run
    except Exception as e:  # submitit re-raises the job's failure with its traceback
        log.error("training job %s failed (logs: %s):\n%s", job.job_id, job.paths.stderr, e)
        return 1
    print(f"{result.status} at step {result.step}/{result.total_steps}; model: {result.model_dir}\n"
          f"run directory: {rd.root}\nwall time: {time.time() - started:.1f} s", flush=True)
    return 0 if result.status == "finished" else 1


def main(argv: list[str] | None = None) -> int:
    return run_main(train, __doc__, TrainLaunchConfig, argv)


if __name__ == "__main__":
    raise SystemExit(main())
