"""Cores that come free go to the runs still training, without changing what any run computes.

Two slots on two cores train a lineup of three runs one thread each, and the last one alone leaves a core idle for
its last third. A job's hooks say how many threads it may use now (runs.jobs.StoreHooks.threads); the trainer takes
them before each step where a step gives the same numbers to the bit on any number of threads (`same_on_any_threads`),
and evaluates on the threads it started with, since some evaluations split their sums by thread (the GRU's, the tanh
Elman's and the IRNN's valid perplexities moved in the 7th or 8th digit from 1 thread to 2): so a run's numbers never
depend on what else ran beside it.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch

from lmcore.nn.model import RNNLM


def same_on_any_threads(model: RNNLM, device: torch.device) -> bool:
    """Whether a training step gives the same weights to the bit on any number of threads: on the CPU with the C++
    softmax (float32; its bias gradient summed in a fixed order), through the C++ loops (PyTorch's LSTM and GRU, the
    tanh and ReLU Elman networks), the Elman cells (the σ Elman's) or the FFNN, whose other products are ATen's.
    tests/test_thread_share.py holds each preset of the Train page to it, and the LSTM with the adaptive softmax.
    Not PyTorch's fused modules (oneDNN's LSTM, where lmcore does not take its loop), nor the LSTM variants' and
    Cho's GRU's cells: not measured."""
    if device.type != "cpu" or not getattr(model, "native_loss", False):
        return False
    cfg = model.cfg
    return (bool(getattr(model, "native_training", False)) or cfg.arch == "ffnn"
            or (cfg.arch in ("elman", "irnn") and not cfg.uses_fused))


class ThreadShare:
    """The trainer's threads: as the hooks ask before each step where that cannot change the run, the threads it
    started with for every evaluation."""

    def __init__(self, ask: Callable[[], int | None] | None):
        self.start = torch.get_num_threads()
        self.ask = ask  # None: the run keeps its threads

    def before_step(self) -> None:
        wanted = self.ask() if self.ask else None
        if wanted and wanted != torch.get_num_threads():
            torch.set_num_threads(wanted)

    @contextlib.contextmanager
    def evaluating(self):
        """The threads the run started with, for an evaluation; the step's again after it."""
        now = torch.get_num_threads()
        self.restore()
        try:
            yield
        finally:
            if torch.get_num_threads() != now:
                torch.set_num_threads(now)

    def restore(self) -> None:
        if torch.get_num_threads() != self.start:
            torch.set_num_threads(self.start)
