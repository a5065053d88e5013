"""Process-group setup from whatever started the processes, and a teardown that does not hang.

Three launchers are supported without configuration: ``torchrun`` / the ``deepspeed`` launcher (which set
``RANK``/``WORLD_SIZE``), submitit on Slurm or locally (one task per GPU or per CPU process; the rendezvous
comes from the job environment), and a plain single process. NCCL is used on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import gc
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _export_launcher_env(need_group: bool) -> None:
    """Make the ``env://`` rendezvous variables exist, whoever launched us."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return  # torchrun or the deepspeed launcher
    import submitit

    try:
        ntasks = submitit.JobEnvironment().num_tasks
    except RuntimeError:  # not inside a submitit job
        ntasks = 1
    if ntasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    elif need_group:  # one process that still needs a group of its own (DeepSpeed)
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MASTER_PORT") or str(_free_port()))


def init(use_deepspeed: bool, threads: int = 0) -> DistEnv:
    """Join (or create) the process group. DeepSpeed always needs one, even for a single process.
    ``threads``: CPU threads for this process (0: its share of the node's cores)."""
    _export_launcher_env(need_group=use_deepspeed)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if torch.cuda.is_available():
        # Not CUDA_VISIBLE_DEVICES: Slurm may already have narrowed it, and NCCL wants to see the node's GPUs.
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # what DeepSpeed would detect anyway, minus its warning
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(threads or max(1, cpus // local_world))  # processes on a node share its cores
    if use_deepspeed:
        import deepspeed

        deepspeed.init_distributed(dist_backend=backend)
    elif world > 1:
        dist.init_process_group(backend=backend)
    return DistEnv(rank, world, local_rank, local_world, device)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def teardown() -> None:
    """Leave the process group. Callers drop their references to the model and optimizer first: with gloo,
    destroying the group while a DDP reducer is still being garbage-collected deadlocks (cpu-stack §3.2)."""
    gc.collect()
    if dist.is_initialized():
        barrier()
        dist.destroy_process_group()
