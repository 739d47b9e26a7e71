"""Cores that come free go to the runs still training, without changing what any run computes.

Two slots on two cores train a lineup of three runs one thread each, and the last one alone leaves a core idle for
its last third. A job's hooks say how many threads it may use now (runs.jobs.StoreHooks.threads); the trainer takes
them before each step where a step gives the same numbers to the bit on 1 to SAME_UP_TO threads (`same_on_any_threads`),
and evaluates on the threads it started with, since some evaluations split their sums by thread (the GRU's, the tanh
Elman's and the IRNN's valid perplexities moved in the 7th or 8th digit from 1 thread to 2): so a run's numbers never
depend on what else ran beside it (only how far a run with a time budget gets). Never past SAME_UP_TO threads: MKL's
products gave other bytes from 8 threads on (a 350 × 10,000 · 10,000 × 200 product on a Zen 3 with MKL 2024.2;
every preset's run was equal to the bit at 2 and 4).
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch

from lmcore.nn.model import RNNLM

SAME_UP_TO = 4  # threads: the most a run widens to (a run started on more keeps its own)


def same_on_any_threads(model: RNNLM, device: torch.device) -> bool:
    """Whether a training step gives the same weights to the bit on any number of threads up to SAME_UP_TO: on the
    CPU with the C++ softmax (float32; its bias gradient summed in a fixed order), through the C++ loops (PyTorch's
    LSTM and GRU, the tanh and ReLU Elman networks), the σ Elman's cells or the FFNN, whose other products are
    ATen's. tests/test_thread_share.py holds each preset of the Train page to it, and the LSTM with the adaptive
    softmax. Not PyTorch's fused modules (oneDNN's LSTM, where lmcore does not take its loop), the LSTM variants',
    Cho's GRU's or a fusable Elman's Python cells, nor a step compiled by torch.compile: not measured."""
    if device.type != "cpu" or not getattr(model, "native_loss", False) or getattr(model, "compile", "off") == "on":
        return False
    cfg = model.cfg
    return (bool(getattr(model, "native_training", False)) or cfg.arch == "ffnn"
            or (cfg.arch == "elman" and not cfg.fusable))


class ThreadShare:
    """The trainer's threads: as the hooks ask before each step where that cannot change the run, the threads it
    started with for every evaluation."""

    def __init__(self, ask: Callable[[], int | None] | None):
        self.start = torch.get_num_threads()
        self.ask = ask  # None: the run keeps its threads

    def before_step(self) -> None:
        wanted = self.ask() if self.ask else None
        wanted = wanted and min(wanted, max(self.start, SAME_UP_TO))
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
