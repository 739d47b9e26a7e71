"""How a run ends: done, or the first reason it was cut (max steps, the time budget, a stop request, a loss that is
not finite, weights that blew up), and the clocks those reasons are measured on."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lmcore.training.config import TrainConfig


@dataclass
class Clock:
    """Two clocks: the run's wall time, counting on from where a resumed run was (pauses excluded), and this
    session's, which a time budget counts on (a resumed run gets its whole budget again)."""
    elapsed: float              # the run's wall time before this session
    budget: float               # seconds; 0: no bound
    started: float = field(init=False)
    session_start: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = time.perf_counter() - self.elapsed
        self.session_start = time.perf_counter()

    def wall(self) -> float:
        return time.perf_counter() - self.started

    def out_of_time(self) -> bool:
        return bool(self.budget) and time.perf_counter() - self.session_start >= self.budget


CUT_SHORT = "ended at its "  # a done run's message when its max-steps or time budget ended it before its epochs


@dataclass
class Stopping:
    """The run's status (done | stopped | diverged) and message, and whether it is cut after a step."""
    train_cfg: TrainConfig
    vocab_size: int                     # a uniform guess's perplexity: the yardstick of a blow-up
    clock: Clock
    should_stop: Callable[[], bool]     # the hooks' stop request (rank 0's under DDP: the others never ask)
    distributed: bool                   # under DDP the ranks stop together, on rank 0's word at a loss read
    status: str = "done"
    message: str = ""

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def steps_done(self, step: int) -> bool:
        return bool(self.train_cfg.max_steps) and step >= self.train_cfg.max_steps

    def wanted(self) -> bool:
        """Rank 0's word under DDP, sent to the others at each loss read: asked to stop, or out of time."""
        return self.should_stop() or self.clock.out_of_time()

    def cut(self, step: int, halt: bool) -> bool:
        """Whether the run stops after this step. halt: rank 0's word at the latest loss read (under DDP)."""
        if self.steps_done(step):
            return True
        if self.distributed:
            if halt and not self.clock.out_of_time():
                self.stop(step)
            return halt
        if self.clock.out_of_time():
            return True
        if self.should_stop():
            self.stop(step)
            return True
        return False

    def cut_at_epoch_end(self, halt: bool) -> bool:
        """Time or rank 0's word may also end a run at an epoch's end (max steps end it in the loop's condition)."""
        return halt if self.distributed else self.clock.out_of_time()

    def finished(self, step: int, steps_per_epoch: int) -> str:
        """A done run's message: a full bar can hide that its max-steps or time budget ended it before its
        epochs, so that is said, and how far it got."""
        epochs = self.train_cfg.epochs
        if step >= steps_per_epoch * epochs:
            return f"finished after {step} steps"
        why = "max-steps" if self.steps_done(step) else "time budget"
        return f"{CUT_SHORT}{why}, {step} steps: {step / max(steps_per_epoch, 1):.2g} of its {epochs} epochs"

    def stop(self, step: int) -> None:
        self.status, self.message = "stopped", f"stopped by request at step {step}"

    def diverge(self, message: str) -> None:
        self.status, self.message = "diverged", message

    def blow_up(self, step: int, why: str, valid_ppl: float = math.inf,
                kept: str = "the last good checkpoint is kept") -> None:
        """Diverged, with the two remedies: a lower learning rate, or clipping."""
        t = self.train_cfg
        clip = f"it was {t.clip:g}" if t.clip else "it was off; try 0.25"
        self.diverge(f"blew up at step {step}: {why} (validation perplexity {valid_ppl:.4g}; a uniform guess scores "
                     f"{self.vocab_size:,}); {kept}. Train it again with a lower learning rate (it was {t.lr:g}) "
                     f"or clip the gradient norm ({clip}).")
