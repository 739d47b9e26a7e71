"""The truncated-BPTT trainer. The step reads top to bottom:
lr, forward, divergence check, backward, clip, step, log, evaluate/checkpoint, stop."""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig
from .corpus.batching import batchify, bptt_chunks, n_chunks
from .corpus.dataset import Corpus, load_corpus
from .corpus.reading import CorpusError
from .device import resolve_device
from .model import RNNLM, detach_hidden

EVAL_BATCH = 10


class TrainHooks:
    """What the trainer tells the outside world; the run store and the CLI each subclass it."""

    def on_start(self, info: dict) -> None: ...
    def on_eval(self, metrics: dict) -> None: ...
    def on_checkpoint(self, kind: str, path: Path, meta: dict) -> None: ...
    def on_step(self, step: int, total_steps: int, epoch: int, loss: float) -> None: ...
    def should_stop(self) -> bool:
        return False


@dataclass
class TrainResult:
    status: str               # done | stopped | diverged
    message: str
    step: int
    best_valid_ppl: float
    test_ppl: float | None
    params: int
    vocab: int
    tokens_per_s: float
    wall_time: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate(model: RNNLM, grid: torch.Tensor, bptt: int) -> float:
    """Mean cross-entropy (nats per token) over a batchified split."""
    model.eval()
    hidden, total, count = model.init_hidden(grid.size(1)), 0.0, 0
    for inputs, targets in bptt_chunks(grid, bptt):
        _, loss, hidden = model(inputs, hidden, targets)
        total += loss.item() * targets.numel()
        count += targets.numel()
    return total / max(count, 1)


