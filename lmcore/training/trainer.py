"""The truncated-BPTT trainer. The step reads top to bottom:
lr, forward, divergence check, backward, clip, step, log, evaluate/checkpoint, stop.

Device work stays on the device: the loss of each step is kept there, and its finiteness (divergence)
and the running mean are read back every LOSS_CHECK_EVERY steps and before every evaluation, one copy for
many steps (on the CPU, where a read costs nothing, every step, before backward as it always was).
With `dist_info` (lmcore.training.distributed, torchrun) the model runs under DistributedDataParallel on this
rank's block of streams; rank 0 alone writes checkpoints and reports to the hooks.

Resuming: every `last.pt` holds, besides the weights, the training state at that point (the
Position below, the optimizer state, the hidden state carried into the next chunk and the random
number generators). `train(..., resume_from=last.pt)` continues from there and takes exactly the
steps the uninterrupted run would have taken, so both end with the same metrics.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from lmcore.corpus.batching import batchify, bptt_chunks, n_chunks
from lmcore.corpus.dataset import Corpus
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.reading import CorpusError
from lmcore.nn.model import RNNLM, detach_hidden
from lmcore.training.checkpoints import (
    CheckpointError,
    load_checkpoint,
    model_from_payload,
    read_payload,
    save_checkpoint,
)
from lmcore.training.config import RunConfig
from lmcore.training.device import resolve_device
from lmcore.training.distributed import (
    SINGLE,
    DistInfo,
    all_mean_and_flag,
    check_batch,
    gather_columns,
    rank_device,
    shard_columns,
)

EVAL_BATCH = 10
LOSS_CHECK_EVERY = 25  # steps between reads of the losses kept on a GPU (divergence check, running mean)
BLOW_UP_FACTOR = 10  # a run whose best validation perplexity is over this many uniform guesses ends diverged
OVERFLOW_LOSS = 700.0  # exp() of a loss above this overflows a float: such a run ends diverged at once
CPU_LOSS_CHECK_EVERY = 1  # on the CPU a read costs nothing: every step (tests raise it to try the GPU's way)


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


# Settings that change the steps taken; a run resumes only under the same ones. The others (epochs,
# max_steps, time_budget, device, threads) only say where to stop or where to run.
TRAJECTORY_FIELDS = ("bptt", "batch", "optimizer", "lr", "clip", "eval_every", "lr_decay", "seed", "bf16")


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


def check_fits(corpus: Corpus, t_cfg) -> None:
    """The training split must fill one full chunk (τ + 1 rows of B streams); valid and test must be evaluable."""
    need = t_cfg.batch * (t_cfg.bptt + 1)
    if corpus.train.size < need:
        raise CorpusError(f"the training split has {corpus.train.size:,} tokens, too few for batch {t_cfg.batch} "
                          f"× τ {t_cfg.bptt} (one step needs {t_cfg.batch} streams of τ + 1 = {t_cfg.bptt + 1} "
                          f"tokens: {need:,}); lower the batch size or τ, or give more text")
    if corpus.valid.size < 2 * EVAL_BATCH or corpus.test.size < 2 * EVAL_BATCH:
        raise CorpusError(f"the valid/test splits ({corpus.valid.size}/{corpus.test.size} tokens) are too small "
                          f"to evaluate in {EVAL_BATCH} streams; give more text")


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
        # on CUDA the sum stays on the device (float64: the same numbers as Python's floats), one copy at the end
        total += (loss.double() if grid.is_cuda else loss.item()) * targets.numel()
        count += targets.numel()
    return float(total) / max(count, 1)


def safe_ppl(loss: float) -> float:
    return math.exp(loss) if loss < OVERFLOW_LOSS else float("inf")


def train(cfg: RunConfig, run_dir: Path, hooks: TrainHooks | None = None, corpus: Corpus | None = None,
          resume_from: Path | None = None, dist_info: DistInfo | None = None) -> TrainResult:
    """Train cfg's model on its corpus, checkpointing into run_dir; or carry on from `resume_from`.

    dist_info: this process's rank in a torch.distributed group (lmcore.training.distributed.setup); None: alone."""
    info = dist_info or SINGLE
    hooks = hooks if hooks is not None and info.main else TrainHooks()  # rank 0 alone reports
    t_cfg = cfg.train
    t_cfg.validate()
    check_batch(t_cfg.batch, info)
    run_dir = Path(run_dir)
    seed_everything(t_cfg.seed)
    device = rank_device(resolve_device(t_cfg.device), info)
    corpus = corpus or load_corpus(cfg.corpus)
    cfg.model.vocab_size = len(corpus.vocab)
    check_fits(corpus, t_cfg)
    if t_cfg.bf16 and device.type != "cuda":
        warnings.warn(f"bf16 autocast is for CUDA; ignored on {device.type}", RuntimeWarning, stacklevel=2)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if t_cfg.bf16 and device.type == "cuda" \
        else contextlib.nullcontext

    # (rows, B) in one process; under DDP this rank's contiguous block of B / world columns
    train_grid = shard_columns(batchify(corpus.train, t_cfg.batch, device), info)
    local_batch = train_grid.size(1)
    valid_grid = batchify(corpus.valid, EVAL_BATCH, device)
    test_grid = batchify(corpus.test, EVAL_BATCH, device)

    model = RNNLM(cfg.model).to(device)
    model.compile = t_cfg.compile  # used by the hand-written cells only (auto: on CUDA)
    params = model.num_params()
    if t_cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=t_cfg.lr)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=t_cfg.lr)
    steps_per_epoch = n_chunks(train_grid, t_cfg.bptt)
    total_steps = steps_per_epoch * t_cfg.epochs
    if t_cfg.max_steps:
        total_steps = min(total_steps, t_cfg.max_steps)

    pos, hidden = Position(lr=t_cfg.lr), None
    if resume_from is not None:
        pos, hidden = _restore(resume_from, cfg, model, optimizer, device, info)
    net = model  # what the step calls: the model, or DDP around it (which averages the gradients)
    if info.active:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    hooks.on_start({"params": params, "device": str(device), "vocab": len(corpus.vocab),
                    "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "resumed_at": pos.step})

    def checkpoint(kind: str, meta: dict, state: dict | None = None) -> None:
        if not info.main:
            return
        path = save_checkpoint(run_dir / f"{kind}.pt", model, cfg, corpus.vocab, meta, state)
        hooks.on_checkpoint(kind, path, meta)

    last_saved = None

    def save_last(meta: dict) -> None:
        """last.pt: the weights and everything needed to carry on from exactly here."""
        nonlocal last_saved
        where = (pos.step, pos.epoch, pos.chunk)
        if where == last_saved:
            return
        pos.elapsed = time.perf_counter() - started
        parts = list(hidden) if isinstance(hidden, tuple) else [hidden] if hidden is not None else []
        parts = [gather_columns(h, info) for h in parts]  # every rank's streams: the whole (L, B, H) state
        state = {"position": asdict(pos), "optimizer": optimizer.state_dict(), "rng": rng_state(),
                 "hidden": parts}
        checkpoint("last", meta, state)
        last_saved = where

    if resume_from is None:
        checkpoint("init", {"step": 0, "epoch": 0})
    status, message = "done", ""
    started = time.perf_counter() - pos.elapsed  # wall time counts on from where the run was
    session_start = time.perf_counter()          # a time budget counts from this start

    def report(epoch: float) -> float:
        """Evaluate on valid and send the metrics row; returns valid loss."""
        valid_loss = evaluate(model, valid_grid, t_cfg.bptt)
        model.train()
        metrics = {"step": pos.step, "epoch": round(epoch, 4), "lr": pos.lr,
                   "train_loss": pos.loss_sum / max(pos.loss_count, 1), "valid_loss": valid_loss,
                   "valid_ppl": safe_ppl(valid_loss),
                   "tokens_per_s": pos.train_tokens / max(pos.train_time, 1e-9),
                   "wall_time": time.perf_counter() - started}
        hooks.on_eval(metrics)
        pos.evaluated_step, pos.evaluated_loss = pos.step, valid_loss
        return valid_loss

    def overflowed(valid_loss: float) -> bool:
        """A validation loss whose perplexity overflows (or is not a number): weights no schedule brings back."""
        return not valid_loss < OVERFLOW_LOSS

    def blow_up_message(valid_ppl: float, why: str, kept: str = "the last good checkpoint is kept") -> str:
        clip = f"it was {t_cfg.clip:g}" if t_cfg.clip else "it was off; try 0.25"
        return (f"blew up at step {pos.step}: {why} (validation perplexity {valid_ppl:.4g}; a uniform guess scores "
                f"{len(corpus.vocab):,}); {kept}. Train it again with a lower learning rate (it was {t_cfg.lr:g}) "
                f"or clip the gradient norm ({clip}).")

    def out_of_time() -> bool:
        return bool(t_cfg.time_budget) and time.perf_counter() - session_start >= t_cfg.time_budget

    # The losses of the steps since the last read, still on the device, and the step of the first.
    check_every = CPU_LOSS_CHECK_EVERY if device.type == "cpu" and not info.active else LOSS_CHECK_EVERY
    pending: list[torch.Tensor] = []
    halt = False  # under DDP: rank 0 ran out of time or was asked to stop (agreed at each read)

    def read_losses() -> bool:
        """Copy the pending losses to the host (one sync; under DDP one all-reduce: their mean over the
        ranks, and rank 0's stop/time flag), add them to the running mean; False if one is not finite."""
        nonlocal status, message, halt
        if not pending:
            return True
        losses = torch.stack(pending).float()
        if info.active:
            losses, halt = all_mean_and_flag(losses, hooks.should_stop() or out_of_time(), info)
        first = pos.step + 1 - len(pending) + (not stepped)  # the step of pending[0]
        values = losses.tolist()
        pending.clear()
        for k, value in enumerate(values):
            if not math.isfinite(value):
                status = "diverged"
                message = (f"loss became {value} at step {first + k}; last finite loss {pos.last_finite:.4g}. "
                           "The last good checkpoint is kept; try a smaller learning rate or clipping.")
                pos.step = first + k - 1  # the steps after it trained on nothing worth keeping
                return False
            pos.last_finite = value
            pos.loss_sum += value
            pos.loss_count += 1
        return True

    stepped = True  # whether the newest pending loss's step has been counted in pos.step

    while pos.epoch <= t_cfg.epochs and not (t_cfg.max_steps and pos.step >= t_cfg.max_steps):
        epoch = pos.epoch
        model.train()
        if pos.chunk == 0:  # a fresh epoch: zero state, zero running loss
            hidden = model.init_hidden(local_batch)
            pos.loss_sum, pos.loss_count = 0.0, 0
        cut = False
        for inputs, targets in bptt_chunks(train_grid, t_cfg.bptt, first=pos.chunk):
            t0 = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = pos.lr
            hidden = detach_hidden(hidden)  # carry h across chunks, but not the graph
            with autocast():
                _, loss, hidden = net(inputs, hidden, targets)
            pending.append(loss.detach())  # stays on the device: no copy, no sync
            stepped = False
            if len(pending) >= check_every and not read_losses():  # CPU: every step, before backward
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t_cfg.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t_cfg.clip)
            optimizer.step()
            pos.step += 1
            pos.chunk += 1
            stepped = True
            pos.train_tokens += targets.numel() * info.world
            pos.train_time += time.perf_counter() - t0
            hooks.on_step(pos.step, total_steps, epoch, pos.last_finite)  # on a GPU: the latest loss read

            if t_cfg.eval_every and pos.step % t_cfg.eval_every == 0 and pos.chunk < steps_per_epoch:
                if not read_losses():
                    break
                # a live evaluation, for the curve only: it never gives best.pt nor decides the lr, so a run's
                # course and its test perplexity are the same with or without them
                valid_loss = report(epoch - 1 + pos.chunk / steps_per_epoch)
                if overflowed(valid_loss):
                    status, message = "diverged", blow_up_message(math.inf, "its perplexity overflowed")
                    break
                save_last({"step": pos.step, "epoch": round(epoch - 1 + pos.chunk / steps_per_epoch, 4),
                               "valid_ppl": safe_ppl(valid_loss)})
            if info.active:  # the ranks stop together, on rank 0's word, at a read
                if t_cfg.max_steps and pos.step >= t_cfg.max_steps:
                    cut = True
                    break
                if halt:
                    cut = True
                    if not out_of_time():
                        status, message = "stopped", f"stopped by request at step {pos.step}"
                    break
                continue
            if t_cfg.max_steps and pos.step >= t_cfg.max_steps or out_of_time():
                cut = True
                break
            if hooks.should_stop():
                status, message, cut = "stopped", f"stopped by request at step {pos.step}", True
                break
        if status != "diverged":
            read_losses()  # the steps since the last read, before anything is evaluated or saved
        if status == "diverged":
            break
        epoch_done = pos.chunk >= steps_per_epoch
        fraction = epoch - 1 + pos.chunk / max(steps_per_epoch, 1)
        # an evaluation may just have run at this step (then max-steps, time or a stop request cut the epoch)
        valid_loss = pos.evaluated_loss if pos.evaluated_step == pos.step else report(fraction)
        if overflowed(valid_loss):  # the last good checkpoint stays; nothing after it is worth keeping
            status, message = "diverged", blow_up_message(math.inf, "its perplexity overflowed")
            break
        meta = {"step": pos.step, "epoch": round(fraction, 4), "valid_ppl": safe_ppl(valid_loss)}
        if valid_loss < pos.best_valid:
            pos.best_valid = valid_loss
            checkpoint("best", meta)
        checkpoint(f"epoch_{epoch}", {**meta, "epoch": epoch})  # the weights at this epoch's end, or at the cut
        if epoch_done:
            # The schedule: lr ÷ lr_decay when an epoch ends no better than the best earlier epoch end.
            if valid_loss > pos.best_scheduled:
                pos.lr /= t_cfg.lr_decay
            pos.best_scheduled = min(pos.best_scheduled, valid_loss)
            pos.epoch, pos.chunk, hidden = epoch + 1, 0, None
        save_last(meta)
        if cut or (halt if info.active else out_of_time()):
            break

    if status == "done" and pos.best_valid > math.log(BLOW_UP_FACTOR * len(corpus.vocab)):
        status, message = "diverged", blow_up_message(
            safe_ppl(pos.best_valid), f"it never got below {BLOW_UP_FACTOR}× a uniform guess", "no checkpoint is usable")
    test_ppl = None
    best_path = run_dir / "best.pt"
    if info.main and best_path.exists():
        best_model, *_ = load_checkpoint(best_path, device)
        test_ppl = safe_ppl(evaluate(best_model, test_grid, t_cfg.bptt))
    return TrainResult(status=status, message=message or f"finished after {pos.step} steps", step=pos.step,
                       best_valid_ppl=safe_ppl(pos.best_valid), test_ppl=test_ppl, params=params,
                       vocab=len(corpus.vocab), tokens_per_s=pos.train_tokens / max(pos.train_time, 1e-9),
                       wall_time=time.perf_counter() - started)


def _restore(path: Path, cfg: RunConfig, model: RNNLM, optimizer, device,
             info: DistInfo = SINGLE) -> tuple[Position, object]:
    """Load weights, optimizer, position, hidden state and RNG states saved by a run with the same settings."""
    payload = read_payload(path, device)
    state = payload.get("train_state")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds no training state to resume from (only last.pt does)")
    saved, _, _ = model_from_payload(payload, path, device)
    saved_cfg = RunConfig.from_dict(payload["config"])
    differ = [f"model.{f.name}" for f in fields(cfg.model) if getattr(cfg.model, f.name) != getattr(saved.cfg, f.name)]
    differ += [f"train.{k}" for k in TRAJECTORY_FIELDS if getattr(cfg.train, k) != getattr(saved_cfg.train, k)]
    differ += ["corpus"] * (saved_cfg.corpus != cfg.corpus)
    if differ:
        raise CheckpointError(f"{path}: was saved with other settings ({', '.join(differ)}); a run resumes only "
                              "with the settings it started with")
    model.load_state_dict(saved.state_dict())
    try:
        optimizer.load_state_dict(state["optimizer"])
        pos = Position(**{f.name: state["position"][f.name] for f in fields(Position)})
        hidden = [shard_columns(h.to(device), info) for h in state["hidden"]]  # (L, B, H): this rank's columns
        hidden = tuple(hidden) if cfg.model.arch == "lstm" and hidden else hidden[0] if hidden else None
        set_rng_state(state["rng"])  # last: building the model above drew random numbers
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: its training state is incomplete or damaged ({type(err).__name__}: "
                              f"{err})") from None
    return pos, hidden
