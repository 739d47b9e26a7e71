"""One Elman layer, h_t = f(V x_t + U h_{t−1} + b), with backpropagation through time in C++ for training on the
cells (lmcore/nn/native/elman_steps.cpp), where it applies: the CPU, float32 or float64, σ, tanh or ReLU.

With δ_t = ∂ℓ/∂pre_t = (∂ℓ/∂h_t) ⊙ f'(pre_t), where f' comes from h_t alone (h(1 − h), 1 − h², [h > 0]):
    ∂ℓ/∂h_{t−1} = δ_t U (+ ∂ℓ/∂h_{t−1} from above),   ∂ℓ/∂xp_t = δ_t,
    ∂ℓ/∂U = Σ_t δ_tᵀ h_{t−1},   ∂ℓ/∂b = Σ_t δ_t   (one product and one sum over all steps).
Elsewhere unroll.run_layer keeps its Python loop (ElmanCell.step), the reference the tests hold this one to.
"""
from __future__ import annotations

import torch
from torch import Tensor

from lmcore.nn import deferred_grads, native

ACTIVATION_CODES = {"sigmoid": 0, "tanh": 1, "relu": 2}  # elman_steps.cpp's Activation


def run_elman_layer(activation: str, xp: Tensor, h0: Tensor, w_hh: Tensor,
                    b_hh: Tensor | None) -> tuple[Tensor, Tensor] | None:
    """outputs (T, B, H) and h_T, differentiable in everything; None where the C++ loop does not apply."""
    ops = native.elman_steps() if xp.device.type == "cpu" and xp.dtype in (torch.float32, torch.float64) else None
    if ops is None or activation not in ACTIVATION_CODES or xp.size(0) == 0:
        return None
    out = _ElmanLayer.apply(xp, h0, w_hh, b_hh, ops, ACTIVATION_CODES[activation])
    return out, out[-1]


class _ElmanLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, w_hh, b_hh, ops, code: int):
        out = ops.forward(xp, b_hh, h0, w_hh, code)
        ctx.ops, ctx.code, ctx.has_bias = ops, code, b_hh is not None
        ctx.save_for_backward(out, h0, w_hh)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable  # the C++ backward records no graph: no second derivatives
    def backward(ctx, d_out):
        out, h0, w_hh = ctx.saved_tensors
        # out[-1] (h_T, returned to the caller as the final state) reaches here through d_out's last step
        d_pre, dh0 = ctx.ops.backward(d_out.contiguous(), torch.zeros_like(h0), out, w_hh, ctx.code)
        need = ctx.needs_input_grad
        d_w, d_b = deferred_grads.from_steps(d_pre, h0, out, need[2], ctx.has_bias and need[3])
        return d_pre if need[0] else None, dh0 if need[1] else None, d_w, d_b, None, None
