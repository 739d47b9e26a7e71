"""Training speed and equivalence of lmcore's trainer against a plain PyTorch loop.

    python benchmarks/bench_train.py [--quick] [--threads N]

Setting (the defaults of pytorch/examples word_language_model): builtin:python-docs, word tokens, lowercased;
batch 20, τ (bptt) 35, 2 layers × 200 units, emb 200, SGD lr 20, clip 0.25, dropout 0.2.

1. lmcore/plain: tokens/s of `lmcore.training.trainer.train` as a run trains by default (backend auto: in float32
   on a CPU where lmcore's C++ is built, the LSTM and the tanh Elman through lmcore's C++ loop, which is faster
   there, `lmcore.training.device.native_pays`; else PyTorch's fused module) against the plain loop below
   (nn.Embedding + nn.LSTM/GRU/RNN + nn.Linear, batchify, detach, cross_entropy, zero_grad,
   backward, clip_grad_norm_, SGD step, loss.item()), same data, same number of steps.
2. cells/fused: lmcore's hand-written cells against the fused module, same trainer, same size (fused/plain: lmcore's
   trainer on the fused module against the plain loop).
   The sigmoid Elman RNN (cells only) is timed for information.
3. Equivalence: validation perplexity after the same steps from the same seed: without dropout lmcore's trainer
   on the fused module with its C++ off (LMCORE_NATIVE=0) is the same computation (equal weights), and the default
   (the C++ loop where it is taken, and on the CPU in float32 the output layer's softmax and gradient in one pass
   of C++, `lmcore.training.device.native_loss_pays`) within float32's rounding, which these 200 steps at lr 20 carry to a few percent (the plain loop against itself
   with its starting weights moved by 1e-7 shows how far); with dropout lmcore draws its masks its own way on the
   CPU, so the LSTM's runs (lmcore as it trains by default) are compared over several seeds, against the spread
   the masks make.

Two throughputs per run, both excluding evaluation and checkpoints:
- "wall": tokens per step over the median wall-clock interval between consecutive step ends
  (lmcore: TrainHooks.on_step timestamps; plain: the same timestamp at the end of its step). It
  counts everything the loop does between steps, leaves out step 1 (warm-up), and the median
  shrugs off bursts of load from other processes.
- "reported": lmcore's own TrainResult.tokens_per_s (sum of its per-step times over all steps); for
  the plain loop the sum of its step times, measured the same way.
Contenders alternate within each round (the order rotates every round) and each ratio is the
median of the per-round ratios, so load from other processes hits all contenders alike.
Timed runs stay inside the first epoch and get a corpus whose valid/test splits are cut to
EVAL_CUT tokens, only so that lmcore's untimed end-of-run evaluation is short; the training split is
the whole one. The equivalence runs use the full splits.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import _checkout  # noqa: E402,F401 -- lmcore from this checkout, huge pages as lmcore's processes (first)

from lmcore.corpus.dataset import CorpusSpec  # noqa: E402
from lmcore.corpus.loading import load_corpus  # noqa: E402
from lmcore.nn.architectures import ModelConfig  # noqa: E402
from lmcore.training.config import RunConfig, TrainConfig  # noqa: E402
from lmcore.training.device import native_pays  # noqa: E402
from lmcore.training.trainer import TrainHooks, train  # noqa: E402

SPEC = CorpusSpec(source="builtin:python-docs", tokenizer="words", lowercase=True)
BATCH, BPTT, EMB, HIDDEN, LAYERS = 20, 35, 200, 200, 2
LR, CLIP, DROPOUT, SEED = 20.0, 0.25, 0.2, 1111
EVAL_BATCH = 10
EVAL_CUT = 700  # valid/test tokens in timed runs (their evaluation is not timed)
LR_DECAY = 4.0

FUSED_ARCHS = {"lstm": ("lstm", "tanh"), "gru": ("gru", "tanh"), "elman-tanh": ("elman", "tanh")}
TARGETS = {"lmcore/plain": 0.95, "cells/fused lstm": 0.9, "valid ppl rel diff": 0.03, "bf16/plain": 1.35,
           "bf16 ppl rel diff": 0.01, "sigmoid-cells/fused-tanh elman": 0.95}


# ---------------------------------------------------------------------------------------------
# The plain PyTorch loop (pytorch/examples word_language_model, trimmed to this setting)
# ---------------------------------------------------------------------------------------------
class PlainLM(nn.Module):
    def __init__(self, arch: str, activation: str, ntoken: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, EMB)
        if arch == "lstm":
            self.rnn = nn.LSTM(EMB, HIDDEN, LAYERS, dropout=dropout)
        elif arch == "gru":
            self.rnn = nn.GRU(EMB, HIDDEN, LAYERS, dropout=dropout)
        else:
            self.rnn = nn.RNN(EMB, HIDDEN, LAYERS, nonlinearity=activation, dropout=dropout)
        self.decoder = nn.Linear(HIDDEN, ntoken)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        self.arch = arch

    def forward(self, x, hidden):
        emb = self.drop(self.encoder(x))  # (T, B, E)
        out, hidden = self.rnn(emb, hidden)  # (T, B, H)
        return self.decoder(self.drop(out)), hidden  # (T, B, V)

    def init_hidden(self, bsz: int):
        h = torch.zeros(LAYERS, bsz, HIDDEN)
        return (h, torch.zeros_like(h)) if self.arch == "lstm" else h


def plain_batchify(ids, bsz: int) -> torch.Tensor:
    data = torch.as_tensor(ids, dtype=torch.long)
    nbatch = data.size(0) // bsz
    return data[: nbatch * bsz].view(bsz, -1).t().contiguous()  # (rows, B)


def plain_get_batch(source: torch.Tensor, i: int):
    seq_len = min(BPTT, source.size(0) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


def repackage_hidden(h):
    """Detach: the next chunk starts from this value, but gradients stop here (truncated BPTT)."""
    return tuple(repackage_hidden(v) for v in h) if isinstance(h, tuple) else h.detach()


@torch.no_grad()
def plain_evaluate(model: PlainLM, data: torch.Tensor) -> float:
    """Mean cross-entropy over every target of the split (batch 10, τ 35, hidden carried)."""
    model.eval()
    hidden, total, count = model.init_hidden(data.size(1)), 0.0, 0
    for i in range(0, data.size(0) - 1, BPTT):
        x, y = plain_get_batch(data, i)
        logits, hidden = model(x, hidden)
        total += F.cross_entropy(logits.view(-1, logits.size(-1)), y, reduction="sum").item()
        count += y.numel()
    return total / count


@dataclass
class Run:
    wall: float               # tokens/s, over the median interval between step ends
    best: float               # tokens/s, over the shortest interval between step ends
    reported: float           # tokens/s, sum of per-step times
    valid_ppl: float = float("nan")
    state: dict | None = None  # final weights (equivalence runs only)
    init: dict | None = None   # step-0 weights (equivalence runs only)


def wall_rates(stamps: list[float], tokens_per_step: int) -> tuple[float, float]:
    """Tokens/s from step-end timestamps: tokens per step over the median and the shortest interval."""
    intervals = [b - a for a, b in zip(stamps, stamps[1:])]
    return tokens_per_step / statistics.median(intervals), tokens_per_step / min(intervals)


def plain_train(corpus, arch: str, activation: str, steps: int, dropout: float, evaluate: bool,
                init_state: dict | None = None, seed: int = SEED) -> Run:
    """Same protocol as lmcore's trainer: per epoch a fresh zero hidden state; with `evaluate`,
    validation at each epoch end (and at the stop) with lr ÷ 4 when it got worse than the best."""
    torch.manual_seed(seed)  # same seed, same construction order as RNNLM: same weights (and, without dropout, the same steps)
    model = PlainLM(arch, activation, len(corpus.vocab), dropout)
    init = {k: v.clone() for k, v in model.state_dict().items()} if evaluate else None
    if init_state is not None:
        model.load_state_dict(init_state)
    train_data = plain_batchify(corpus.train, BATCH)
    valid_data = plain_batchify(corpus.valid, EVAL_BATCH)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    lr, best, valid_loss, step = LR, float("inf"), float("nan"), 0
    stamps, step_time, tokens = [], 0.0, 0
    while step < steps:
        model.train()
        hidden = model.init_hidden(BATCH)
        for i in range(0, train_data.size(0) - 1, BPTT):
            t0 = time.perf_counter()
            x, y = plain_get_batch(train_data, i)
            hidden = repackage_hidden(hidden)
            optimizer.zero_grad(set_to_none=True)
            logits, hidden = model(x, hidden)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            optimizer.step()
            loss.item()  # the running loss a real loop logs
            t1 = time.perf_counter()
            step_time += t1 - t0
            stamps.append(t1)
            tokens += y.numel()
            step += 1
            if step >= steps:
                break
        if evaluate:
            valid_loss = plain_evaluate(model, valid_data)
            best = min(best, valid_loss)
            if valid_loss > best:
                lr /= LR_DECAY
                for group in optimizer.param_groups:
                    group["lr"] = lr
    state = {k: v.clone() for k, v in model.state_dict().items()} if evaluate else None
    return Run(*wall_rates(stamps, BATCH * BPTT), tokens / step_time, math.exp(valid_loss), state, init)


# ---------------------------------------------------------------------------------------------
# lmcore's trainer
# ---------------------------------------------------------------------------------------------
class Clock(TrainHooks):
    def __init__(self):
        self.stamps: list[float] = []
        self.evals: list[dict] = []

    def on_step(self, step, total_steps, epoch, loss):
        self.stamps.append(time.perf_counter())

    def on_eval(self, metrics):
        self.evals.append(metrics)


def run_config(arch: str, activation: str, backend: str, steps: int, dropout: float, bf16: bool = False,
               seed: int = SEED) -> RunConfig:
    model = ModelConfig(arch=arch, activation=activation, backend=backend, emb=EMB, hidden=HIDDEN,
                        layers=LAYERS, dropout=dropout, bias=True, tied=False)
    t = TrainConfig(bptt=BPTT, batch=BATCH, optimizer="sgd", lr=LR, clip=CLIP, epochs=1000,
                    max_steps=steps, lr_decay=LR_DECAY, seed=seed, device="cpu", bf16=bf16)
    return RunConfig(name="bench", corpus=SPEC, model=model, train=t)


def lmcore_train(corpus, arch: str, activation: str, backend: str, steps: int, dropout: float,
                 keep_weights: bool = False, bf16: bool = False, seed: int = SEED) -> Run:
    clock = Clock()
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(run_config(arch, activation, backend, steps, dropout, bf16, seed), Path(run_dir), clock, corpus)
        if keep_weights:
            load = lambda name: torch.load(Path(run_dir) / name, weights_only=True)["state_dict"]
            init, state = load("init.pt"), load("last.pt")
        else:
            init = state = None
    # every step trained; a few steps of SGD leave a run above 10× a uniform guess, which ends it "diverged"
    assert result.step == steps and (result.status == "done" or "never got below" in result.message), result
    return Run(*wall_rates(clock.stamps, BATCH * BPTT), result.tokens_per_s, clock.evals[-1]["valid_ppl"], state, init)


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------
def default_path(arch: str, activation: str) -> str:
    """The contender that is lmcore's default here: "cells" where a run on backend auto trains through the C++ loop
    (float32, no bf16 asked), else "fused"."""
    model = run_config(arch, activation, "auto", 1, DROPOUT).model
    return "cells" if native_pays(model, torch.device("cpu"), bf16=False) else "fused"


def speed(full_corpus, label: str, arch: str, activation: str, steps: int, rounds: int) -> dict:
    """All contenders of one architecture, alternating; returns medians and per-round ratios."""
    corpus = replace(full_corpus, valid=full_corpus.valid[:EVAL_CUT], test=full_corpus.test[:EVAL_CUT])
    contenders = {
        "plain": lambda: plain_train(corpus, arch, activation, steps, DROPOUT, evaluate=False),
        "fused": lambda: lmcore_train(corpus, arch, activation, "fused", steps, DROPOUT),
        "cells": lambda: lmcore_train(corpus, arch, activation, "cells", steps, DROPOUT),
    }
    if cpu_bf16():  # lmcore's fused model under bf16 autocast, where the CPU computes bf16 natively
        contenders["bf16"] = lambda: lmcore_train(corpus, arch, activation, "fused", steps, DROPOUT, bf16=True)
    if label == "elman-tanh":
        contenders["cells-sigmoid"] = lambda: lmcore_train(corpus, "elman", "sigmoid", "cells", steps, DROPOUT)
    names = list(contenders)
    runs: dict[str, list[Run]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runs[name].append(contenders[name]())
            LOAD_SAMPLES.append(os.getloadavg()[0])
    med = lambda xs: statistics.median(xs)
    out = {name: {"wall": med([x.wall for x in rs]), "reported": med([x.reported for x in rs]),
                  "best": max(x.best for x in rs)} for name, rs in runs.items()}
    per_round = lambda a, b, key: [getattr(x, key) / getattr(y, key) for x, y in zip(runs[a], runs[b])]
    lm = out["default"] = default_path(arch, activation)
    out["lmcore"] = out[lm]
    out["lmcore/plain"] = med(per_round(lm, "plain", "wall"))
    out["lmcore/plain reported"] = med(per_round(lm, "plain", "reported"))
    out["lmcore/plain best"] = out[lm]["best"] / out["plain"]["best"]
    out["fused/plain"] = med(per_round("fused", "plain", "wall"))
    out["cells/fused best"] = out["cells"]["best"] / out["fused"]["best"]
    out["lmcore/plain rounds"] = per_round(lm, "plain", "wall")
    out["cells/fused"] = med(per_round("cells", "fused", "wall"))
    out["cells/fused rounds"] = per_round("cells", "fused", "wall")
    if "bf16" in runs:
        out["bf16/plain"] = med(per_round("bf16", "plain", "wall"))
        out["bf16/plain rounds"] = per_round("bf16", "plain", "wall")
    if "cells-sigmoid" in runs:
        out["sigmoid/fused"] = med(per_round("cells-sigmoid", "fused", "wall"))
    return out


def nudged(state: dict, by: float = 1e-7) -> dict:
    """Every weight moved by a relative `by` (float32's rounding is 6e-8): how far the loop itself carries a
    difference of rounding in 200 steps at lr 20."""
    g = torch.Generator().manual_seed(0)
    return {k: v * (1 + by * torch.randn(v.shape, generator=g, dtype=v.dtype)) for k, v in state.items()}


@contextmanager
def cpp_off():
    """lmcore with its C++ turned off (LMCORE_NATIVE=0): no C++ time loop, no C++ softmax."""
    before = os.environ.get("LMCORE_NATIVE")
    os.environ["LMCORE_NATIVE"] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["LMCORE_NATIVE"]
        else:
            os.environ["LMCORE_NATIVE"] = before


def equivalence(corpus, arch: str, activation: str, steps: int, dropout: float) -> dict:
    """Validation perplexity after the same steps from the same seed. Without dropout lmcore with its C++ off and
    the plain loop compute the same thing (max|Δw| 0 expected); lmcore's default (its C++ loop where taken, its C++
    softmax) differs by rounding, set against the plain loop moved by 1e-7 (`nudged`). With dropout lmcore draws its own masks on the CPU
    (lmcore/nn/dropout.py), so its run and the plain loop's differ as two seeds of one loop would; bf16 is set
    against lmcore's float32 run with the same masks, so that only the precision differs."""
    with cpp_off():  # PyTorch's ops only: the fused module and PyTorch's log-softmax, the plain loop's computation
        lm0 = lmcore_train(corpus, arch, activation, "fused", steps, 0.0, keep_weights=True)
    plain0 = plain_train(corpus, arch, activation, steps, 0.0, evaluate=True, init_state=lm0.init)
    path = default_path(arch, activation)
    auto0 = lmcore_train(corpus, arch, activation, "auto", steps, 0.0)  # the C++ loop where taken, the C++ softmax
    moved = plain_train(corpus, arch, activation, steps, 0.0, evaluate=True, init_state=nudged(lm0.init))
    lm = lmcore_train(corpus, arch, activation, "fused", steps, dropout)
    plain = plain_train(corpus, arch, activation, steps, dropout, evaluate=True)
    half = lmcore_train(corpus, arch, activation, "fused", steps, dropout, bf16=True) if cpu_bf16() else None
    max_diff = lambda a, b: max((a[k] - b[k]).abs().max().item() for k in a)
    rel = lambda a, b: abs(a - b) / b
    return {"lmcore_ppl": lm.valid_ppl, "plain_ppl": plain.valid_ppl, "rel": rel(lm.valid_ppl, plain.valid_ppl),
            "bf16_ppl": half.valid_ppl if half else float("nan"),
            "bf16_rel": rel(half.valid_ppl, lm.valid_ppl) if half else float("nan"),
            "lmcore0_ppl": lm0.valid_ppl, "plain0_ppl": plain0.valid_ppl,
            "rel_no_dropout": rel(lm0.valid_ppl, plain0.valid_ppl), "default": path, "auto0_ppl": auto0.valid_ppl,
            "rel_default": rel(auto0.valid_ppl, plain0.valid_ppl), "nudged_ppl": moved.valid_ppl,
            "rel_nudged": rel(moved.valid_ppl, plain0.valid_ppl),
            "init_diff": max_diff(plain0.init, lm0.init), "final_diff": max_diff(plain0.state, lm0.state)}


