"""Through-time measurements: the gradient-decay curve and the context-use curve, against references.

    python benchmarks/bench_through_time.py [--threads 2] [--repeats 3]

1. Gradient decay, K = 100, 32 target positions, 2×256 LSTM (vocab 10k): one probed forward and one
   backward over 32 windows of 121 steps. Reference in the same run: one fused training step
   (forward + backward) over the same 32 × 121 tokens. Target: at most 2 s.
2. Context use over 9 lengths (1 … 200 and all) on 20k validation tokens of the same model.
   Reference: one ordinary evaluation pass over those tokens. Target: at most 30 s, in the precision the page
   uses (the recurrent stack in bf16 where the CPU computes it natively, the LSTM through lmcore's C++; float32
   and PyTorch's bf16 path timed beside it). The model is untrained (random weights): the times are what they
   would be, and the perplexities near the vocabulary's size.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

import _checkout  # noqa: E402,F401 -- lmcore from this checkout, huge pages as lmcore's processes (first)

from lmcore.corpus.batching import batchify  # noqa: E402
from lmcore.inspect.gradients import loss_gradient_decay  # noqa: E402
from lmcore.inspect.memory import context_perplexity  # noqa: E402
from lmcore.nn.architectures import ModelConfig  # noqa: E402
from lmcore.nn.model import RNNLM  # noqa: E402
from lmcore.training.device import bf16_native  # noqa: E402
from lmcore.training.trainer import evaluate  # noqa: E402

VOCAB, SIZE, LAYERS, K, POSITIONS, WARMUP = 10_000, 256, 2, 100, 32, 20


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=20_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch="lstm", emb=SIZE, hidden=SIZE, layers=LAYERS, vocab_size=VOCAB)).eval()
    ids = np.random.default_rng(0).integers(0, VOCAB, args.tokens + 1)
    print(f"torch {torch.__version__}, {args.threads} threads, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    def decay():
        loss_gradient_decay(model, ids[:5000], K=K, positions=POSITIONS, warmup=WARMUP)

    def train_step_reference():  # the same tokens through the fused module, forward + backward
        x = torch.as_tensor(ids[: POSITIONS * (K + WARMUP + 1)]).view(POSITIONS, -1).t()
        _, loss, _ = model(x[:-1], targets=x[1:])
        loss.backward()
        model.zero_grad(set_to_none=True)

    decay(), train_step_reference()  # warm-up
    t_decay, t_ref = timed(decay, args.repeats), timed(train_step_reference, args.repeats)
    print(f"gradient decay (K={K}, {POSITIONS} positions)   {t_decay:.3f} s")
    print(f"fused train step over the same tokens       {t_ref:.3f} s")

    valid = ids[: args.tokens]
    t0 = time.perf_counter()
    table = context_perplexity(model, valid, max_targets=args.tokens)
    t_float32 = t_context = time.perf_counter() - t0
    t_eval = timed(lambda: evaluate(model, batchify(valid, 10), 35), 1)
    print(f"context use, {len(table)} lengths, {args.tokens} tokens, float32   {t_float32:.1f} s")
    if bf16_native(torch.device("cpu")):  # the page's and the CLI's default where native: the recurrent stack in bf16
        os.environ["LMCORE_NATIVE"] = "0"  # PyTorch's bf16 autocast path, as any model but the LSTM takes
        t0 = time.perf_counter()
        context_perplexity(model, valid, max_targets=args.tokens, bf16=True)
        t_autocast = time.perf_counter() - t0
        del os.environ["LMCORE_NATIVE"]
        print(f"context use, bf16 through PyTorch (C++ off)  {t_autocast:.1f} s")
        t0 = time.perf_counter()
        fast = context_perplexity(model, valid, max_targets=args.tokens, bf16=True)
        t_context = time.perf_counter() - t0
        worst = float((fast["ppl"] / table["ppl"] - 1).abs().max())
        print(f"context use, bf16, the LSTM through C++     {t_context:.1f} s "
              f"({t_float32 / t_context:.2f}x float32, {t_autocast / t_context:.2f}x PyTorch's bf16; "
              f"perplexities within {worst:.3%})")
    print(f"one evaluation pass over the tokens         {t_eval:.2f} s")
    print("RESULTS")
    print(f"  decay / train step      {t_decay / t_ref:.2f}   decay {t_decay:.3f} s "
          f"(target <= 2 s: {'ok' if t_decay <= 2 else 'MISSED'})")
    print(f"  context / eval pass     {t_context / t_eval:.1f}   context {t_context:.1f} s "
          f"(target <= 30 s: {'ok' if t_context <= 30 else 'MISSED'}; float32 {t_float32:.1f} s)")
    print(f"  load at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
