"""Cluster profiles (``configs/cluster/*.yaml``) and the submitit executor they describe.

One code path for every place a job can run: ``executor: local`` runs tasks as subprocesses of this machine
(no Slurm needed), ``slurm`` submits with sbatch, ``debug`` runs in-process (tests). The profile holds what an
operator tunes per cluster; the entry point adds what belongs to the run (job name, comment, array size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit


@dataclass
class JudgeServerConfig:
    """A judge server started for the run (the cluster profile's ``server`` part)."""

    enabled: bool = False
    """Start the server as its own job and point the shards at it. ``false``: shards load the model themselves
    (``engine.backend=hf|vllm``) or call an existing server (``engine.backend=openai engine.base_url=...``)."""
    command: str = "vllm serve {model} --host {host} --port {port} --served-model-name {model} --seed 0"
    """The server command; ``{model}``, ``{host}`` and ``{port}`` are filled in. Any OpenAI-compatible server works
    (``python -m sglang.launch_server --model-path {model} --host {host} --port {port} --api-key {api_key}``).
    ``{api_key}`` is the run's secret key, for servers that take it only on their command line (where others on
    the node can read it in the process list: prefer ``key_env``)."""
    key_env: str = "VLLM_API_KEY"
    """The environment variable the server reads its API key from (vLLM's); the server job sets it to the run's
    secret key. Empty for a server that reads none: its command must then take ``{api_key}``, or it must listen on
    127.0.0.1 only (``host``), with the shards on its node."""
    host: str = ""
    """The address written for the shards; empty takes the node's host name."""
    port: int = 0
    """Port to serve on; 0 picks a free one on the node."""
    gpus: int = 1
    """GPUs of the server job."""
    startup_timeout_s: float = 1800.0
    """How long the server may take to answer ``/health`` (loading a large model takes minutes)."""
    timeout_min: int = 24 * 60
    """Time limit of the server job; it should outlive the array, or it is requeued and the shards retry."""


@dataclass
class ClusterConfig:
    """Where and how jobs run. Every field can be overridden on the command line (``cluster.partition=x``)."""

    name: str = "local"
    """Profile name, shown in logs."""
    executor: str = "local"
    """``local`` (subprocesses here), ``slurm`` (sbatch) or ``debug`` (in-process, for tests)."""
    partition: str | None = None
    """Slurm partition."""
    account: str | None = None
    """Slurm account to charge."""
    qos: str | None = None
    """Slurm quality of service."""
    constraint: str | None = None
    """Slurm node feature constraint, e.g. ``a100-80gb``."""
    nodes: int = 1
    """Nodes per job. Judging tasks are single-node (leave 1); training sizes set their own."""
    gpus_per_node: int = 0
    """GPUs per node. Judging uses one GPU per array task; training one task per GPU."""
    gpu_mem_gb: float | None = None
    """Memory of one GPU in GB (e.g. 80 for A100-80GB); with it a judging task's GPUs follow the model's size."""
    gpus_per_task: int = 0
    """GPUs of one judging array task (= one model replica); 0 picks the fewest that hold the model and a useful
    batch (``judgelm.inference.gpu_plan``), or 1 when ``gpu_mem_gb`` is not given."""
    cpus_per_task: int = 2
    """CPU cores per task (tokenisation, data loading)."""
    mem_gb: int | None = None
    """Memory per node in GB; ``None`` takes the partition's default."""
    timeout_min: int = 60
    """Time limit per job in minutes. Jobs checkpoint and requeue when it runs out."""
    array_parallelism: int = 64
    """At most this many array tasks run at once (``--array=...%N``)."""
    signal_delay_s: int = 120
    """Seconds before the time limit at which Slurm sends USR2 so the job can checkpoint and requeue."""
    max_num_timeout: int = 5
    """How many times a job may be requeued after reaching its time limit before it is failed."""
    merge_partition: str | None = None
    """Partition of the merge job (CPU only); ``None`` uses ``partition``."""
    merge_mem_gb: int | None = 32
    """Memory of the merge job; a million units with texts need a few GB."""
    merge_timeout_min: int = 60
    """Time limit of the merge job."""
    setup: list[str] = field(default_factory=list)
    """Shell lines run in the sbatch script before the task (``module load ...``, ``source venv``)."""
    additional_parameters: dict[str, Any] = field(default_factory=dict)
    """Extra ``#SBATCH`` options submitit has no name for, e.g. ``{exclusive: true}``."""
    server: JudgeServerConfig = field(default_factory=JudgeServerConfig)
    """A judge server started as its own job for the run (``cluster.server.enabled=true``)."""


def make_executor(cfg: ClusterConfig, folder: str | Path, job_name: str, comment: str = "",
                  tasks_per_node: int = 1, gpus_per_node: int | None = None, dependency: str | None = None,
                  chdir: str | Path | None = None, python: str | None = None) -> submitit.Executor:
    """A submitit executor for ``cfg``, logging under ``folder`` (one subfolder per job id).

    ``dependency`` (e.g. ``afterany:123``) and ``chdir`` (where the job starts) only apply to Slurm; ``python``
    (the interpreter jobs run with; default: this one) to Slurm and local jobs.
    """
    if cfg.executor not in ("local", "slurm", "debug"):
        raise ValueError(f"cluster.executor must be local, slurm or debug, got {cfg.executor!r}")
    interpreter = {"slurm_python": python, "local_python": python} if python else {}
    ex = submitit.AutoExecutor(folder=Path(folder) / "%j", cluster=cfg.executor,
                               slurm_max_num_timeout=cfg.max_num_timeout, **interpreter)
    gpus = cfg.gpus_per_node if gpus_per_node is None else gpus_per_node
    params: dict[str, Any] = dict(name=job_name, timeout_min=cfg.timeout_min, tasks_per_node=tasks_per_node,
                                  cpus_per_task=cfg.cpus_per_task, nodes=cfg.nodes)
    if gpus:
        params["gpus_per_node"] = gpus
    if cfg.mem_gb:
        params["mem_gb"] = cfg.mem_gb
    if cfg.executor == "slurm":
        params.update(
            slurm_partition=cfg.partition, slurm_array_parallelism=cfg.array_parallelism,
            slurm_signal_delay_s=cfg.signal_delay_s,
            slurm_setup=list(cfg.setup), slurm_additional_parameters=dict(cfg.additional_parameters),
        )
        for key in ("account", "qos", "constraint"):
            if getattr(cfg, key):
                params[f"slurm_{key}"] = getattr(cfg, key)
        if comment:
            params["slurm_comment"] = comment
        if dependency:
            params["slurm_dependency"] = dependency
        if chdir:
            params["slurm_additional_parameters"]["chdir"] = str(chdir)
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return ex