def seed_spread(corpus, arch: str, activation: str, steps: int, dropout: float, seeds: range) -> dict:
    """Valid ppl of lmcore as it trains by default and of the plain loop over several seeds, with dropout: whether
    lmcore (its masks, and its C++ loop where it takes it) trains as the plain loop does can only be told against
    the spread that the masks and the rounding themselves make (`nudged`). A seed gives both loops the same initial
    weights and batches, so the runs are compared in pairs."""
    runs = {"lmcore": [lmcore_train(corpus, arch, activation, "auto", steps, dropout, seed=s).valid_ppl for s in seeds],
            "plain": [plain_train(corpus, arch, activation, steps, dropout, evaluate=True, seed=s).valid_ppl
                      for s in seeds]}
    diffs = [a - b for a, b in zip(runs["lmcore"], runs["plain"])]
    noise = statistics.stdev(diffs) / math.sqrt(len(diffs))  # standard error of the mean paired difference
    return {"runs": runs, "mean": {k: statistics.mean(v) for k, v in runs.items()}, "diff": statistics.mean(diffs),
            "noise": noise}


def flops_per_token(arch: str, vocab: int) -> float:
    """Forward and backward FLOPs of one token (backward ≈ 2 × forward): per layer the input and recurrent
    products, k·H × (E_in + H) multiply-adds for k gate blocks; the output layer H × V; 2 FLOPs a multiply-add."""
    k = {"lstm": 4, "gru": 3, "elman": 1}[arch]
    macs = sum(k * HIDDEN * ((EMB if layer == 0 else HIDDEN) + HIDDEN) for layer in range(LAYERS)) + HIDDEN * vocab
    return 3 * 2 * macs


