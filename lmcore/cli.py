"""Command line: python -m lmcore train|eval|ngram|sample|runs (flags as in pytorch/examples'
word_language_model where they exist)."""
from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
from pathlib import Path

from .cells import GRU_CONVENTIONS, LSTM_VARIANTS
from .config import DEFAULT_LR, OPTIMIZERS, RunConfig, TrainConfig, check_threads
from .corpus.dataset import BUILTIN_PREFIX, SPLITS, CorpusSpec, load_corpus, tokenized_splits
from .corpus.reading import CorpusError
from .corpus.tokenize import TOKENIZERS, detokenize, tokenize_line
from .model import ACTIVATION_NAMES, ARCHS, BACKENDS, ModelConfig
from .presets import PRESETS, run_config
from .runs.store import RunStore


def _add_corpus_flags(p: argparse.ArgumentParser) -> None:
    d = CorpusSpec()
    p.add_argument("--corpus", default=d.source, help="a .txt file, a folder with train/valid/test.txt, "
                   "or builtin:agreement / builtin:python-docs (default %(default)s)")
    p.add_argument("--tokenizer", choices=list(TOKENIZERS), default=d.tokenizer)
    p.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=d.lowercase)
    p.add_argument("--min-count", type=int, default=d.min_count)
    p.add_argument("--max-vocab", type=int, default=d.max_vocab)


def _corpus_spec(a) -> CorpusSpec:
    """The spec a run records: a file or folder by its absolute path, since job processes start elsewhere."""
    keep = not a.corpus or a.corpus.startswith(BUILTIN_PREFIX)
    source = a.corpus if keep else str(Path(a.corpus).expanduser().resolve())
    return CorpusSpec(source, a.tokenizer, a.lowercase, a.min_count, a.max_vocab)


