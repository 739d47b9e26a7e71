"""Training-step speed: fused module vs hand-written cells, eager and torch.compile'd (and bf16 autocast).

    python benchmarks/bench_compile.py [--device cuda] [--steps 30] [--rounds 3] [--batch 64] [--quick]

One training step as lmcore's trainer takes it (forward, cross-entropy, backward, clip, SGD step) of a
2×200 LM (emb 200, vocab 10,000, τ 35), on random tokens; the device is synchronised around each timed
block. The compiled cells are warmed up (compiled) before timing: the compile time is printed apart.
Contenders alternate within each round; each ratio is the median of the per-round ratios to the fused
LSTM. Prints "RESULTS" then one ratio per line. On the CPU compile is off by default in lmcore (eager is
already ~0.65 of fused there); pass --device cpu to measure it anyway (needs a C++ compiler).
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

import _checkout  # noqa: E402,F401 -- lmcore from this checkout, huge pages as lmcore's processes (first)

from lmcore.nn import unroll  # noqa: E402
from lmcore.nn.architectures import ModelConfig  # noqa: E402
from lmcore.nn.model import RNNLM, detach_hidden  # noqa: E402

VOCAB, EMB, HIDDEN, LAYERS, BPTT = 10_000, 200, 200, 2, 35


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def contender(device, arch="lstm", backend="fused", compile_="off", bf16=False, **kw):
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch=arch, emb=EMB, hidden=HIDDEN, layers=LAYERS, vocab_size=VOCAB, dropout=0.0,
                              backend=backend, **kw)).to(device).train()
    model.compile = compile_
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 and device.type == "cuda" \
        else contextlib.nullcontext
    state = {"hidden": None}

    def steps(n, batch):
        x = torch.randint(0, VOCAB, (BPTT + 1, batch), device=device)
        for _ in range(n):
            h = detach_hidden(state["hidden"]) if state["hidden"] is not None else None
            with amp():
                _, loss, state["hidden"] = model(x[:-1], h, x[1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            opt.step()
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="5 steps, 2 rounds, LSTM only")
    a = ap.parse_args()
    if a.quick:
        a.steps, a.rounds = 5, 2
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    runs = {"lstm fused": contender(device),
            "lstm cells eager": contender(device, backend="cells"),
            "lstm cells compiled": contender(device, backend="cells", compile_="on")}
    if cuda:
        runs["lstm fused bf16"] = contender(device, bf16=True)
        runs["lstm cells compiled bf16"] = contender(device, backend="cells", compile_="on", bf16=True)
    if not a.quick:
        runs["peephole cells eager"] = contender(device, backend="cells", variant="peephole")
        runs["peephole cells compiled"] = contender(device, backend="cells", variant="peephole", compile_="on")
        runs["gru fused"] = contender(device, arch="gru")
        runs["gru-cho cells eager"] = contender(device, arch="gru", backend="cells", gru_convention="cho")
        runs["gru-cho cells compiled"] = contender(device, arch="gru", backend="cells", gru_convention="cho",
                                                   compile_="on")
    warm = {}
    for name, steps in runs.items():  # warm-up: the compiled ones compile here (timed apart)
        sync(device)
        t0 = time.perf_counter()
        steps(2, a.batch)
        sync(device)
        warm[name] = time.perf_counter() - t0
    rates = {name: [] for name in runs}
    names = list(runs)
    for r in range(a.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            sync(device)
            t0 = time.perf_counter()
            runs[name](a.steps, a.batch)
            sync(device)
            rates[name].append(a.steps * BPTT * a.batch / (time.perf_counter() - t0))
    gpu = torch.cuda.get_device_name(device) if cuda else f"CPU, {a.threads} threads"
    print(f"torch {torch.__version__} on {gpu}; {LAYERS}×{HIDDEN}, vocab {VOCAB}, batch {a.batch}, τ {BPTT}; "
          f"{a.rounds} rounds × {a.steps} steps; compile stats {unroll.compile_stats()}")
    for name in names:
        print(f"  {name:26s} {statistics.median(rates[name]):>10,.0f} tokens/s   (warm-up/compile {warm[name]:.1f} s)")
    print("RESULTS")
    base = {"lstm": "lstm fused", "peephole": "lstm fused", "gru": "gru fused", "gru-cho": "gru fused"}
    for name in names:
        ref = base[name.split()[0]]
        if name == ref:
            continue
        ratio = statistics.median(x / y for x, y in zip(rates[name], rates[ref]))
        print(f"  {name} / {ref:12s} {ratio:.2f}")
    e, c = statistics.median(rates["lstm cells eager"]), statistics.median(rates["lstm cells compiled"])
    print(f"  lstm cells compiled / eager  {c / e:.2f}")


if __name__ == "__main__":
    main()
