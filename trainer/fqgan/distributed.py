"""Process-group setup for torchrun (NCCL on CUDA, gloo on CPU) and the few collectives the loop needs."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(use_cuda: bool) -> DistInfo:
    """Join the process group torchrun describes in the environment; a plain run is world size 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, 0)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_across(info: DistInfo, values: torch.Tensor) -> torch.Tensor:
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values)
        values /= info.world_size
    return values


def sum_across(info: DistInfo, values: torch.Tensor) -> torch.Tensor:
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values)
    return values


def any_across(info: DistInfo, flag: bool, device: torch.device) -> bool:
    """True on every rank if it is true on any: ranks must agree on when to stop."""
    if not info.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
