"""Where a run is, in plain numbers, and the random number generators' states: what last.pt keeps, besides the
weights, the optimizer and the hidden state, so that a resumed run takes exactly the steps the uninterrupted one would.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch

# Settings that change the steps taken; a run resumes only under the same ones. The others (epochs,
# max_steps, time_budget, device, threads) only say where to stop or where to run.
TRAJECTORY_FIELDS = ("bptt", "batch", "optimizer", "lr", "clip", "eval_every", "lr_decay", "seed", "bf16")


@dataclass
class Position:
    """Where training is, in plain numbers: enough, with the tensors beside it, to carry on exactly."""
    epoch: int = 1              # the epoch in progress (1-based); epochs + 1 once all are done
    chunk: int = 0              # chunks of this epoch already trained
    step: int = 0               # optimizer steps so far
    lr: float = 0.0
    best_valid: float = math.inf       # lowest valid loss at an epoch's end or a cut: which weights best.pt holds
    best_scheduled: float = math.inf   # lowest valid loss at an epoch's end: decides lr decay. Live (eval_every)
                                       # evaluations and one made because a run was cut never change its course
    loss_sum: float = 0.0       # this epoch's training loss so far (for the mean in the metrics)
    loss_count: int = 0
    train_tokens: int = 0
    train_time: float = 0.0     # seconds spent in training steps (tokens/s)
    elapsed: float = 0.0        # wall time since the run began, pauses excluded
    last_finite: float = math.nan
    evaluated_step: int = -1    # step and valid loss of the latest evaluation
    evaluated_loss: float = math.nan

    def next_epoch(self, valid_loss: float, lr_decay: float) -> None:
        """The schedule: lr ÷ lr_decay when an epoch ends no better than the best earlier epoch end."""
        if valid_loss > self.best_scheduled:
            self.lr /= lr_decay
        self.best_scheduled = min(self.best_scheduled, valid_loss)
        self.epoch, self.chunk = self.epoch + 1, 0


def rng_state() -> dict:
    """Every random number generator's state, as tensors and numbers (loadable with weights_only=True)."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)},
             "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    # .cpu(): a checkpoint loaded with map_location=cuda puts these tensors on the GPU; RNG states live on the host
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])
