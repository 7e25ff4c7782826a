"""Process-group setup for torchrun (NCCL on CUDA, gloo on CPU) and the few collectives the loop needs."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

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


class DistributedError(RuntimeError):
    """The ranks could not meet or a collective could not complete in time."""


def setup(use_cuda: bool, timeout_s: float) -> DistInfo:
    """Join the process group torchrun describes in the environment; a plain run is world size 1.

    `timeout_s` bounds the rendezvous and every collective: a rank that never arrives, or one that
    hangs, fails the run with an error instead of leaving the others waiting forever.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, 0)
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        # NCCL enforces the timeout only with asynchronous error handling (torch 1.x name, then 2.x name).
        os.environ.setdefault("NCCL_ASYNC_ERROR_HANDLING", "1")
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    try:
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(seconds=timeout_s))
    except Exception as error:
        raise DistributedError(f"rank {rank} of {world} could not join the process group at {where} "
                               f"within {timeout_s:g} s (device.dist_timeout_s): {error}") from error
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
