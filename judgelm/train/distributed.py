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

from judgelm.train import jit_locks


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


def visible_gpu(local_rank: int, n_visible: int) -> int:
    """The index, among the GPUs this process can see, of the one it uses. Sites that bind one GPU per task show
    each task only its own GPU (index 0) while ``LOCAL_RANK`` still counts the tasks on the node."""
    return local_rank % n_visible


def collective_device(backend: str) -> torch.device:
    """Where a collective's tensors must live for ``backend`` (``nccl``, ``gloo`` or ``cpu:gloo,cuda:nccl``):
    NCCL reduces CUDA tensors only ("No backend type associated with device type cpu"), so CPU is used only
    where the backend serves it."""
    if ":" in backend:
        served = [part.split(":")[0] for part in backend.split(",")]
    else:
        served = dist.Backend.backend_capability.get(backend, ["cpu"])
    return torch.device("cpu" if "cpu" in served else served[0])


def init(use_deepspeed: bool, threads: int = 0) -> DistEnv:
    """Join (or create) the process group. DeepSpeed always needs one, even for a single process.
    ``threads``: CPU threads for this process (0: its share of the node's cores)."""
    _export_launcher_env(need_group=use_deepspeed)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if torch.cuda.is_available():
        # Not CUDA_VISIBLE_DEVICES: Slurm may already have narrowed it, and NCCL wants to see the node's GPUs.
        device = torch.device("cuda", visible_gpu(local_rank, torch.cuda.device_count()))
        torch.cuda.set_device(device)
        # DeepSpeed opens cuda:LOCAL_RANK as it finds it: "invalid device ordinal" where a task sees one GPU.
        os.environ["LOCAL_RANK"] = str(device.index)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # what DeepSpeed would detect anyway, minus its warning
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(threads or max(1, cpus // local_world))  # processes on a node share its cores
    if use_deepspeed:
        import deepspeed

        jit_locks.clear_stale()  # else a lock left by a killed job stalls DeepSpeed's op build forever
        deepspeed.init_distributed(dist_backend=backend)
    elif world > 1:
        dist.init_process_group(backend=backend)
    return DistEnv(rank, world, local_rank, local_world, device)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, reduced on the device the process group's backend serves; returned on ``t``'s device."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        on = t.to(collective_device(dist.get_backend()))
        dist.all_reduce(on)
        return on.to(t.device)
    return t


def rank_and_world() -> tuple[int, int]:
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


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
