"""Recurrent weights' gradients in one product over all time steps instead of one per step.

In a hand-written layer, pre_t = xp_t + U s_{t−1} + b (+ R a_{t−1} for FGR's gates), so the gradient
reaching pre_t is the one reaching the input projection xp_t, and ∂ℓ/∂U = Σ_t g_tᵀ s_{t−1}. Left to
autograd, every step forms its own g_tᵀ s_{t−1} from a batch of a few rows and adds it up: slow small
products. Here the loop multiplies by detached weights (autograd forms only ∂ℓ/∂s per step) and an
identity on xp, placed before the loop, returns all of Σ_t g_tᵀ s_{t−1} at once from the stacked states.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Term:
    """One weight that multiplies a state (or a bias, states None) into some columns of pre."""
    columns: Tensor | None           # which columns of pre it feeds; None: all
    states: list[Tensor] | None = field(default_factory=list)  # s_{t−1} for t = 0 … T−1, detached


class _WeightGrads(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp: Tensor, terms: list[Term], *weights: Tensor) -> Tensor:
        ctx.terms = terms
        return xp.clone()

    @staticmethod
    def backward(ctx, g: Tensor):
        rows = g.shape[0] * g.shape[1]
        grads = []
        for k, term in enumerate(ctx.terms):
            if not ctx.needs_input_grad[2 + k]:
                grads.append(None)
                continue
            g_k = g if term.columns is None else g.index_select(-1, term.columns)
            if term.states is None:
                grads.append(g_k.sum((0, 1)))
            else:
                grads.append(g_k.reshape(rows, -1).t() @ torch.stack(term.states).reshape(rows, -1))
        return (g, None, *grads)


def defer(xp: Tensor, weights: list[tuple[Tensor, Term]]) -> tuple[Tensor, list[Tensor]]:
    """xp through the identity that owes `weights` their gradients, and the weights detached for the loop.

    The caller appends each step's state to every `Term.states` before the step, and must use xp_t only
    as an addend of pre_t.
    """
    tensors = [w for w, _ in weights]
    return _WeightGrads.apply(xp, [term for _, term in weights], *tensors), [w.detach() for w in tensors]


def wanted(*weights: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(w is not None and w.requires_grad for w in weights)


def from_steps(d_pre: Tensor, h0: Tensor, out: Tensor, need_w: bool, need_b: bool) -> tuple[Tensor | None, Tensor | None]:
    """A C++ loop's recurrent weight and bias gradients: ∂ℓ/∂U = Σ_t δ_tᵀ h_{t−1} and ∂ℓ/∂b = Σ_t δ_t, one product
    and one sum over all steps, from its δ (T, B, n), h_0 (B, H) and outputs h_1 … h_T (T, B, H)."""
    T, B, H = out.shape
    flat = d_pre.reshape(T * B, d_pre.size(-1))
    d_w = flat.t() @ torch.cat([h0.reshape(1, B, H), out[:-1]]).reshape(T * B, H) if need_w else None
    return d_w, flat.sum(0) if need_b else None
