"""One GRU layer in PyTorch's convention, with backpropagation through time in C++ for training on the cells
(lmcore/nn/native/gru_steps.cpp), where it applies: the CPU, float32 or float64.

    r = σ(x_r + U_r h + b_r),  z = σ(x_z + U_z h + b_z),  n = tanh(x_n + r ⊙ (U_n h + b_n)),  h' = n + z ⊙ (h − n)

The C++ returns, for every step, ∂ℓ/∂x (x = V x_t + b_ih, blocks r, z, n) and ∂ℓ/∂(U h_{t−1} + b_hh), which differs
from it in the n block only (times r); then
    ∂ℓ/∂U = Σ_t ∂ℓ/∂(U h_{t−1} + b_hh)ᵀ h_{t−1},   ∂ℓ/∂b_hh = Σ_t ∂ℓ/∂(U h_{t−1} + b_hh)   (one product, one sum).
Cho et al.'s convention (r before U_n) and every other device keep unroll.run_layer's Python loop (GRUCell.step),
the reference the tests hold this one to.
"""
from __future__ import annotations

import torch
from torch import Tensor

from lmcore.nn import deferred_grads, native


def run_gru_layer(xp: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> tuple[Tensor, Tensor] | None:
    """outputs (T, B, H) and h_T, differentiable in everything; None where the C++ loop does not apply."""
    ops = _ops(xp)
    if ops is None:
        return None
    out = _GRULayer.apply(xp, h0, w_hh, b_hh, ops)
    return out, out[-1]


def gru_layer_gates(xp: Tensor, h0: Tensor, w_hh: Tensor,
                    b_hh: Tensor | None) -> tuple[Tensor, Tensor, dict[str, Tensor]] | None:
    """Without gradients, the C++ loop's forward with its gates kept: outputs, h_T and r, z, n (each (T, B, H)) as
    unroll.run_layer's keep_gates stacks them; None where the C++ loop does not apply."""
    ops = _ops(xp)
    if ops is None:
        return None
    out, acts = ops.forward(xp, b_hh, h0, w_hh)  # acts: r, z, n and U_n h + b_n, blocks of H
    H = h0.size(-1)
    return out, out[-1], {name: acts[..., k * H:(k + 1) * H] for k, name in enumerate("rzn")}


def _ops(xp: Tensor):
    """gru_steps.cpp's ops where they apply to xp (the CPU, float32 or float64, at least one step), else None."""
    if xp.device.type != "cpu" or xp.dtype not in (torch.float32, torch.float64) or xp.size(0) == 0:
        return None
    return native.gru_steps()


class _GRULayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, w_hh, b_hh, ops):
        out, acts = ops.forward(xp, b_hh, h0, w_hh)
        ctx.ops, ctx.has_bias = ops, b_hh is not None
        ctx.save_for_backward(out, acts, h0, w_hh)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable  # the C++ backward records no graph: no second derivatives
    def backward(ctx, d_out):
        out, acts, h0, w_hh = ctx.saved_tensors
        # out[-1] (h_T, returned to the caller as the final state) reaches here through d_out's last step
        d_x, d_u, dh0 = ctx.ops.backward(d_out.contiguous(), torch.zeros_like(h0), acts, out, h0, w_hh)
        need = ctx.needs_input_grad
        d_w, d_b = deferred_grads.from_steps(d_u, h0, out, need[2], ctx.has_bias and need[3])
        return d_x if need[0] else None, dh0 if need[1] else None, d_w, d_b, None