def matmul_rate(m: int, k: int, n: int, dtype: torch.dtype, seconds: float = 0.4) -> float:
    """GFLOP/s of (m × k) @ (k × n) in this dtype on this CPU, best of several timed loops."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    for _ in range(3):
        a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        best = max(best, 10 * 2 * m * k * n / (time.perf_counter() - t0) / 1e9)
    return best


def cpu_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX-512 BF16 or AMX), as oneDNN reports it: detected."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def roofline(vocab: int) -> dict:
    """This machine's matmul peak at the model's own shapes: the input and output projections over a chunk
    (τ·B rows) and the per-step recurrent product (B rows), fp32 and (where the CPU has it) bf16."""
    rows = BATCH * BPTT
    shapes = {"input V x (τ·B × E · E × 4H)": (rows, EMB, 4 * HIDDEN),
              "recurrent U h (B × H · H × 4H)": (BATCH, HIDDEN, 4 * HIDDEN),
              "output W h (τ·B × H · H × V)": (rows, HIDDEN, vocab)}
    dtypes = {"fp32": torch.float32} | ({"bf16": torch.bfloat16} if cpu_bf16() else {})
    return {name: {d: matmul_rate(*shape, dt) for d, dt in dtypes.items()} for name, shape in shapes.items()}


LOAD_SAMPLES: list[float] = []  # 1-min load average after every timed run (this process adds ~threads)


def machine_load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (< 1 min): few steps, 2 rounds")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--rounds", type=int, help="rounds of alternating contenders (default 7; quick 2)")
    ap.add_argument("--steps", type=int, help="training steps per timed run (default 20; quick 6)")
    ap.add_argument("--eq-steps", type=int, help="steps of the equivalence runs (default 200; quick 20)")
    ap.add_argument("--seeds", type=int, help="seeds of the LSTM's dropout runs, each loop (default 6; quick 2; "
                                              "at least 2)")
    args = ap.parse_args()
    rounds = args.rounds or (2 if args.quick else 7)
    steps = args.steps or (6 if args.quick else 20)
    eq_steps = args.eq_steps or (20 if args.quick else 200)
    seeds = args.seeds or (2 if args.quick else 6)
    if seeds < 2:
        sys.exit("--seeds must be at least 2: the masks' noise is measured from the spread of paired runs")
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    corpus = load_corpus(SPEC)
    steps_per_epoch = -(-(len(corpus.train) // BATCH - 1) // BPTT)
    if not 3 <= steps < steps_per_epoch:
        sys.exit(f"--steps must be in [3, {steps_per_epoch - 1}] so that timed runs stay inside one epoch")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {machine_load()} at start")
    print(f"corpus {SPEC.source}: vocab {len(corpus.vocab)}, train {len(corpus.train)} tokens "
          f"({steps_per_epoch} steps/epoch), valid {len(corpus.valid)}")
    print(f"batch {BATCH}, τ {BPTT}, {LAYERS}×{HIDDEN}, emb {EMB}, SGD lr {LR}, clip {CLIP}, dropout {DROPOUT}; "
          f"{steps} steps per timed run, {rounds} rounds\n")

    small = replace(corpus, valid=corpus.valid[:EVAL_CUT], test=corpus.test[:EVAL_CUT])
    plain_train(small, "lstm", "tanh", 3, DROPOUT, evaluate=False)  # warm-up: allocator, kernels, imports
    lmcore_train(small, "lstm", "tanh", "fused", 3, DROPOUT)

    results = {}
    for label, (arch, activation) in FUSED_ARCHS.items():
        results[label] = speed(corpus, label, arch, activation, steps, rounds)
        print(f"  {label}: timed in {time.perf_counter() - started:.0f} s", flush=True)

    eq_dropout = DROPOUT
    eq = {label: equivalence(corpus, arch, act, eq_steps, eq_dropout) for label, (arch, act) in FUSED_ARCHS.items()}
    spread = seed_spread(corpus, "lstm", "tanh", eq_steps, eq_dropout, range(SEED, SEED + seeds))
    print(f"  equivalence: done in {time.perf_counter() - started:.0f} s\n", flush=True)

    print("Throughput, tokens/s, median over rounds (wall: median step interval; rep: lmcore's reported).")
    print("Ratios: median of per-round ratios; (rep) from reported rates; (best) from the shortest steps.")
    head = (f"{'arch':<11} {'plain':>6} {'lmcore':>6} {'lm rep':>6} {'lm/plain':>8} {'(rep)':>6} {'(best)':>6} "
            f"{'fused':>6} {'fused/plain':>11} {'cells':>6} {'cells/fused':>11} {'(best)':>6}  lmcore trains on")
    print(head)
    print("-" * len(head))
    for label, r in results.items():
        print(f"{label:<11} {r['plain']['wall']:>6.0f} {r['lmcore']['wall']:>6.0f} {r['lmcore']['reported']:>6.0f} "
              f"{r['lmcore/plain']:>8.3f} {r['lmcore/plain reported']:>6.3f} {r['lmcore/plain best']:>6.3f} "
              f"{r['fused']['wall']:>6.0f} {r['fused/plain']:>11.3f} {r['cells']['wall']:>6.0f} "
              f"{r['cells/fused']:>11.3f} {r['cells/fused best']:>6.3f}  {r['default']}")
    s = results["elman-tanh"]
    print(f"{'elman-sigm':<11} {'-':>6} {'-':>6} {'-':>6} {'-':>8} {'-':>6} {'-':>6} {'-':>6} {'-':>11} "
          f"{s['cells-sigmoid']['wall']:>6.0f} "
          f"{s['sigmoid/fused']:>11.3f} {'':>6}  (cells only; ratio to the fused tanh Elman)")
    print("\nPer-round ratios (wall):")
    for label, r in results.items():
        fmt = lambda xs: " ".join(f"{x:.3f}" for x in xs)
        print(f"  {label:<11} lmcore/plain {fmt(r['lmcore/plain rounds'])} | cells/fused {fmt(r['cells/fused rounds'])}")

    print(f"\nEquivalence after {eq_steps} steps, seed {SEED} (valid: batch {EVAL_BATCH}, τ {BPTT}): without dropout "
          f"(the same computation), then with dropout {eq_dropout} (different masks)")
    print(f"{'arch':<11} {'lmcore ppl':>11} {'plain ppl':>11} {'rel diff':>9} {'max|Δw| 0':>10} {'max|Δw| end':>12}"
          f" | {'lmcore ppl':>11} {'plain ppl':>11} {'rel diff':>9}")
    for label, e in eq.items():
        print(f"{label:<11} {e['lmcore0_ppl']:>11.4f} {e['plain0_ppl']:>11.4f} {e['rel_no_dropout']:>9.2e} "
              f"{e['init_diff']:>10.2e} {e['final_diff']:>12.2e} | {e['lmcore_ppl']:>11.4f} {e['plain_ppl']:>11.4f} "
              f"{e['rel']:>9.2e}")
    print("(without dropout lmcore's C++ is off: max|Δw| is 0 at the end and what remains is the evaluators' summation\n"
          " order; with dropout lmcore draws its masks its own, cheaper way, so the runs differ as two seeds do: see the\n"
          " spread below)")
    for label, e in eq.items():
        loop = "the C++ loop" if e["default"] != "fused" else "the fused module"
        print(f"{label:<11} without dropout as lmcore trains by default ({loop}, the C++ softmax where built): valid "
              f"ppl {e['auto0_ppl']:.4f} against the plain loop's {e['plain0_ppl']:.4f} ({e['rel_default']:.2e})")
    for label, e in eq.items():
        print(f"{label:<11} the plain loop against itself with every weight moved by 1e-7 at the start: valid ppl "
              f"{e['nudged_ppl']:.4f} against {e['plain0_ppl']:.4f} ({e['rel_nudged']:.2e}): what rounding alone "
              "becomes in these steps")
    fmt = lambda xs: ", ".join(f"{x:.1f}" for x in xs)
    print(f"LSTM with dropout {eq_dropout}, {eq_steps} steps, seeds {SEED}..{SEED + seeds - 1}: lmcore as it trains by "
          "default "
          f"{fmt(spread['runs']['lmcore'])} (mean {spread['mean']['lmcore']:.2f}), plain "
          f"{fmt(spread['runs']['plain'])} (mean {spread['mean']['plain']:.2f}); lmcore − plain, seed by seed, "
          f"{spread['diff']:+.2f} ± {spread['noise']:.2f} (mean ± its standard error)")

    verdict = lambda ok: "ok" if ok else "BELOW TARGET"
    print("\nRESULTS")
    for label, r in results.items():
        ok = r["lmcore/plain"] >= TARGETS["lmcore/plain"]
        print(f"  lmcore/plain {label:<11} {r['lmcore/plain']:.3f}  (target >= {TARGETS['lmcore/plain']}: {verdict(ok)})")
    for label, r in results.items():
        if "bf16/plain" in r:
            ok = r["bf16/plain"] >= TARGETS["bf16/plain"] and eq[label]["bf16_rel"] <= TARGETS["bf16 ppl rel diff"]
            e = eq[label]
            print(f"  bf16/plain   {label:<11} {r['bf16/plain']:.3f}  valid ppl {e['bf16_ppl']:.3f} vs lmcore fp32 "
                  f"{e['lmcore_ppl']:.3f} with the same masks ({e['bf16_rel']:.2%}) (target >= {TARGETS['bf16/plain']} "
                  f"within {TARGETS['bf16 ppl rel diff']:.0%}: {verdict(ok)})")
    if not any("bf16/plain" in r for r in results.values()):  # the 1.35 target then has only float32 to meet it
        goal = TARGETS["bf16/plain"]
        print(f"  bf16/plain   (none: this CPU has no native bf16 arithmetic, so lmcore trains in float32 here; "
              f"the >= {goal} target for lmcore/plain in any precision: "
              + ", ".join(f"{label} {r['lmcore/plain']:.3f} {verdict(r['lmcore/plain'] >= goal)}"
                          for label, r in results.items()) + ")")
    for label, r in results.items():
        goal = TARGETS["cells/fused lstm"]
        note = f"(target >= {goal}: {verdict(r['cells/fused'] >= goal)})" if label == "lstm" else "(information)"
        print(f"  cells/fused  {label:<11} {r['cells/fused']:.3f}  {note}")
    goal, got = TARGETS["sigmoid-cells/fused-tanh elman"], results["elman-tanh"]["sigmoid/fused"]
    print(f"  sigmoid-cells/fused-tanh elman {got:.3f}  (target >= {goal}: {verdict(got >= goal)})")
    for label, e in eq.items():
        goal = TARGETS["valid ppl rel diff"]
        print(f"  valid ppl rel diff {label:<11} {e['rel_no_dropout']:.2e} without dropout  "
              f"(target <= {goal:.0%}: {verdict(e['rel_no_dropout'] <= goal)})")
        print(f"  valid ppl rel diff {label:<11} {e['rel_default']:.2e} without dropout, as lmcore trains by "
              f"default (its C++; rounding alone moved the plain loop {e['rel_nudged']:.2e}: information)")
    within = abs(spread["diff"]) <= 2 * spread["noise"]
    print(f"  LSTM with dropout, lmcore (default) − plain valid ppl, paired by seed {spread['diff']:+.2f} "
          f"({spread['diff'] / spread['mean']['plain']:+.1%}; 2 standard errors "
          f"{2 * spread['noise']:.2f}: {'within the masks’ own noise' if within else 'OUTSIDE the noise'})")
    peaks = roofline(len(corpus.vocab))
    print("\nRoofline: this CPU's matmul rate at the model's shapes (GFLOP/s; bf16 only where the CPU has it)")
    for name, rates in peaks.items():
        print(f"  {name:<32} " + "  ".join(f"{d} {r:7.1f}" for d, r in rates.items()))
    for label, (arch, _) in FUSED_ARCHS.items():
        achieved = results[label]["lmcore"]["wall"] * flops_per_token(arch, len(corpus.vocab)) / 1e9
        best = {d: max(r[d] for r in peaks.values() if d in r)
                for d in ("fp32", "bf16") if any(d in r for r in peaks.values())}
        print(f"  lmcore {label:<11} {achieved:6.1f} GFLOP/s ({flops_per_token(arch, len(corpus.vocab)) / 1e6:.2f} "
              "MFLOP/token): " + ", ".join(f"{achieved / p:.0%} of the {d} peak ({p:.0f})" for d, p in best.items()))
    print(f"  total time {time.perf_counter() - started:.0f} s; {machine_load()} at end; 1-min load during "
          f"timed runs {min(LOAD_SAMPLES):.2f}..{max(LOAD_SAMPLES):.2f} (this benchmark alone: ~{args.threads})")


if __name__ == "__main__":
    main()
