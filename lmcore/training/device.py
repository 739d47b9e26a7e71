"""Device choice: `auto` takes CUDA, then Apple's MPS, then the CPU; where bfloat16 arithmetic is native, and where
it pays."""
from __future__ import annotations

import torch

from lmcore.nn import native
from lmcore.nn.architectures import ModelConfig


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but this machine has no CUDA GPU (use auto or cpu)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device mps was asked for, but MPS is not available here (use auto or cpu)")
    return device


def bf16_native(device: torch.device) -> bool:
    """Whether this device does bfloat16 arithmetic natively (detected, never assumed): any CUDA GPU torch runs on
    here; a CPU with AVX-512 BF16 or AMX, as oneDNN reports it. Elsewhere bf16 would be emulated, slower than fp32."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_pays(model: ModelConfig, device: str = "auto") -> bool:
    """Whether a run trains in bfloat16 unless told: the fused LSTM on a CPU with native bf16, where it measured
    1.5–2.2× the float32 speed at equal perplexity (±0.7%: benchmarks/bench_train.py). Not the GRU (no faster:
    PyTorch's GRU stays float32 under autocast), the cells (their hand-written backward is float32) or CUDA
    (not measured here)."""
    try:
        resolved = resolve_device(device)
    except (ValueError, RuntimeError):  # a device this machine lacks or no device: the run's checks say so
        return False
    return resolved.type == "cpu" and model.arch == "lstm" and model.uses_fused and bf16_native(resolved)


def native_pays(model: ModelConfig, device: torch.device, bf16: bool, compile_mode: str = "auto") -> bool:
    """Whether training takes lmcore's C++ time loop (the hand-written cells, lmcore/nn/native) rather than
    PyTorch's fused module, for a model both can run: PyTorch's LSTM and GRU and the tanh or ReLU Elman network
    (IRNN too), on the CPU in float32, on backend auto, where the library is built already (a job never waits for
    the compiler) and where it measured faster (`c_loop_measured_faster`). Not under bf16 autocast (the C++
    products are float32, and oneDNN's fused LSTM is the fast one in bf16), nor with compile "on" (the cells would
    then step through torch.compile in Python, not the C++ loop)."""
    return (model.backend == "auto" and model.fusable and model.arch in ("lstm", "gru", "elman", "irnn")
            and device.type == "cpu" and not bf16 and compile_mode != "on" and c_loop_measured_faster()
            and native.built())


def native_loss_pays(device: torch.device, bf16: bool) -> bool:
    """Whether training's output layer takes lmcore's C++ softmax (lmcore/nn/native/softmax_loss.cpp: z + b, ℓ and
    ∂ℓ/∂z in one pass over each row, in place) rather than PyTorch's log-softmax, zero fill, scatter and
    log-softmax backward, five passes over the N × vocabulary logits: on the CPU in float32 (the products stay
    ATen's), where the library is built already. Any model with the full softmax, on any CPU."""
    return device.type == "cpu" and not bf16 and native.built()


def c_loop_measured_faster() -> bool:
    """Where the C++ loop trains faster than the fused module: x86 processors with AVX2 and no AVX-512 (most
    laptops, Zen 1–3), its threads on OpenMP as PyTorch's (benchmarks/bench_train.py, 2 Zen 3 cores: the tanh
    Elman 1.3×, the 2 × 200 LSTM 1.0–1.2×, the LSTM preset's 1 × 200 at batch 10 the same; the GRU 1.7–1.8×, its
    preset's too, a step against PyTorch's GRU, which trains step by step in tensor operations). On AVX-512 (Zen 4) the
    cells had measured 0.94–0.96 of the fused LSTM, and without OpenMP the loop runs on one thread: the fused
    module stays there."""
    return torch.backends.cpu.get_cpu_capability() == "AVX2" and bool(native.OPENMP)
