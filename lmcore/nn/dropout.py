"""Dropout whose mask is cheap to draw on the CPU.

PyTorch's CPU dropout draws one Bernoulli number per element from its Mersenne Twister, one at a time:
1.3 ms for a 35 × 20 × 200 activation, about a tenth of a training step of the standard 2×200 LSTM. Here one
64-bit word makes four 16-bit uniforms u, and an element is kept when u ≥ p (p rounded to 1/65,536). The words
come from a counter-based generator (SplitMix64 of seed + i · γ) whose seed is one draw of torch's default
generator, so `torch.manual_seed` and a checkpoint's saved RNG state make runs repeatable as before; lmcore's C++
(native/dropout_mask.cpp) writes the mask in one parallel pass (0.35 → 0.07 ms for that activation's mask), and where it
is not built the same words are computed with tensor operations: the same masks on every machine. On other devices
PyTorch's own dropout is already fast and is used unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcore.nn import native

_LEVELS = 1 << 16  # a uniform u takes one of 65,536 values
_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment
_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


def _signed(x: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    return x - (1 << 64) if x >= 1 << 63 else x


def mask_words(seed: int, count: int) -> Tensor:
    """Words 0 … count − 1 of the generator, int64 (the same bits as uint64): SplitMix64's output for the state
    seed + (i + 1) · γ. Tensor arithmetic wraps at 64 bits as C++'s unsigned does; >> is arithmetic on int64, so
    each shift is masked to its logical result."""
    z = torch.arange(1, count + 1, dtype=torch.int64).mul_(_signed(_GAMMA)).add_(_signed(seed % (1 << 64)))
    z = z.bitwise_xor_((z >> 30) & ((1 << 34) - 1)).mul_(_signed(_MIX[0]))
    z = z.bitwise_xor_((z >> 27) & ((1 << 37) - 1)).mul_(_signed(_MIX[1]))
    return z.bitwise_xor_((z >> 31) & ((1 << 33) - 1))


def _native_masks():
    """lmcore's C++ mask op where it is built (never waiting for a build: the masks are the same without it)."""
    return native.dropout_mask().keep_mask if native.built() else None


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype) -> Tensor:
    """A CPU tensor of `shape`: 1 / P(keep) where an element is kept, else 0 (so E[mask] = 1 exactly)."""
    dropped = round(p * _LEVELS)  # u ∈ {0, …, 65,535} is dropped when u < dropped
    scale = _LEVELS / (_LEVELS - dropped)
    n = shape.numel()
    exact = torch.float64 if dtype == torch.float64 else torch.float32  # float64 keeps its scale to the last bit
    seed = int(torch.randint(-(1 << 63), (1 << 63) - 1, (), dtype=torch.int64))  # torch's generator moves on
    from_c = _native_masks()
    if from_c is not None:
        mask = from_c(n, dropped, scale, seed, exact).view(shape)
    else:
        lanes = mask_words(seed, (n + 3) // 4).view(torch.int16)[:n].view(shape)  # little-endian: lowest first
        u = lanes.to(torch.int32).bitwise_and_(_LEVELS - 1)  # the lane read unsigned
        # u is an integer, so (u − dropped + 1)·scale is ≤ 0 where dropped and ≥ scale where kept: clamped, the
        # mask in float arithmetic (a third of the time of a comparison and torch.where)
        mask = u.to(exact).sub_(dropped - 1).mul_(scale).clamp_(0.0, scale)
    return mask if dtype == exact else mask.to(dtype)


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Zero each element of x with probability p and scale the rest by 1 / (1 − p), while training."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or round(p * _LEVELS) in (0, _LEVELS):
        return F.dropout(x, p, training=True)
    return x * keep_mask(x.shape, p, x.dtype)


class Dropout(nn.Module):
    """nn.Dropout's interface (p, train / eval) over `dropout` above."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
