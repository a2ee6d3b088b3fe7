"""Data-parallel training over several processes: `torchrun --nproc_per_node=N -m gankit.cli
train ...`, one process per GPU (NCCL) or per group of CPU cores (gloo).

Each rank draws its own batches, so the effective batch is N x train.batch_size. After every
backward pass the gradients are averaged across ranks, so every rank takes the same optimizer
step and the players stay identical; buffers (batch-norm statistics, spectral norm's vectors)
are sent from rank 0 after each iteration. Rank 0 alone writes the run folder.

Gradients are averaged by hand rather than through DistributedDataParallel, as stylegan2-ada
does: R1 and the gradient penalty differentiate D's gradient (DDP does not support double
backward), and G's step sends gradients through D without updating it, which DDP's reducer
would count as a D step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job: rank (0 writes the run folder), world size, and the
    local rank that picks its GPU."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> Ranks:
    """Join the process group that torchrun describes in the environment (WORLD_SIZE > 1), or
    use one already joined; a single process otherwise."""
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return Ranks()
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(),
                 int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def average_gradients(net: nn.Module, world: int) -> None:
    """Replace each gradient of `net` by its mean over the ranks (one flat all-reduce)."""
    if world <= 1:
        return
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    for grad, reduced in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        grad.copy_(reduced.view_as(grad))


def broadcast_state(net: nn.Module, world: int, buffers_only: bool = False) -> None:
    """Copy rank 0's parameters (unless `buffers_only`) and buffers to every rank."""
    if world <= 1:
        return
    tensors = [] if buffers_only else list(net.parameters())
    tensors += [b for b in net.buffers() if b.is_floating_point()]
    for tensor in tensors:
        dist.broadcast(tensor.data, src=0)


def mean_over_ranks(values: dict[str, float], world: int) -> dict[str, float]:
    """The mean of each logged number over the ranks (all ranks must pass the same keys)."""
    if world <= 1 or not values:
        return values
    names = list(values)  # the same order on every rank: the same code inserted them
    # On the GPU under NCCL, the CPU under gloo.
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    stacked = torch.tensor([values[n] for n in names], dtype=torch.float64, device=device)
    dist.all_reduce(stacked)
    return dict(zip(names, (stacked / world).tolist(), strict=True))


def broadcast_object(value, world: int):
    """Rank 0's `value` on every rank (a run folder's name, say)."""
    if world <= 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def teardown() -> int:
    """Leave the process group, if one was joined; returns this process's rank (0 alone)."""
    if not dist.is_initialized():
        return 0
    rank = dist.get_rank()
    dist.destroy_process_group()
    return rank