def safe_ppl(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")


def train(cfg: RunConfig, run_dir: Path, hooks: TrainHooks | None = None, corpus: Corpus | None = None) -> TrainResult:
    hooks = hooks or TrainHooks()
    t_cfg = cfg.train
    t_cfg.validate()
    run_dir = Path(run_dir)
    seed_everything(t_cfg.seed)
    device = resolve_device(t_cfg.device)
    corpus = corpus or load_corpus(cfg.corpus)
    cfg.model.vocab_size = len(corpus.vocab)

    train_grid = batchify(corpus.train, t_cfg.batch, device)        # (rows, B)
    valid_grid = batchify(corpus.valid, EVAL_BATCH, device)
    test_grid = batchify(corpus.test, EVAL_BATCH, device)
    if train_grid.size(0) < 2:
        raise CorpusError(f"the training split has {corpus.train.size} tokens: too few for batch {t_cfg.batch} "
                          f"(each of the {t_cfg.batch} streams needs at least 2 tokens); lower the batch size")
    if valid_grid.size(0) < 2 or test_grid.size(0) < 2:
        raise CorpusError(f"the valid/test splits ({corpus.valid.size}/{corpus.test.size} tokens) are too small "
                          f"to evaluate in {EVAL_BATCH} streams; give more text")

    model = RNNLM(cfg.model).to(device)
    params = model.num_params()
    if t_cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=t_cfg.lr)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=t_cfg.lr)
    steps_per_epoch = n_chunks(train_grid, t_cfg.bptt)
    total_steps = steps_per_epoch * t_cfg.epochs
    if t_cfg.max_steps:
        total_steps = min(total_steps, t_cfg.max_steps)
    hooks.on_start({"params": params, "device": str(device), "vocab": len(corpus.vocab),
                    "steps_per_epoch": steps_per_epoch, "total_steps": total_steps})

    def checkpoint(kind: str, meta: dict) -> None:
        path = save_checkpoint(run_dir / f"{kind}.pt", model, cfg, corpus.vocab, meta)
        hooks.on_checkpoint(kind, path, meta)

    checkpoint("init", {"step": 0, "epoch": 0})
    lr, step, best_valid, status, message = t_cfg.lr, 0, float("inf"), "done", ""
    train_time, train_tokens, last_finite = 0.0, 0, float("nan")
    evaluated = (-1, float("nan"))  # (step, valid loss) of the latest evaluation
    started = time.perf_counter()

    def report(epoch: float, loss_sum: float, loss_count: int) -> float:
        """Evaluate on valid, send the metrics row, keep last/best checkpoints; returns valid loss."""
        nonlocal best_valid, evaluated
        valid_loss = evaluate(model, valid_grid, t_cfg.bptt)
        model.train()
        metrics = {"step": step, "epoch": round(epoch, 4), "lr": lr,
                   "train_loss": loss_sum / max(loss_count, 1), "valid_loss": valid_loss,
                   "valid_ppl": safe_ppl(valid_loss),
                   "tokens_per_s": train_tokens / max(train_time, 1e-9),
                   "wall_time": time.perf_counter() - started}
        hooks.on_eval(metrics)
        meta = {"step": step, "epoch": metrics["epoch"], "valid_ppl": metrics["valid_ppl"]}
        if math.isfinite(valid_loss):  # weights that blew up never replace the last good checkpoint
            checkpoint("last", meta)
        if valid_loss < best_valid:
            best_valid = valid_loss
            checkpoint("best", meta)
        evaluated = (step, valid_loss)
        return valid_loss

    for epoch in range(1, t_cfg.epochs + 1):
        model.train()
        hidden = model.init_hidden(t_cfg.batch)
        loss_sum, loss_count, epoch_start_step = 0.0, 0, step
        for inputs, targets in bptt_chunks(train_grid, t_cfg.bptt):
            t0 = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = lr
            hidden = detach_hidden(hidden)  # carry h across chunks, but not the graph
            _, loss, hidden = model(inputs, hidden, targets)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                status = "diverged"
                message = (f"loss became {loss_value} at step {step + 1}; last finite loss {last_finite:.4g}. "
                           "The last good checkpoint is kept; try a smaller learning rate or clipping.")
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t_cfg.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t_cfg.clip)
            optimizer.step()
            step += 1
            last_finite = loss_value
            loss_sum += loss_value
            loss_count += 1
            train_tokens += targets.numel()
            train_time += time.perf_counter() - t0
            hooks.on_step(step, total_steps, epoch, loss_value)

            if t_cfg.eval_every and step % t_cfg.eval_every == 0 and step - epoch_start_step < steps_per_epoch:
                report(epoch - 1 + (step - epoch_start_step) / steps_per_epoch, loss_sum, loss_count)
            if t_cfg.max_steps and step >= t_cfg.max_steps:
                break
            if t_cfg.time_budget and time.perf_counter() - started >= t_cfg.time_budget:
                break
            if hooks.should_stop():
                status, message = "stopped", f"stopped by request at step {step}"
                break
        if status == "diverged":
            break
        if evaluated[0] == step:  # an eval_every evaluation just ran at this step (then max-steps or time stopped it)
            valid_loss = evaluated[1]
        else:
            valid_loss = report(epoch - 1 + (step - epoch_start_step) / max(steps_per_epoch, 1), loss_sum, loss_count)
        if math.isfinite(valid_loss):
            checkpoint(f"epoch_{epoch}", {"step": step, "epoch": epoch, "valid_ppl": safe_ppl(valid_loss)})
        if valid_loss > best_valid:  # report() already lowered best_valid if this epoch improved
            lr /= t_cfg.lr_decay
        if status == "stopped" or (t_cfg.max_steps and step >= t_cfg.max_steps) or \
                (t_cfg.time_budget and time.perf_counter() - started >= t_cfg.time_budget):
            break

    test_ppl = None
    best_path = run_dir / "best.pt"
    if best_path.exists():
        best_model, *_ = load_checkpoint(best_path, device)
        test_ppl = safe_ppl(evaluate(best_model, test_grid, t_cfg.bptt))
    return TrainResult(status=status, message=message or f"finished after {step} steps", step=step,
                       best_valid_ppl=safe_ppl(best_valid), test_ppl=test_ppl, params=params,
                       vocab=len(corpus.vocab), tokens_per_s=train_tokens / max(train_time, 1e-9),
                       wall_time=time.perf_counter() - started)