def whole_at_least(lowest: int):
    """An argparse type: a whole number of at least `lowest`, refused by argparse (one line, exit 2) otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be at least {lowest}, not {value}")
        return value
    parse.__name__ = f"whole number >= {lowest}"
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, like every other error of the CLI
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    # --home is accepted before or after the subcommand; SUPPRESS keeps the sub-parser from resetting it.
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument("--home", default=argparse.SUPPRESS, help="data folder (default $LMCORE_HOME or ~/.lmcore)")
    home.add_argument("--executor", choices=("local", "ray"), default=argparse.SUPPRESS,
                      help="where queued runs train: local processes (default) or a Ray cluster, whose nodes "
                           "must share the data folder (default $LMCORE_EXECUTOR or local)")
    home.add_argument("--address", default=argparse.SUPPRESS,
                      help="the Ray cluster's address, e.g. 10.0.0.5:6379 (default $LMCORE_RAY_ADDRESS, else a "
                           "local Ray instance)")
    parser = _Parser(prog="python -m lmcore", description=__doc__, parents=[home])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[home], **kwargs)

    m, t = ModelConfig(), TrainConfig()
    p = command("train", help="train one model (recorded in the run store)")
    _add_corpus_flags(p)
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
    p.add_argument("--no-bias", dest="bias", action="store_const", const=False, default=None,
                   help="drop b1 and b2, as in the coursework")
    p.add_argument("--emb", type=int, default=None, help=f"default {m.emb}; with --tied, the hidden size")
    p.add_argument("--hidden", "--nhid", type=int, default=None, help=f"default {m.hidden}")
    p.add_argument("--layers", "--nlayers", type=int, default=None, help=f"default {m.layers}")
    p.add_argument("--dropout", type=float, default=None, help=f"default {m.dropout}")
    p.add_argument("--tied", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--backend", choices=BACKENDS, default=None, help=f"default {m.backend}")
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
    p.add_argument("--bf16", action="store_const", const=True, default=None,
                   help="bfloat16 autocast on CUDA (ignored on the CPU)")
    p.add_argument("--distributed", action="store_true",
                   help="one rank of a torchrun group (DDP: NCCL on GPUs, gloo on the CPU); --batch is the "
                        "global batch, split over the ranks: torchrun --nproc_per_node N -m lmcore train ... "
                        "--distributed")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="folder for checkpoints (default: the run's folder in the store)")
    p.add_argument("--json", action="store_true", help="one JSON object per evaluation on stdout")

    p = command("eval", help="perplexity of a checkpoint on a split")
    p.add_argument("checkpoint", help="a .pt file, or a run folder (its best.pt is used)")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--corpus", default=None, help="evaluate on another corpus with the run's vocabulary")
    p.add_argument("--json", action="store_true")

    p = command("ngram", help="interpolated Kneser-Ney baseline perplexity")
    _add_corpus_flags(p)
    p.add_argument("--order", type=int, default=3, choices=range(1, 6))
    p.add_argument("--json", action="store_true")

    p = command("sample", help="generate text from a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--prompt", default="")
    p.add_argument("--words", "-n", type=whole_at_least(0), default=100)
    p.add_argument("--temperature", type=float, default=1.0, help="above 0; near 0: the likeliest word each time")
    p.add_argument("--top-k", type=whole_at_least(0), default=0, help="sample among the k likeliest (0: all)")
    p.add_argument("--seed", type=whole_at_least(0), default=0)

    p = command("runs", help="list the run store")
    p.add_argument("--json", action="store_true")

    p = command("stop", help="stop a queued or training run (it saves and ends cleanly; resume it later)")
    p.add_argument("run", help="run id or folder")

    p = command("delete", help="delete a run that is not training: its checkpoints, folder and rows")
    p.add_argument("run", help="run id or folder")
    p.add_argument("--yes", action="store_true", help="do not ask")

    p = command("make-demo", help="rebuild the demo runs in assets/demos (about two minutes)")
    p.add_argument("--only", nargs="*", default=None, help="names such as python-docs-lstm")
    p.add_argument("--out", default=None)

    from .cli_inspect import add_inspect_parser
    add_inspect_parser(command("inspect", help="look inside a trained model"), home)
    from .cli_sweep import add_sweep_parsers
    add_sweep_parsers(command)

    p = command("worker", help=argparse.SUPPRESS)  # the body of a job process
    p.add_argument("run_id", type=int)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--max-parallel", type=int, default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a flag argparse refused (its one error line is printed)
        return done.code if isinstance(done.code, int) else 2
    args.home = getattr(args, "home", None)
    if getattr(args, "executor", None) or getattr(args, "address", None):
        from .runs.executors import set_executor
        set_executor(getattr(args, "executor", None) or "ray", getattr(args, "address", None))
    try:
        if args.command != "worker":
            _mark_interrupted(args.home)
        if args.command == "train" and args.distributed:
            return cmd_train_distributed(args)
        return (cmd_resume if args.command == "train" and args.resume else COMMANDS[args.command])(args)
    except (CorpusError, ValueError, OSError, KeyError, sqlite3.Error) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 -- a user sees one line; LMCORE_DEBUG=1 shows the traceback
        if os.environ.get("LMCORE_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {_one_line(err)} (LMCORE_DEBUG=1 shows where)",
              file=sys.stderr)
        return 1


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split("\n")) or type(err).__name__


def _mark_interrupted(home: str | None) -> None:
    """Every command first marks runs whose job process died unseen (SIGKILL, a reboot) as interrupted."""
    from .runs.service import mark_interrupted
    from .runs.store import default_home
    folder = Path(home) if home else default_home()
    if (folder / "runs.sqlite").is_file():  # never creates a data folder for a command that needs none
        try:
            mark_interrupted(RunStore(folder))
        except (OSError, sqlite3.Error):
            pass  # a read-only or damaged store: a command that needs it says so itself


MODEL_FLAGS = ("arch", "activation", "bias", "emb", "hidden", "layers", "dropout", "tied", "backend", "variant",
               "gru_convention")
TRAIN_FLAGS = ("bptt", "batch", "optimizer", "lr", "lr_decay", "clip", "epochs", "max_steps", "time_budget",
               "eval_every", "seed", "device", "threads", "compile", "bf16")


def _train_config(a) -> RunConfig:
    """The run the flags describe, built by the same function as the Train page's runs."""
    given = lambda names: {k: getattr(a, k) for k in names if getattr(a, k) is not None}
    return run_config(a.preset, _corpus_spec(a), model=given(MODEL_FLAGS), train=given(TRAIN_FLAGS), name=a.name)


