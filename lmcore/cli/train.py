"""python -m lmcore train [--resume RUN] [--distributed]: one run trained in this process, reporting to the
run store and to the terminal."""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from lmcore.cli.common import add_corpus_flags, as_machine_owner, corpus_spec, find_run, json_line
from lmcore.corpus.loading import load_corpus
from lmcore.nn.architectures import (ACTIVATION_NAMES, ARCHS, BACKENDS, GRU_CONVENTIONS, LSTM_VARIANTS, OUTPUTS,
                                     ModelConfig)
from lmcore.runs import service
from lmcore.runs.jobs import StoreHooks
from lmcore.runs.store import RunStore
from lmcore.training import distributed
from lmcore.training.config import DEFAULT_LR, OPTIMIZERS, RunConfig, TrainConfig, check_threads
from lmcore.training.device import bf16_native, resolve_device
from lmcore.training.presets import PRESETS, run_config
from lmcore.training.trainer import train

MODEL_FLAGS = ("arch", "activation", "bias", "emb", "hidden", "layers", "dropout", "tied", "backend", "variant",
               "gru_convention", "window", "direct", "output")
TRAIN_FLAGS = ("bptt", "batch", "optimizer", "lr", "lr_decay", "clip", "epochs", "max_steps", "time_budget",
               "eval_every", "seed", "device", "threads", "compile", "bf16")


def add_parsers(command) -> None:
    m, t = ModelConfig(), TrainConfig()
    p = command("train", help="train one model (recorded in the run store)")
    add_corpus_flags(p)
    p.add_argument("--name", default="")
    # Model and training flags default to None, "not given": the run is built by presets.run_config from the
    # --preset (or the library's defaults, shown here) with only the given flags on top, as the Train page does.
    p.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="start from one of the Train page's presets: " + "; ".join(PRESETS))
    p.add_argument("--arch", choices=list(ARCHS), default=None, help=f"default {m.arch}")
    p.add_argument("--activation", choices=ACTIVATION_NAMES, default=None, help=f"Elman only (default {m.activation})")
    p.add_argument("--variant", type=str.lower, choices=list(LSTM_VARIANTS), default=None,
                   help="LSTM only (Greff et al. 2016): " + "; ".join(f"{k}: {v.description}" for k, v in LSTM_VARIANTS.items()))
    p.add_argument("--gru-convention", choices=list(GRU_CONVENTIONS), default=None,
                   help="GRU only: " + "; ".join(f"{k}: {d}" for k, d in GRU_CONVENTIONS.items()))
    p.add_argument("--window", type=int, default=None,
                   help=f"ffnn only: n, so the model reads the n − 1 previous words (default {m.window})")
    p.add_argument("--direct", action="store_const", const=True, default=None,
                   help="ffnn only: Bengio et al.'s direct connections, y = softmax(W h + D x + b2)")
    p.add_argument("--output", choices=list(OUTPUTS), default=None,
                   help=f"the output layer (default {m.output}): " + "; ".join(f"{k}: {d}" for k, d in OUTPUTS.items()))
    p.add_argument("--no-bias", dest="bias", action="store_const", const=False, default=None,
                   help="drop b1 and b2, as in the coursework")
    p.add_argument("--emb", type=int, default=None, help=f"default {m.emb}; with --tied, the hidden size")
    p.add_argument("--hidden", "--nhid", type=int, default=None, help=f"default {m.hidden}")
    p.add_argument("--layers", "--nlayers", type=int, default=None, help=f"default {m.layers}")
    p.add_argument("--dropout", type=float, default=None, help=f"default {m.dropout}")
    p.add_argument("--tied", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help=f"default {m.backend}: PyTorch's fused module where it has one, else the hand-written cells; "
                        "training in float32 on an AVX2 CPU takes lmcore's C++ loop for the LSTM, the GRU and the "
                        "tanh/ReLU Elman, faster there")
    p.add_argument("--bptt", type=int, default=None, help=f"default {t.bptt}")
    p.add_argument("--batch", "--batch-size", type=int, default=None, help=f"default {t.batch}")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help=f"default {t.optimizer}")
    p.add_argument("--lr", type=float, default=None,
                   help="default the preset's, else " + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_LR.items()))
    p.add_argument("--lr-decay", type=float, default=None,
                   help=f"lr ÷ this when an epoch ends no better than the best earlier epoch end (default {t.lr_decay:g})")
    p.add_argument("--clip", type=float, default=None, help=f"default {t.clip}")
    # None: "not given", so that --resume can tell a bound the user asked for from a default
    p.add_argument("--epochs", type=int, default=None, help=f"default {t.epochs}; with --resume, the new total")
    p.add_argument("--max-steps", type=int, default=None, help="default 0 (no bound)")
    p.add_argument("--time-budget", type=float, default=None, help="seconds (default 0: no bound)")
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="carry on a stopped, interrupted or finished run (its id or folder) from its last "
                        "checkpoint, with its own settings; only --epochs, --max-steps, --time-budget, --threads "
                        "and --json apply")
    p.add_argument("--eval-every", type=int, default=None,
                   help="steps between live evaluations inside an epoch, for the curve only (default 0: none)")
    p.add_argument("--seed", type=int, default=None, help=f"default {t.seed}")
    p.add_argument("--device", default=None, help="auto (CUDA, then MPS, then CPU; the default), cpu, cuda, cuda:1, mps")
    p.add_argument("--compile", choices=("auto", "on", "off"), default=None,
                   help="torch.compile the hand-written cells' step (auto, the default: on CUDA only; on: also on the CPU)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 autocast where the device computes it natively: CUDA, or a CPU with AVX-512 "
                        "BF16 or AMX (detected; float32 elsewhere, with a note). Default: on for the (fused) LSTM "
                        "on such a CPU, where it measured 1.5-2x faster at equal perplexity; --no-bf16: float32")
    p.add_argument("--distributed", action="store_true",
                   help="one rank of a torchrun group (DDP: NCCL on GPUs, gloo on the CPU); --batch is the "
                        "global batch, split over the ranks: torchrun --nproc_per_node N -m lmcore train ... "
                        "--distributed")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="folder for checkpoints (default: the run's folder in the store)")
    p.add_argument("--json", action="store_true", help="one JSON object per evaluation on stdout")


