"""The truncated-BPTT trainer. The step reads top to bottom:
lr, forward, divergence check, backward, clip, step, log, evaluate/checkpoint, stop.

Device work stays on the device: the loss of each step is kept there, and its finiteness (divergence)
and the running mean are read back every LOSS_CHECK_EVERY steps and before every evaluation, one copy for
many steps (on the CPU, where a read costs nothing, every step, before backward as it always was).
With `dist_info` (lmcore.training.distributed, torchrun) the model runs under DistributedDataParallel on this
rank's block of streams; rank 0 alone writes checkpoints and reports to the hooks.

Resuming: every `last.pt` holds, besides the weights, the training state at that point (the
Position, the optimizer state, the hidden state carried into the next chunk and the random
number generators). `train(..., resume_from=last.pt)` continues from there and takes exactly the
steps the uninterrupted run would have taken, so both end with the same metrics.

The bookkeeping lives beside it: loss_reader (the losses read back from the device), run_checkpoints (what the run
writes, and carrying on from it), run_state (Position, RNG states) and stopping (why a run ends, its clocks).
"""
from __future__ import annotations

import contextlib
import math
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmcore.corpus.batching import batchify, bptt_chunks, n_chunks
from lmcore.corpus.dataset import Corpus
from lmcore.corpus.loading import load_corpus
from lmcore.corpus.reading import CorpusError
from lmcore.nn.model import RNNLM, build_model, detach_hidden
from lmcore.training.allocator import keep_freed_memory
from lmcore.training.checkpoints import load_checkpoint
from lmcore.training.config import RunConfig, TrainConfig
from lmcore.training.device import bf16_native, native_loss_pays, native_pays, resolve_device
from lmcore.training.distributed import SINGLE, DistInfo, check_batch, rank_device, shard_columns
from lmcore.training.loss_reader import LossReader
from lmcore.training.optimizers import Optimizer, make_optimizer
from lmcore.training.run_checkpoints import RunCheckpoints
from lmcore.training.run_state import TRAJECTORY_FIELDS, Position, rng_state, set_rng_state
from lmcore.training.stopping import Clock, Stopping
from lmcore.training.thread_share import ThreadShare, same_on_any_threads

__all__ = ["TrainHooks", "TrainResult", "Position", "EVAL_BATCH", "LOSS_CHECK_EVERY", "CPU_LOSS_CHECK_EVERY",
           "BLOW_UP_FACTOR", "OVERFLOW_LOSS", "TRAJECTORY_FIELDS", "rng_state", "set_rng_state", "check_fits",
           "seed_everything", "evaluate", "safe_ppl", "train"]

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
    def threads(self) -> int | None:  # the threads training may take now (thread_share.py); None: as it has
        return None


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


def check_fits(corpus: Corpus, train_cfg: TrainConfig) -> None:
    """The training split must fill one full chunk (τ + 1 rows of B streams); valid and test must be evaluable."""
    need = train_cfg.batch * (train_cfg.bptt + 1)
    if corpus.train.size < need:
        raise CorpusError(f"the training split has {corpus.train.size:,} tokens, too few for batch {train_cfg.batch} "
                          f"× τ {train_cfg.bptt} (one step needs {train_cfg.batch} streams of τ + 1 = "
                          f"{train_cfg.bptt + 1} tokens: {need:,}); lower the batch size or τ, or give more text")
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
    for inputs, targets in bptt_chunks(grid, bptt):  # (τ, B) each
        _, loss, hidden = model(inputs, hidden, targets, need_logits=False)
        # on CUDA the sum stays on the device (float64: the same numbers as Python's floats), one copy at the end
        total += (loss.double() if grid.is_cuda else loss.item()) * targets.numel()
        count += targets.numel()
    return float(total) / max(count, 1)


def safe_ppl(loss: float) -> float:
    return math.exp(loss) if loss < OVERFLOW_LOSS else float("inf")