def cmd_train(a) -> int:
    from .runs import service
    cfg = _train_config(a)
    if cfg.train.bf16 and not cfg.train.device.startswith("cuda") and not (cfg.train.device == "auto" and _has_cuda()):
        print("note: --bf16 is for CUDA GPUs; training in float32 here", file=sys.stderr)
    store = RunStore(a.home)
    out = Path(a.out) if a.out else None
    run_id, corpus = service.start_here(store, cfg, out=out)  # every check, then the slot and the row at once
    if getattr(a, "dist_info", None) is not None:  # torchrun: the other ranks wait for this run id
        from .distributed import from_rank0
        from_rank0(run_id, a.dist_info)
        a.announced = True
    return _train_here(a, store, run_id, cfg, corpus, out or store.run_dir(run_id))


def _has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def cmd_train_distributed(a) -> int:
    """train --distributed, in every rank torchrun starts: rank 0 records the run and writes its checkpoints;
    the others train their block of streams and touch neither the store nor the run's folder."""
    from . import distributed
    if a.resume:
        raise ValueError("--resume does not go with --distributed yet; resume the run in one process")
    info = distributed.setup(a.device or TrainConfig().device)
    a.dist_info, a.announced = info, False
    finished = False  # only ranks whose run went through wait for each other before leaving the group
    try:
        if info.main:
            try:
                code = cmd_train(a)
            except BaseException:
                if not a.announced:
                    distributed.from_rank0(-1, info)  # the others are waiting for the run id: let them go
                raise
        else:  # the same checks as rank 0 (same files, same answers), then the run id rank 0 gives
            import tempfile
            code = _train_other_rank(a, info, Path(tempfile.gettempdir()))
        finished = code == 0  # a refused run (rank 0 said why) or a diverged one: nobody waits at the barrier
        return code
    finally:
        distributed.teardown(synchronise=finished)


def _train_other_rank(a, info, scratch: Path) -> int:
    from . import distributed
    from .train import train
    run_id = distributed.from_rank0(0, info)
    if run_id < 0:
        return 2  # rank 0 refused the run and said why
    cfg = _train_config(a)
    corpus = load_corpus(cfg.corpus)
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    result = train(cfg, scratch / f"lmcore-rank{info.rank}-run{run_id}", corpus=corpus, dist_info=info)
    return 0 if result.status in ("done", "stopped") else 1


def cmd_resume(a) -> int:
    """train --resume RUN: the run carries on in this process from its last.pt, in its own folder."""
    from .runs import service
    if a.out:
        raise ValueError("--out does not go with --resume: a run carries on in the folder it started in")
    if a.threads is not None:
        check_threads(a.threads)  # the other flags --resume takes are checked with the run's config
    store = RunStore(a.home)
    run_id = find_run(store, a.resume)
    # every check, then the run and a training slot claimed in one transaction
    resumed = service.resume(store, run_id, epochs=a.epochs, max_steps=a.max_steps, time_budget=a.time_budget,
                             device=a.device, here=True)
    cfg = resumed.cfg
    cfg.train.threads = a.threads or cfg.train.threads
    step = service.rewind_metrics(store, run_id)
    if not a.json:
        where = f"step {step}" if step is not None else "the start (no checkpoint to resume from)"
        print(f"run {run_id}: resuming from {where}", file=sys.stderr)
    return _train_here(a, store, run_id, cfg, resumed.corpus, resumed.folder, resumed.resume_from)


