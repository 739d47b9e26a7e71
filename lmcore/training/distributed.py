"""Training in more than one process: torch.distributed with DistributedDataParallel.

Launched by torchrun, which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT:

    torchrun --nproc_per_node 2 -m lmcore train --corpus story.txt --batch 40 --distributed

`--batch` stays the global number of streams. The training grid is batchified once, as in one
process, and rank r takes its own contiguous slice of the columns:

            column 0  1  2  3 | 4  5  6  7        (B = 8, world size 2)
    row 0:       a  g  m  s | y  …             rank 0: columns 0-3, rank 1: columns 4-7
    row 1:       b  h  n  t | z  …

so the ranks together train exactly the streams one process with batch B would. Each rank's loss is
the mean over its T × B/world tokens; DDP averages the gradients, which is the gradient of the mean
over all T × B tokens: the same step, up to the order of float sums. Rank 0 alone writes checkpoints
and the run store; last.pt holds the whole (L, B, H) hidden state, gathered from the ranks, so a run
resumes with any number of processes, or one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1 or dist.is_initialized()


SINGLE = DistInfo()


def launched() -> bool:
    """True under torchrun (or any launcher that sets the env:// variables)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def setup(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes: NCCL when the ranks train on CUDA GPUs, gloo otherwise."""
    if not launched():
        raise ValueError("--distributed needs a launcher: torchrun --nproc_per_node N -m lmcore train ... "
                         "--distributed (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT are not set)")
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return info


def teardown(synchronise: bool = True) -> None:
    """Leave the process group. After a normal run every rank first waits for the others: a gloo rank that
    tears down while rank 0 is still finishing (test evaluation, store writes) can abort the process."""
    if dist.is_initialized():
        if synchronise:
            dist.barrier()
        dist.destroy_process_group()


def rank_device(device: torch.device, info: DistInfo) -> torch.device:
    """One GPU per local rank: cuda -> cuda:LOCAL_RANK."""
    if info.active and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def shard_columns(grid: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """(rows, B) -> (rows, B / world): this rank's contiguous block of streams."""
    if not info.active:
        return grid
    per = grid.size(1) // info.world
    return grid[:, info.rank * per:(info.rank + 1) * per].contiguous()


def check_batch(batch: int, info: DistInfo) -> None:
    if batch % info.world:
        raise ValueError(f"batch {batch} does not split evenly over {info.world} processes; "
                         f"use a multiple of {info.world}")


def gather_columns(t: torch.Tensor, info: DistInfo, dim: int = 1) -> torch.Tensor:
    """Every rank's block of streams, joined along dim in rank order (the whole batch)."""
    if not info.active:
        return t
    parts = [torch.empty_like(t) for _ in range(info.world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=dim)


def all_mean_and_flag(values: torch.Tensor, flag: bool, info: DistInfo) -> tuple[torch.Tensor, bool]:
    """One collective: the mean of `values` over the ranks, and whether rank 0 raised `flag`."""
    if not info.active:
        return values, flag
    packed = torch.cat([values.double().flatten(),
                        values.new_tensor([1.0 if flag and info.main else 0.0], dtype=torch.float64)])
    dist.all_reduce(packed)
    return (packed[:-1] / info.world).to(values.dtype), bool(packed[-1].item() > 0)


def _collective_device() -> torch.device:
    """NCCL reduces CUDA tensors only; gloo, CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def from_rank0(value: int, info: DistInfo) -> int:
    """Rank 0's integer on every rank (a run id, or -1 when rank 0 refused: the others stop instead of hanging)."""
    if not info.active:
        return value
    t = torch.tensor([value if info.main else 0], dtype=torch.int64, device=_collective_device())
    dist.all_reduce(t)
    return int(t.item())
