"""Trace latency: 2,000 tokens through a 2×256 LSTM, against a plain fused forward over the same tokens.

    python benchmarks/bench_trace.py [--tokens 2000] [--repeats 7] [--threads 2] [--device cuda]

The trace runs the hand-written cells step by step and keeps every gate (i, f, g, o, c, h per layer)
plus the full next-token distribution; the reference is `nn.LSTM` + decoder + softmax on the same
weights and tokens, no gates kept. Both alternate within each repeat; the medians are printed with
their ratio. Target: the trace itself at most 0.5 s on the development machine's CPU.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

import _checkout  # noqa: E402,F401 -- lmcore from this checkout, huge pages as lmcore's processes (first)

from lmcore.inspect.trace import trace  # noqa: E402
from lmcore.nn.architectures import ModelConfig  # noqa: E402
from lmcore.nn.model import RNNLM  # noqa: E402

VOCAB, EMB, HIDDEN, LAYERS = 10_000, 256, 256, 2
TARGET_S = 0.5


@torch.no_grad()
def fused_forward(model: RNNLM, ids: np.ndarray) -> torch.Tensor:
    device = model.encoder.weight.device
    logits, _, _ = model(torch.as_tensor(ids, device=device).view(-1, 1))
    out = torch.softmax(logits[:, 0], dim=-1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the trace copies its result to the host)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch="lstm", emb=EMB, hidden=HIDDEN, layers=LAYERS, vocab_size=VOCAB)).to(args.device).eval()
    ids = np.random.default_rng(0).integers(0, VOCAB, args.tokens)
    trace(model, ids[:50]), fused_forward(model, ids[:50])  # warm-up
    t_trace, t_fused = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        tr = trace(model, ids)
        t_trace.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fused_forward(model, ids)
        t_fused.append(time.perf_counter() - t0)
    trace_s, fused_s = statistics.median(t_trace), statistics.median(t_fused)
    print(f"torch {torch.__version__}, device {args.device}, {args.threads} threads, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.tokens} tokens, LSTM {LAYERS}×{HIDDEN}, vocab {VOCAB}; gates kept: {', '.join(tr.names(0))}")
    print(f"trace (cells, every gate)   median {trace_s:.3f} s   ({args.tokens / trace_s:,.0f} tokens/s)")
    print(f"fused forward (no gates)    median {fused_s:.3f} s   ({args.tokens / fused_s:,.0f} tokens/s)")
    print("RESULTS")
    print(f"  trace / fused time ratio  {trace_s / fused_s:.2f}")
    print(f"  trace seconds             {trace_s:.3f}  (target <= {TARGET_S}: {'ok' if trace_s <= TARGET_S else 'MISSED'})")


if __name__ == "__main__":
    main()