def cmd_train(a) -> int:
    if a.distributed:
        return cmd_train_distributed(a)
    if a.resume:
        return cmd_resume(a)
    return _train_new(a)


def train_config(a) -> RunConfig:
    """The run the flags describe, built by the same function as the Train page's runs."""
    given = lambda names: {k: getattr(a, k) for k in names if getattr(a, k) is not None}
    return run_config(a.preset, corpus_spec(a), model=given(MODEL_FLAGS), train=given(TRAIN_FLAGS), name=a.name)


def _bf16_here(device: str) -> bool:
    try:
        return bf16_native(resolve_device(device))
    except ValueError:  # a device this machine lacks: the run's own checks say so
        return True


def _train_new(a) -> int:
    cfg = train_config(a)
    if cfg.train.bf16 and not _bf16_here(cfg.train.device):
        print("note: --bf16 needs native bfloat16 arithmetic (CUDA, or a CPU with AVX-512 BF16 or AMX), which this "
              "device lacks; training in float32", file=sys.stderr)
    store = RunStore(a.home)
    out = Path(a.out) if a.out else None
    with as_machine_owner() as me:  # every check, then the slot and the row at once
        run_id, corpus = service.start_here(store, cfg, out=out, person=me)
    if getattr(a, "dist_info", None) is not None:  # torchrun: the other ranks wait for this run id
        distributed.from_rank0(run_id, a.dist_info)
        a.announced = True
    return _train_here(a, store, run_id, cfg, corpus, out or store.run_dir(run_id))


def cmd_train_distributed(a) -> int:
    """train --distributed, in every rank torchrun starts: rank 0 records the run and writes its checkpoints;
    the others train their block of streams and touch neither the store nor the run's folder."""
    if a.resume:
        raise ValueError("--resume does not go with --distributed yet; resume the run in one process")
    info = distributed.setup(a.device or TrainConfig().device)
    a.dist_info, a.announced = info, False
    finished = False  # only ranks whose run went through wait for each other before leaving the group
    try:
        if info.main:
            try:
                code = _train_new(a)
            except BaseException:
                if not a.announced:
                    distributed.from_rank0(-1, info)  # the others are waiting for the run id: let them go
                raise
        else:  # the same checks as rank 0 (same files, same answers), then the run id rank 0 gives
            code = _train_other_rank(a, info, Path(tempfile.gettempdir()))
        finished = code == 0  # a refused run (rank 0 said why) or a diverged one: nobody waits at the barrier
        return code
    finally:
        distributed.teardown(synchronise=finished)


