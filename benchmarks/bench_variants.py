"""Training speed of the LSTM variants (hand-written cells) against the fused nn.LSTM of the same size.

    python benchmarks/bench_variants.py [--quick] [--threads N] [--layers 1|2] [--rounds R] [--steps S] [--device D]

Setting (as benchmarks/bench_train.py): builtin:python-docs, word tokens, lowercased; batch 20, τ 35,
emb = hidden = 200, 2 layers (--layers 1 for 1×200), SGD lr 20, clip 0.25, dropout 0.2, lmcore's trainer.

Contenders: the fused nn.LSTM (PyTorch's LSTM, lmcore's "vanilla" on backend fused), then every variant on
the hand-written cells ("vanilla" and its twin "np" on backend cells: the same model, the same code), and
the GRU: fused (PyTorch's convention) against Cho's convention on the cells, and the Elman network: the fused
tanh RNN against the lecture's σ Elman, which only the cells run.
Throughput is tokens per step over the median wall-clock interval between consecutive step ends
(TrainHooks.on_step timestamps; step 1, the warm-up, is left out; evaluation and checkpoints are not
timed). Contenders alternate within each round, the order rotating every round, and each ratio is the
median of the per-round ratios to the fused model of that round, so load from other processes hits all
contenders alike. "best" is tokens per step over the shortest step of all rounds: the ratio of bests
shrugs off bursts of load that a median over few rounds may not. Timed runs stay inside the first epoch; valid/test are cut to EVAL_CUT tokens only so
that the trainer's (untimed) evaluation is short.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

import _checkout  # noqa: E402,F401 -- lmcore from this checkout, huge pages as lmcore's processes (first)

from lmcore.corpus.dataset import CorpusSpec
from lmcore.corpus.loading import load_corpus
from lmcore.nn.architectures import (
    LSTM_VARIANTS,
    ModelConfig,
    count_params,
)
from lmcore.training.config import RunConfig, TrainConfig
from lmcore.training.trainer import TrainHooks, train

SPEC = CorpusSpec(source="builtin:python-docs", tokenizer="words", lowercase=True)
BATCH, BPTT, SIZE = 20, 35, 200
LR, CLIP, DROPOUT, SEED = 20.0, 0.25, 0.2, 1111
EVAL_CUT = 700


class Clock(TrainHooks):
    def __init__(self):
        self.stamps: list[float] = []

    def on_step(self, step, total_steps, epoch, loss):
        self.stamps.append(time.perf_counter())


def contenders(layers: int) -> dict[str, ModelConfig]:
    """label -> model config; the first of each architecture is the fused reference."""
    base = ModelConfig(arch="lstm", emb=SIZE, hidden=SIZE, layers=layers, dropout=DROPOUT)
    out = {"lstm fused": replace(base, backend="fused")}
    out.update({f"lstm {LSTM_VARIANTS[v].name}": replace(base, variant=v, backend="cells") for v in LSTM_VARIANTS})
    out["gru fused"] = replace(base, arch="gru", backend="fused")
    out["gru Cho"] = replace(base, arch="gru", gru_convention="cho", backend="cells")
    out["elman tanh"] = replace(base, arch="elman", activation="tanh", backend="fused")
    out["elman σ"] = replace(base, arch="elman", activation="sigmoid", backend="cells")
    return out


REFERENCE = {"lstm": "lstm fused", "gru": "gru fused", "elman": "elman tanh"}
# the cells' speed against the fused reference (median of per-round ratios), as issue 19 asks
TARGETS = {"lstm vanilla": 0.9, "lstm FGR": 0.7, "elman σ": 0.95}


def tokens_per_s(corpus, model: ModelConfig, steps: int, device: str = "cpu") -> tuple[float, float]:
    """(tokens/s over the median step interval, over the shortest one)."""
    cfg = RunConfig(name="bench", corpus=SPEC, model=replace(model),
                    train=TrainConfig(bptt=BPTT, batch=BATCH, optimizer="sgd", lr=LR, clip=CLIP, epochs=1,
                                      max_steps=steps, seed=SEED, device=device))
    clock = Clock()
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(cfg, Path(run_dir), clock, corpus)
    # every step trained; a few steps of SGD at lr 20 can leave a run (the Elman nets) above 10× a uniform guess,
    # which ends it "diverged" after its last step: its steps were timed all the same
    assert result.step == steps and (result.status == "done" or "never got below" in result.message), result
    intervals = [b - a for a, b in zip(clock.stamps, clock.stamps[1:])]
    return BATCH * BPTT / statistics.median(intervals), BATCH * BPTT / min(intervals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: 6 steps, 2 rounds")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--layers", type=int, default=2, choices=(1, 2))
    ap.add_argument("--rounds", type=int, help="rounds of alternating contenders (default 5; quick 2)")
    ap.add_argument("--steps", type=int, help="training steps per timed run (default 15; quick 6)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, …: where every contender trains")
    args = ap.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    steps = args.steps or (6 if args.quick else 15)
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    full = load_corpus(SPEC)
    corpus = replace(full, valid=full.valid[:EVAL_CUT], test=full.test[:EVAL_CUT])
    vocab = len(corpus.vocab)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start")
    print(f"corpus {SPEC.source}: vocab {vocab}, train {len(corpus.train)} tokens; batch {BATCH}, τ {BPTT}, "
          f"{args.layers}×{SIZE}, emb {SIZE}, SGD lr {LR}, dropout {DROPOUT}; {steps} steps per run, {rounds} rounds\n")

    models = contenders(args.layers)
    tokens_per_s(corpus, models["lstm fused"], 3, args.device)  # warm-up: allocator, kernels, imports
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    names = list(models)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runs[name].append(tokens_per_s(corpus, models[name], steps, args.device))
        print(f"  round {r + 1}/{rounds} done in {time.perf_counter() - started:.0f} s", flush=True)

    med = statistics.median
    print("\nTokens/s (median over rounds) and ratio to the fused model of the same architecture "
          "(median of per-round ratios; min..max over rounds); best: shortest step, ratio of bests.")
    head = (f"{'model':<18} {'backend':<7} {'params':>10} {'tok/s':>7} {'/fused':>7} {'range':>13} "
            f"{'best':>7} {'/fused':>7}")
    print(head)
    print("-" * len(head))
    medians = {}
    for name, cfg in models.items():
        ref = runs[REFERENCE[cfg.arch]]
        ratios = [a[0] / b[0] for a, b in zip(runs[name], ref)]
        medians[name] = med(ratios)
        best, ref_best = max(r[1] for r in runs[name]), max(r[1] for r in ref)
        print(f"{name:<18} {'fused' if cfg.uses_fused else 'cells':<7} {count_params(cfg, vocab):>10,} "
              f"{med([r[0] for r in runs[name]]):>7.0f} {med(ratios):>7.3f} {min(ratios):>6.3f}..{max(ratios):.3f} "
              f"{best:>7.0f} {best / ref_best:>7.3f}")
    print()
    for name, goal in TARGETS.items():
        verdict = "ok" if medians[name] >= goal else "BELOW TARGET"
        print(f"  {name + ' /' + REFERENCE[models[name].arch].split()[-1]:<22} {medians[name]:.3f}  "
              f"(target >= {goal}: {verdict})")
    print(f"\ntotal time {time.perf_counter() - started:.0f} s; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at end")


if __name__ == "__main__":
    main()
