"""The output layer and loss at large vocabularies: time and memory per training step, whole logits against chunks.

    python benchmarks/bench_output.py [--threads 2] [--rounds 5] [--vocab 2900 10000 50000]

Setting: the standard model (LSTM 2×200, batch 20, τ 35, SGD), token ids drawn from a Zipf law over the
vocabulary (p ∝ 1/rank, as words in text are; ids are frequency ranks, as lmcore's vocabulary is): a full
softmax's step costs the same whatever the words, an adaptive softmax's depends on how many targets are rare.
Contenders, alternating within each round so load hits them alike:
- whole: the logits (N × vocabulary, N = 700) made whole, then F.cross_entropy (what lmcore did before);
- chunked: lmcore.nn.output_loss, a chunk of rows at a time (what the trainer does now; in float32 on the CPU each
  chunk's softmax and gradient in one pass of lmcore's C++, as the trainer takes it where it is built);
- chunked bf16: the same under bfloat16 autocast, where this CPU computes bf16 natively;
- adaptive, adaptive bf16: the adaptive softmax output layer (`--output adaptive`, lmcore.nn.adaptive_output):
  another output layer, still an exact distribution over every word, that computes each row's own cluster only;
- recurrent only (and recurrent only bf16): embedding and recurrent stack, forward and backward, no output
  layer: the floor a step cannot go below, "the speed of the recurrent part"; each adaptive softmax is set
  against the recurrent part in its own precision.
Memory: each contender in a fresh process; how far a step's peak resident memory goes above the resident size
between steps (what exists only while a step runs: logits, activations, their gradients).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import _checkout  # noqa: E402,F401 -- lmcore from this checkout, huge pages as lmcore's processes (first)

from lmcore.nn.architectures import ModelConfig  # noqa: E402
from lmcore.nn.model import RNNLM  # noqa: E402
from lmcore.training.device import bf16_native, native_loss_pays  # noqa: E402

BATCH, BPTT, SIZE, LAYERS = 20, 35, 200, 2


def make_step(contender: str, vocab: int):
    torch.manual_seed(0)
    output = "adaptive" if contender.startswith("adaptive") else "softmax"
    model = RNNLM(ModelConfig(arch="lstm", emb=SIZE, hidden=SIZE, layers=LAYERS, vocab_size=vocab, dropout=0.2,
                              output=output))
    # as the trainer sets it: on the CPU in float32, the softmax and its gradient in one pass of lmcore's C++
    model.native_loss = native_loss_pays(torch.device("cpu"), contender.endswith("bf16"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    zipf = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float64)
    x, y = (torch.multinomial(zipf, BPTT * BATCH, replacement=True).view(BPTT, BATCH) for _ in range(2))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=contender.endswith("bf16"))

    def step():
        optimizer.zero_grad(set_to_none=True)  # first, as the trainer does: the last step's gradients go before this one
        with autocast:
            if contender.startswith("recurrent only"):
                out, _ = model.features(x)
                loss = out.float().square().mean()
            else:
                _, loss, _ = model(x, None, y, need_logits=contender == "whole")
        loss.backward()
        optimizer.step()
    return step


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_added(contender: str, vocab: int) -> int:
    """In this (fresh) process: how far above the resident size between steps a step's peak goes, i.e. the
    memory a step holds only while it runs (logits, activations, their gradients), in bytes. One step first,
    so that the weights' gradients, kept between steps, are in the resident size."""
    step = make_step(contender, vocab)
    step()
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # Linux: restart the high-water mark from here
        f.write("5")
    for _ in range(2):
        step()
    return (_status_kb("VmHWM") - before) * 1024


def measure_memory(contender: str, vocab: int, threads: int) -> int:
    code = (f"import sys, torch; sys.path.insert(0, {str(Path(__file__).parent)!r}); torch.set_num_threads({threads});"
            f"import bench_output as b; print(b.peak_added({contender!r}, {vocab}))")
    # big blocks from mmap, so memory freed after a step leaves the resident size (glibc would keep it otherwise)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.strip().splitlines()[-1])


def time_contenders(contenders: list[str], vocab: int, rounds: int) -> dict[str, float]:
    steps = {c: make_step(c, vocab) for c in contenders}
    for step in steps.values():  # warm-up: allocator, oneDNN primitives
        step()
    times = {c: [] for c in contenders}
    for r in range(rounds):
        for c in contenders[r % len(contenders):] + contenders[:r % len(contenders)]:
            t0 = time.perf_counter()
            steps[c]()
            times[c].append(time.perf_counter() - t0)
    return {c: statistics.median(t) for c, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--vocab", type=int, nargs="+", default=[2900, 10_000, 50_000])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    contenders = ["whole", "chunked", "adaptive", "recurrent only"]
    if bf16_native(torch.device("cpu")):
        contenders[3:3] = ["chunked bf16", "adaptive bf16"]
        contenders.append("recurrent only bf16")
    print(f"torch {torch.__version__}, {args.threads} threads, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = {}
    for vocab in args.vocab:
        seconds = time_contenders(contenders, vocab, args.rounds)
        memory = {c: measure_memory(c, vocab, args.threads) for c in contenders}
        results[vocab] = {"seconds": seconds, "memory": memory}
        print(f"vocabulary {vocab:,}: " + "; ".join(f"{c} {seconds[c] * 1e3:.0f} ms, +{memory[c] / 2**20:.0f} MB"
                                                   for c in contenders))
    print("RESULTS")
    for vocab, r in results.items():
        s, m = r["seconds"], r["memory"]
        line = (f"  V={vocab:>6,}  chunked/whole speed {s['whole'] / s['chunked']:.2f}, "
                f"memory {m['chunked'] / 2**20:.0f} MB vs {m['whole'] / 2**20:.0f} MB "
                f"({m['chunked'] / max(m['whole'], 1):.2f}×); recurrent-only/chunked speed "
                f"{s['recurrent only'] / s['chunked']:.2f}")
        if "chunked bf16" in s:
            line += f"; bf16 chunked/whole speed {s['whole'] / s['chunked bf16']:.2f}"
        print(line)
        for adaptive in (c for c in s if c.startswith("adaptive")):
            floor = "recurrent only" + adaptive[len("adaptive"):]  # the recurrent part in the same precision
            print(f"  {'':8} {adaptive}: step {s[adaptive] * 1e3:.0f} ms = {s[adaptive] / s[floor]:.2f}× the "
                  f"recurrent part's ({floor}: {s[floor] * 1e3:.0f} ms), {s['whole'] / s[adaptive]:.2f}× faster "
                  f"than whole, memory {m[adaptive] / 2**20:.0f} MB")
    print(f"  load at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(json.dumps({str(v): r for v, r in results.items()}))


if __name__ == "__main__":
    main()