def train(cfg: RunConfig, run_dir: Path, hooks: TrainHooks | None = None, corpus: Corpus | None = None,
          resume_from: Path | None = None, dist_info: DistInfo | None = None) -> TrainResult:
    """Train cfg's model on its corpus, checkpointing into run_dir; or carry on from `resume_from`.

    dist_info: this process's rank in a torch.distributed group (lmcore.training.distributed.setup); None: alone.
    cfg itself is never changed: the run trains a copy sized for the corpus's vocabulary."""
    info = dist_info or SINGLE
    keep_freed_memory()  # each step's megabytes stay in the process, not faulted in afresh (allocator.py)
    hooks = hooks if hooks is not None and info.main else TrainHooks()  # rank 0 alone reports
    cfg.train.validate()
    check_batch(cfg.train.batch, info)
    run_dir = Path(run_dir)
    seed_everything(cfg.train.seed)
    device = rank_device(resolve_device(cfg.train.device), info)
    corpus = corpus or load_corpus(cfg.corpus)
    cfg = cfg.with_vocab(len(corpus.vocab))  # a copy: the caller's config stays as it was given
    train_cfg = cfg.train
    check_fits(corpus, train_cfg)
    autocast = _autocast(train_cfg.bf16, device)
    # (rows, B) in one process; under DDP this rank's contiguous block of B / world columns
    train_grid = shard_columns(batchify(corpus.train, train_cfg.batch, device), info)
    valid_grid = batchify(corpus.valid, EVAL_BATCH, device)  # (rows, EVAL_BATCH)
    model, optimizer = _model_and_optimizer(cfg, device)
    steps_per_epoch = n_chunks(train_grid, train_cfg.bptt)
    total_steps = min(steps_per_epoch * train_cfg.epochs, train_cfg.max_steps or math.inf)  # max_steps 0: no bound

    saved = RunCheckpoints(run_dir, model, optimizer, cfg, corpus.vocab, hooks.on_checkpoint, info)
    pos, hidden = Position(lr=train_cfg.lr), None
    if resume_from is not None:
        pos, hidden = saved.restore(resume_from, device)
    net = _distributed(model, device, info)  # what the step calls: DDP around the model averages the gradients
    hooks.on_start({"params": model.num_params(), "device": str(device), "vocab": len(corpus.vocab),
                    "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "resumed_at": pos.step})
    if resume_from is None:
        saved.write("init", {"step": 0, "epoch": 0})
    clock = Clock(pos.elapsed, train_cfg.time_budget)
    stopping = Stopping(train_cfg, len(corpus.vocab), clock, hooks.should_stop, info.active)
    reader = LossReader(CPU_LOSS_CHECK_EVERY if device.type == "cpu" and not info.active else LOSS_CHECK_EVERY, info)
    # more threads as cores come free, where that cannot change a step's numbers (DDP's ranks keep theirs)
    share = ThreadShare(hooks.threads if same_on_any_threads(model, device) and not info.active else None)
    evaluation = Evaluation(model, valid_grid, train_cfg.bptt, hooks, clock, saved, stopping, share)

    while pos.epoch <= train_cfg.epochs and not stopping.steps_done(pos.step):
        epoch, cut = pos.epoch, False
        model.train()
        if pos.chunk == 0:  # a fresh epoch: h_0 = 0, zero running loss
            hidden = model.init_hidden(train_grid.size(1))
            pos.loss_sum, pos.loss_count = 0.0, 0
        for inputs, targets in bptt_chunks(train_grid, train_cfg.bptt, first=pos.chunk):  # (τ, B) each
            share.before_step()
            t0 = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = pos.lr
            hidden = detach_hidden(hidden)  # carry h across chunks, but not the graph
            optimizer.zero_grad(set_to_none=True)  # before the forward: the last step's gradients are not held with it
            with autocast():
                # loss: mean cross-entropy over the chunk's targets, the logits made a chunk of rows at a time
                _, loss, hidden = net(inputs, hidden, targets, need_logits=False)
            reader.add(loss)
            if reader.due() and not reader.read(pos, pos.step + 1, stopping):  # CPU: every step, before backward
                break
            loss.backward()
            optimizer.clip_and_step(train_cfg.clip)  # 0: no clipping
            pos.step, pos.chunk = pos.step + 1, pos.chunk + 1
            pos.train_tokens += targets.numel() * info.world
            pos.train_time += time.perf_counter() - t0
            hooks.on_step(pos.step, total_steps, epoch, pos.last_finite)  # on a GPU: the latest loss read

            if train_cfg.eval_every and pos.step % train_cfg.eval_every == 0 and pos.chunk < steps_per_epoch:
                if not reader.read(pos, pos.step, stopping):  # the losses first: the metrics row shows their mean
                    break
                if not evaluation.live(pos, hidden, epoch - 1 + pos.chunk / steps_per_epoch):
                    break
            if stopping.cut(pos.step, reader.halt):
                cut = True
                break

        # the epoch's end, or a cut. The steps since the last read first, before anything is evaluated or saved
        if stopping.diverged or not reader.read(pos, pos.step, stopping):
            break
        valid_loss, meta = evaluation.at_epoch_end(pos, epoch, epoch - 1 + pos.chunk / max(steps_per_epoch, 1))
        if stopping.diverged:  # it overflowed: the last good checkpoint stays; nothing after it is worth keeping
            break
        if pos.chunk >= steps_per_epoch:  # the epoch is done: the lr schedule, and a fresh h_0 next
            pos.next_epoch(valid_loss, train_cfg.lr_decay)
            hidden = None
        saved.write_last(pos, hidden, meta, clock)
        if cut or stopping.cut_at_epoch_end(reader.halt):
            break

    share.restore()  # the test evaluation, and whatever the caller does next, on the threads it gave
    if stopping.status == "done" and pos.best_valid > math.log(BLOW_UP_FACTOR * len(corpus.vocab)):
        stopping.blow_up(pos.step, f"it never got below {BLOW_UP_FACTOR}× a uniform guess", safe_ppl(pos.best_valid),
                         "no checkpoint is usable")
    return TrainResult(status=stopping.status,
                       message=stopping.message or stopping.finished(pos.step, steps_per_epoch),
                       step=pos.step, best_valid_ppl=safe_ppl(pos.best_valid),
                       test_ppl=_test_ppl(run_dir / "best.pt", corpus, train_cfg.bptt, device) if info.main else None,
                       params=model.num_params(), vocab=len(corpus.vocab),
                       tokens_per_s=pos.train_tokens / max(pos.train_time, 1e-9), wall_time=clock.wall())


@dataclass
class Evaluation:
    """The evaluations on the valid split and the checkpoints they decide. Each sends a metrics row to the hooks and
    is noted in the position; one whose perplexity overflows (or is not a number) ends the run diverged: those are
    weights no schedule brings back."""
    model: RNNLM
    grid: torch.Tensor  # (rows, EVAL_BATCH)
    bptt: int
    hooks: TrainHooks
    clock: Clock
    saved: RunCheckpoints
    stopping: Stopping
    share: ThreadShare

    def report(self, pos: Position, epoch: float) -> float:
        """Evaluate on valid and send the metrics row; returns valid loss."""
        with self.share.evaluating():
            valid_loss = evaluate(self.model, self.grid, self.bptt)
        self.model.train()
        metrics = {"step": pos.step, "epoch": round(epoch, 4), "lr": pos.lr,
                   "train_loss": pos.loss_sum / max(pos.loss_count, 1), "valid_loss": valid_loss,
                   "valid_ppl": safe_ppl(valid_loss),
                   "tokens_per_s": pos.train_tokens / max(pos.train_time, 1e-9),
                   "wall_time": self.clock.wall()}
        self.hooks.on_eval(metrics)
        pos.evaluated_step, pos.evaluated_loss = pos.step, valid_loss
        return valid_loss

    def live(self, pos: Position, hidden, epoch: float) -> bool:
        """An evaluation inside an epoch (eval_every), for the curve only: it never gives best.pt nor decides the lr,
        so a run's course and its test perplexity are the same with or without them. Then last.pt; False if the
        run diverged."""
        valid_loss = self.report(pos, epoch)
        if self._overflowed(valid_loss, pos):
            return False
        self.saved.write_last(pos, hidden, _meta(pos, epoch, valid_loss), self.clock)
        return True

    def at_epoch_end(self, pos: Position, epoch: int, fraction: float) -> tuple[float, dict]:
        """The valid loss at an epoch's end or a cut, best.pt if it is the lowest yet, and epoch_N.pt."""
        # an evaluation may just have run at this step (then max-steps, time or a stop request cut the epoch)
        valid_loss = pos.evaluated_loss if pos.evaluated_step == pos.step else self.report(pos, fraction)
        meta = _meta(pos, fraction, valid_loss)
        if self._overflowed(valid_loss, pos):
            return valid_loss, meta
        if valid_loss < pos.best_valid:
            pos.best_valid = valid_loss
            self.saved.write("best", meta)
        self.saved.write(f"epoch_{epoch}", {**meta, "epoch": epoch})  # the weights at this epoch's end, or at the cut
        return valid_loss, meta

    def _overflowed(self, valid_loss: float, pos: Position) -> bool:
        if valid_loss < OVERFLOW_LOSS:
            return False
        self.stopping.blow_up(pos.step, "its perplexity overflowed")
        return True


def _meta(pos: Position, epoch: float, valid_loss: float) -> dict:
    return {"step": pos.step, "epoch": round(epoch, 4), "valid_ppl": safe_ppl(valid_loss)}


def _autocast(bf16: bool, device: torch.device):
    """bfloat16 autocast where the device computes it natively (CUDA; a CPU with AVX-512 BF16 or AMX); elsewhere
    float32, with a warning. Parameters, optimizer state and the loss's reduction stay float32."""
    if bf16 and not bf16_native(device):
        warnings.warn(f"bf16 asked for, but this {device.type} has no native bfloat16 arithmetic; training in "
                      "float32", RuntimeWarning, stacklevel=3)
    if bf16 and bf16_native(device):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _model_and_optimizer(cfg: RunConfig, device: torch.device) -> tuple[RNNLM, Optimizer]:
    model = build_model(cfg.model).to(device)
    model.compile = cfg.train.compile  # used by the hand-written cells only (auto: on CUDA)
    bf16 = cfg.train.bf16 and bf16_native(device)
    model.native_training = native_pays(cfg.model, device, bf16, cfg.train.compile)
    model.native_loss = native_loss_pays(device, bf16)
    return model, make_optimizer(cfg.train.optimizer, model.parameters(), cfg.train.lr)


def _distributed(model: RNNLM, device: torch.device, info: DistInfo) -> torch.nn.Module:
    if not info.active:
        return model
    from torch.nn.parallel import DistributedDataParallel
    # an adaptive softmax's cluster that no target of a rank's step falls in gets no gradient on that rank
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=model.cfg.output == "adaptive")


def _test_ppl(best_path: Path, corpus: Corpus, bptt: int, device: torch.device) -> float | None:
    """The test perplexity of the best weights (None when no evaluation ever gave best.pt)."""
    if not best_path.exists():
        return None
    best_model, *_ = load_checkpoint(best_path, device)
    return safe_ppl(evaluate(best_model, batchify(corpus.test, EVAL_BATCH, device), bptt))  # (rows, EVAL_BATCH)
