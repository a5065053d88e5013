"""Training collectives run where the process group's backend can reduce, and each process finds its GPU among
the ones it can see."""

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from judgelm.train.distributed import all_reduce_sum, collective_device, visible_gpu


def test_nccl_groups_reduce_on_cuda_and_gloo_or_mixed_groups_on_cpu():
    assert collective_device("nccl") == torch.device("cuda")
    assert collective_device("gloo") == torch.device("cpu")
    assert collective_device("cpu:gloo,cuda:nccl") == torch.device("cpu")
    assert collective_device("cuda:nccl") == torch.device("cuda")


def test_a_task_bound_to_one_gpu_uses_index_zero_whatever_its_local_rank():
    assert [visible_gpu(r, 1) for r in range(4)] == [0, 0, 0, 0]
    assert [visible_gpu(r, 4) for r in range(4)] == [0, 1, 2, 3]


def _reduce(rank: int, port: int, out) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        t = torch.tensor([1.0 + rank, 10.0], dtype=torch.float64)
        r = all_reduce_sum(t)
        out[rank] = (r.device.type, r.dtype, r.tolist())
    finally:
        dist.destroy_process_group()


def test_all_reduce_sums_over_two_processes_and_returns_on_the_callers_device():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_reduce, args=(port, results), nprocs=2, join=True)
    assert dict(results) == {r: ("cpu", torch.float64, [3.0, 20.0]) for r in (0, 1)}