def find_run(store: RunStore, text: str) -> int:
    """A run named by its id, or by its folder (the store's, or the --out folder it was trained into)."""
    if text.strip().isdigit():
        if store.get_run(int(text)) is None:
            raise ValueError(f"no run {int(text)} in {store.home}")
        return int(text)
    folder = Path(text).expanduser().resolve()
    for run in store.list_runs():
        dirs = {store.run_dir(run["id"]).resolve()} | {Path(c["path"]).parent.resolve()
                                                         for c in store.checkpoints(run["id"]).values()}
        if folder in dirs:
            return run["id"]
    raise ValueError(f"{text}: no run in {store.home} has its checkpoints there; give a run id (python -m lmcore runs)")


def _train_here(a, store: RunStore, run_id: int, cfg: RunConfig, corpus, out: Path,
                resume_from: Path | None = None) -> int:
    """Train (or carry on) one run in this process, reporting to the store and to the terminal."""
    from .runs.jobs import StoreHooks
    from .runs.service import end_with_error, record_result
    from .train import train
    threads = cfg.train.threads
    if threads:
        import torch
        torch.set_num_threads(threads)

    class CliHooks(StoreHooks):
        def on_eval(self, metrics):
            super().on_eval(metrics)
            if a.json:
                print(json_line({"run_id": run_id, **metrics}), flush=True)
            else:
                print(f"\r| epoch {metrics['epoch']:6.2f} | step {metrics['step']:6d} | lr {metrics['lr']:.3g} | "
                      f"train loss {metrics['train_loss']:.3f} | valid ppl {metrics['valid_ppl']:9.2f} | "
                      f"{metrics['tokens_per_s']:7.0f} tok/s", file=sys.stderr)

        def on_step(self, step, total_steps, epoch, loss):
            super().on_step(step, total_steps, epoch, loss)
            if not a.json and sys.stderr.isatty() and step % 10 == 0:
                width = 30
                done = int(width * step / max(total_steps, 1))
                print(f"\r[{'#' * done}{'.' * (width - done)}] step {step}/{total_steps} epoch {epoch} "
                      f"loss {loss:.3f}", end="", file=sys.stderr, flush=True)

    try:
        result = train(cfg, out, CliHooks(store, run_id), corpus=corpus, resume_from=resume_from,
                       dist_info=getattr(a, "dist_info", None))
    except BaseException as err:
        end_with_error(store, run_id, err)  # interrupted, resumable, when its last.pt is there
        raise
    record_result(store, run_id, result)
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


def json_line(record: dict) -> str:
    """Strict JSON: an infinite or NaN perplexity (a diverged run) becomes null."""
    return json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()})


def checkpoint_path(path: str):
    from pathlib import Path

    from .runs.catalog import DEMO_DIR
    if path.startswith("demo:"):
        path = str(DEMO_DIR / f"{path[len('demo:'):]}.pt")
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise ValueError(f"{p}: no best.pt or last.pt in this folder")
    if not p.is_file():
        raise ValueError(f"{p}: no such checkpoint")
    return p


def cmd_eval(a) -> int:
    from dataclasses import replace

    from .checkpoint import load_checkpoint
    from .corpus.batching import batchify
    from .train import EVAL_BATCH, evaluate, safe_ppl
    model, cfg, vocab, meta = load_checkpoint(checkpoint_path(a.checkpoint))
    spec = replace(cfg.corpus, source=a.corpus) if a.corpus else cfg.corpus
    if a.corpus:
        from .limits import check_source_size, load_limits
        check_source_size(a.corpus, load_limits(a.home))
    ids = vocab.encode(tokenized_splits(spec)[0][a.split])  # the checkpoint's own vocabulary
    loss = evaluate(model, batchify(ids, EVAL_BATCH), cfg.train.bptt)
    result = {"split": a.split, "loss": loss, "ppl": safe_ppl(loss), "tokens": int(len(ids)), "step": meta.get("step")}
    print(json_line(result) if a.json else f"{a.split} loss {loss:.4f} | ppl {result['ppl']:.2f} | {len(ids)} tokens")
    return 0