def _train_other_rank(a, info, scratch: Path) -> int:
    run_id = distributed.from_rank0(0, info)
    if run_id < 0:
        return 2  # rank 0 refused the run and said why
    cfg = train_config(a)
    corpus = load_corpus(cfg.corpus)
    if a.threads:
        torch.set_num_threads(a.threads)
    result = train(cfg, scratch / f"lmcore-rank{info.rank}-run{run_id}", corpus=corpus, dist_info=info)
    return 0 if result.status in ("done", "stopped") else 1


def cmd_resume(a) -> int:
    """train --resume RUN: the run carries on in this process from its last.pt, in its own folder."""
    if a.out:
        raise ValueError("--out does not go with --resume: a run carries on in the folder it started in")
    if a.threads is not None:
        check_threads(a.threads)  # the other flags --resume takes are checked with the run's config
    store = RunStore(a.home)
    run_id = find_run(store, a.resume)
    # every check, then the run and a training slot claimed in one transaction
    with as_machine_owner() as me:
        resumed = service.resume(store, run_id, epochs=a.epochs, max_steps=a.max_steps, time_budget=a.time_budget,
                                 device=a.device, here=True, person=me)
    cfg = replace(resumed.cfg, train=replace(resumed.cfg.train, threads=a.threads or resumed.cfg.train.threads))
    step = service.begin_training(store, run_id)
    if not a.json:
        where = f"step {step}" if step is not None else "the start (no checkpoint to resume from)"
        print(f"run {run_id}: resuming from {where}", file=sys.stderr)
    return _train_here(a, store, run_id, cfg, resumed.corpus, resumed.folder, resumed.resume_from)


class TerminalHooks(StoreHooks):
    """The store's hooks, plus each evaluation on the terminal (a line, or JSON) and a progress bar on a tty."""

    def __init__(self, store: RunStore, run_id: int, as_json: bool):
        super().__init__(store, run_id)
        self.as_json = as_json

    def on_eval(self, metrics):
        super().on_eval(metrics)
        if self.as_json:
            print(json_line({"run_id": self.run_id, **metrics}), flush=True)
        else:
            print(f"\r| epoch {metrics['epoch']:6.2f} | step {metrics['step']:6d} | lr {metrics['lr']:.3g} | "
                  f"train loss {metrics['train_loss']:.3f} | valid ppl {metrics['valid_ppl']:9.2f} | "
                  f"{metrics['tokens_per_s']:7.0f} tok/s", file=sys.stderr)

    def on_step(self, step, total_steps, epoch, loss):
        super().on_step(step, total_steps, epoch, loss)
        if not self.as_json and sys.stderr.isatty() and step % 10 == 0:
            width = 30
            done = int(width * step / max(total_steps, 1))
            print(f"\r[{'#' * done}{'.' * (width - done)}] step {step}/{total_steps} epoch {epoch} "
                  f"loss {loss:.3f}", end="", file=sys.stderr, flush=True)


def _train_here(a, store: RunStore, run_id: int, cfg: RunConfig, corpus, out: Path,
                resume_from: Path | None = None) -> int:
    """Train (or carry on) one run in this process, reporting to the store and to the terminal."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    try:
        result = train(cfg, out, TerminalHooks(store, run_id, a.json), corpus=corpus, resume_from=resume_from,
                       dist_info=getattr(a, "dist_info", None))
    except BaseException as err:
        service.end_with_error(store, run_id, err)  # interrupted, resumable, when its last.pt is there
        raise
    service.record_result(store, run_id, result)
    final = {"event": "done", "run_id": run_id, "status": result.status, "valid_ppl": result.best_valid_ppl,
             "test_ppl": result.test_ppl, "params": result.params, "vocab": result.vocab, "step": result.step,
             "tokens_per_s": result.tokens_per_s, "wall_time": result.wall_time, "dir": str(out)}
    if a.json:
        print(json_line(final), flush=True)
    else:
        print(f"{result.status}: {result.message}\nrun {run_id} in {out}\nbest valid ppl {result.best_valid_ppl:.2f}"
              f" | test ppl {result.test_ppl if result.test_ppl is None else round(result.test_ppl, 2)}"
              f" | {result.params:,} parameters | vocab {result.vocab}")
    return 0 if result.status in ("done", "stopped") else 1


COMMANDS = {"train": cmd_train}
