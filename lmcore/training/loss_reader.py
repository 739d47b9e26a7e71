"""The training losses, read back from the device in batches: each read costs a sync (under DDP an all-reduce),
so the losses of many steps stay on the device and are copied together."""
from __future__ import annotations

import math

import torch

from lmcore.training.distributed import DistInfo, all_mean_and_flag
from lmcore.training.run_state import Position
from lmcore.training.stopping import Stopping


class LossReader:
    """Keeps each step's loss on the device; a read adds them to the running mean (pos.loss_sum / loss_count) and
    finds divergence, the first loss that is not finite."""

    def __init__(self, every: int, info: DistInfo):
        self.every = every    # steps between reads (1 on the CPU, where a read costs nothing)
        self.info = info
        self.pending: list[torch.Tensor] = []   # the losses of the steps since the last read, each ()
        self.halt = False     # under DDP: rank 0 ran out of time or was asked to stop (agreed at each read)

    def add(self, loss: torch.Tensor) -> None:
        self.pending.append(loss.detach())  # no copy, no sync

    def due(self) -> bool:
        return len(self.pending) >= self.every

    def read(self, pos: Position, newest: int, stopping: Stopping) -> bool:
        """Copy the pending losses to the host (one sync; under DDP one all-reduce: their mean over the ranks, and
        rank 0's stop/time flag) and count them; newest: the step of the latest. False if one is not finite: the
        run is then diverged and pos.step the step before it."""
        if not self.pending:
            return True
        losses = torch.stack(self.pending).float()  # (n,)
        if self.info.active:
            losses, self.halt = all_mean_and_flag(losses, stopping.wanted(), self.info)
        first = newest + 1 - len(self.pending)  # the step of pending[0]
        values = losses.tolist()
        self.pending.clear()
        for k, value in enumerate(values):
            if not math.isfinite(value):
                stopping.diverge(f"loss became {value} at step {first + k}; last finite loss {pos.last_finite:.4g}. "
                                 "The last good checkpoint is kept; try a smaller learning rate or clipping.")
                pos.step = first + k - 1  # the steps after it trained on nothing worth keeping
                return False
            pos.last_finite = value
            pos.loss_sum += value
            pos.loss_count += 1
        return True