def cmd_ngram(a) -> int:
    from .baseline import ngram_baseline
    from .limits import check_source_size, load_limits
    check_source_size(a.corpus, load_limits(a.home))
    result = ngram_baseline(load_corpus(_corpus_spec(a)), a.order)
    if a.json:
        print(json_line(result))
    else:
        print(f"Kneser-Ney {a.order}-gram | vocab {result['vocab']} | valid ppl {result['valid_ppl']:.2f} | "
              f"test ppl {result['test_ppl']:.2f} | {result['seconds']:.1f} s")
    return 0


def cmd_sample(a) -> int:
    from .checkpoint import load_checkpoint
    from .generate import check_sampling, sample_tokens
    check_sampling(a.words, a.temperature, a.top_k, a.seed)  # before the checkpoint is read
    model, cfg, vocab, _ = load_checkpoint(checkpoint_path(a.checkpoint))
    kind = cfg.corpus.tokenizer
    prompt = tokenize_line(a.prompt, kind, cfg.corpus.lowercase) if a.prompt else []
    ids = vocab.encode(prompt) if prompt else [vocab.eos_id]
    out = [vocab.itos[i] for i in sample_tokens(model, ids, a.words, a.temperature, a.top_k, a.seed)]
    print(detokenize(prompt + out, kind))
    return 0


def cmd_runs(a) -> int:
    from .runs.service import mark_interrupted
    store = RunStore(a.home)
    mark_interrupted(store)
    runs = store.list_runs()
    keys = ("id", "name", "status", "arch", "params", "device", "step", "best_valid_ppl", "test_ppl", "corpus_source")
    if a.json:
        for r in runs:
            print(json_line({k: r[k] for k in keys}))
        return 0
    if not runs:
        print(f"no runs in {store.home}")
    for run_id, why in store.broken_runs():
        print(f"{run_id:5d}  broken      {why}", file=sys.stderr)
    for r in runs:
        ppl = f"{r['best_valid_ppl']:.2f}" if r["best_valid_ppl"] else "-"
        print(f"{r['id']:5d}  {r['status']:11s} {r.cfg.label():22s} "
              f"params {r['params'] or 0:>10,}  valid ppl {ppl:>9s}  {r['corpus_source']}")
    return 0


def cmd_stop(a) -> int:
    from .runs.service import stop
    store = RunStore(a.home)
    run_id = find_run(store, a.run)
    print(f"run {run_id}: {stop(store, run_id)}")
    return 0


def cmd_delete(a) -> int:
    from .runs.service import delete
    store = RunStore(a.home)
    run_id = find_run(store, a.run)
    if not a.yes:
        if not sys.stdin.isatty():
            raise ValueError(f"deleting run {run_id} removes its checkpoints for good; add --yes to confirm")
        if input(f"delete run {run_id} and its checkpoints for good? [y/N] ").strip().lower() not in ("y", "yes"):
            print("kept")
            return 0
    removed = delete(store, run_id)
    print(f"run {run_id} deleted" + (f" ({len(removed)} folder(s) or file(s) removed)" if removed else ""))
    return 0


def cmd_make_demo(a) -> int:
    from .demo import make_demo
    from .runs.catalog import DEMO_DIR
    make_demo(a.out or DEMO_DIR, a.only, log=lambda line: print(line, file=sys.stderr))
    return 0


def cmd_inspect(a) -> int:
    from .cli_inspect import run_inspect
    return run_inspect(a)


def cmd_sweep(a) -> int:
    from .cli_sweep import cmd_sweep as run
    return run(a)


def cmd_sweeps(a) -> int:
    from .cli_sweep import cmd_sweeps as run
    return run(a)


def cmd_worker(a) -> int:
    from .runs.service import run_job
    status = run_job(RunStore(a.home), a.run_id, a.threads, a.max_parallel)
    return 0 if status in ("done", "stopped") else 1


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "ngram": cmd_ngram, "sample": cmd_sample, "runs": cmd_runs,
            "stop": cmd_stop, "delete": cmd_delete,
            "make-demo": cmd_make_demo, "inspect": cmd_inspect, "sweep": cmd_sweep, "sweeps": cmd_sweeps,
            "worker": cmd_worker}
