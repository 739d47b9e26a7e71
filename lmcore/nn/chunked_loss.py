"""Cross-entropy of softmax(h Wᵀ + b) a chunk of rows at a time, the softmax turned into its gradient in place.

Written out whole, a training step holds the logits W h + b (N × vocabulary), their log-softmax and the
gradient of both: at N = 700 targets (batch 20 × τ 35) and 50k words, 140 MB each. Here at most one chunk of
logits exists at a time. Its softmax becomes the gradient in place (∂ℓ/∂z = y − onehot(target)), which is
multiplied into ∂ℓ/∂h, ∂ℓ/∂W and ∂ℓ/∂b straight away, so the backward pass only scales what the forward pass
kept. The products are the ones the whole-matrix version computes, so under autocast they run in bfloat16 as
there; the softmax and the sums stay float32. With in_place (training on the CPU in float32) each chunk's z = h Wᵀ
is a plain product and lmcore's C++ adds b, makes ℓ and ∂ℓ/∂z in one sweep of the rows, and sums b's gradient.
Used by the full softmax (lmcore.nn.output_loss) and by the adaptive softmax's head and clusters
(lmcore.nn.adaptive_output).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lmcore.nn import native

CHUNK_ELEMENTS = 1 << 23  # logits per chunk: 32 MB of float32 (e.g. 167 rows of a 50k vocabulary)


def chunk_rows(vocab: int, elements: int | None = None) -> int:
    return max(16, (elements or CHUNK_ELEMENTS) // max(vocab, 1))


def output_loss(h: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor,
                rows: int | None = None, in_place: bool = False) -> Tensor:
    """Mean cross-entropy of softmax(h Wᵀ + b) against targets, never more than `rows` rows of logits at once.

    h: (N, H); weight: (vocab, H); bias: (vocab,) or None; targets: (N,) ids. Differentiable in h, W and b.
    in_place: each chunk's softmax and gradient in one pass of lmcore's C++ (lmcore/nn/native/softmax_loss.cpp;
    float32 on the CPU, where it is built), equal to PyTorch's way to rounding."""
    rows = rows or chunk_rows(weight.size(0))
    if not torch.is_grad_enabled() or not (h.requires_grad or weight.requires_grad):
        return _loss_only(h, weight, bias, targets, rows)
    cpu_float32 = h.device.type == "cpu" and _mm_dtype(h) == weight.dtype == torch.float32  # the C++'s only kind
    softmax = native.softmax_loss() if in_place and cpu_float32 else None
    return _ChunkedCrossEntropy.apply(h, weight, bias, targets, rows, softmax)


def _loss_only(h: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, rows: int) -> Tensor:
    total = h.new_zeros((), dtype=torch.float32)
    for start in range(0, h.size(0), rows):
        logits = F.linear(h[start:start + rows], weight, bias).float()
        total = total + F.cross_entropy(logits, targets[start:start + rows], reduction="sum")
    return total / max(h.size(0), 1)


class _ChunkedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor, rows: int,
                softmax=None) -> Tensor:
        n, dtype = max(h.size(0), 1), _mm_dtype(h)
        grad_h = torch.empty_like(h)
        grad_w = torch.zeros_like(weight, dtype=torch.float32)
        grad_b = None if bias is None else torch.zeros_like(bias, dtype=torch.float32)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for start in range(0, h.size(0), rows):
            h_c, y_c = h[start:start + rows], targets[start:start + rows]
            if softmax is not None:  # z + b, ℓ and ∂ℓ/∂z (and b's share) in one pass, in the logits' memory
                grad = torch.mm(h_c, weight.t())
                part, grad_b_c = softmax.softmax_xent_(grad, y_c, bias, 1.0 / n)
                total += part
                if grad_b is not None:
                    grad_b += grad_b_c
            else:
                grad = _gradient_of_logits(F.linear(h_c, weight, bias).float(), y_c, n, total)
            low = grad.to(dtype)
            grad_h[start:start + rows] = torch.mm(low, weight.to(dtype))
            if dtype == grad_w.dtype:  # in place: no temporary of W's size
                grad_w.addmm_(low.t(), h_c)
            else:
                grad_w += torch.mm(low.t(), h_c.to(dtype))
            if grad_b is not None and softmax is None:
                grad_b += grad.sum(0)
        ctx.save_for_backward(grad_h, grad_w, grad_b if grad_b is not None else grad_h.new_empty(0))
        ctx.has_bias = bias is not None
        ctx.weight_dtype = weight.dtype
        return total / n

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        scale = grad_loss.to(torch.float32)
        if bool(scale == 1):  # the usual loss.backward(): hand over what forward made, no copy of W's size
            return grad_h, grad_w.to(ctx.weight_dtype), grad_b.to(ctx.weight_dtype) if ctx.has_bias else None, None, None, None
        return (grad_h * scale.to(grad_h.dtype), (grad_w * scale).to(ctx.weight_dtype),
                (grad_b * scale).to(ctx.weight_dtype) if ctx.has_bias else None, None, None, None)


def _gradient_of_logits(logits: Tensor, targets: Tensor, n: int, total: Tensor) -> Tensor:
    """∂ℓ/∂z = (softmax(z) − onehot) / n in the logits' memory (rows, vocab); adds the rows' Σ ℓ to total."""
    lse = torch.logsumexp(logits, dim=1)
    total += (lse - logits.gather(1, targets[:, None])[:, 0]).sum()
    grad = logits.sub_(lse[:, None]).exp_()                                    # softmax
    grad[torch.arange(targets.size(0), device=logits.device), targets] -= 1.0  # − onehot
    return grad.div_(n)


def _mm_dtype(h: Tensor) -> torch.dtype:
    """The products' dtype: bfloat16 (or float16) under autocast, as F.linear would use; else h's."""
    if torch.is_autocast_enabled(h.device.type):
        return torch.get_autocast_dtype(h.device.type)
    return h.dtype
