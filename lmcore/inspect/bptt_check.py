"""The lecture's hand-written BPTT (`bptt_numpy`) side by side with PyTorch autograd, for one example.

The autograd reference rebuilds each output's loss ℓ_t from s(t−τ), taken as a constant, and sums:
the same truncation `bptt_numpy.backward` implements, computed by a different method (float64).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lmcore.lecture.numpy_rnn import BackwardRecord, Grads, LectureRNN, backward, forward

NAMES = ("V", "U", "W", "b1", "b2")


def _step(p: dict, x: torch.Tensor, s_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    net = p["V"] @ x + p["U"] @ s_prev + (p["b1"] if "b1" in p else 0)   # (2)
    return net, torch.sigmoid(net)                                         # (1)


def autograd_truncated(params: LectureRNN, inputs, targets, s0, tau: int, inspect_t: int | None = None):
    """Gradients of Σ_t ℓ_t with each ℓ_t reaching back τ steps, and ‖∂ℓ_{inspect_t}/∂net(t−k)‖ for each k."""
    p = {n: torch.tensor(getattr(params, n), dtype=torch.float64, requires_grad=True)
         for n in NAMES if getattr(params, n) is not None}
    vocab = params.V.shape[1]
    xs = torch.eye(vocab, dtype=torch.float64)[list(inputs)]
    inspect_t = len(inputs) - 1 if inspect_t is None else inspect_t
    with torch.no_grad():
        states = {-1: torch.as_tensor(np.asarray(s0), dtype=torch.float64)}
        for t in range(len(inputs)):
            states[t] = _step(p, xs[t], states[t - 1])[1]
    loss, nets = 0, []
    for t in range(len(inputs)):
        s = states[max(0, t - tau + 1) - 1].detach()
        for j in range(max(0, t - tau + 1), t + 1):
            net, s = _step(p, xs[j], s)
            if t == inspect_t:
                net.retain_grad()
                nets.append(net)
        out = p["W"] @ s + (p["b2"] if "b2" in p else 0)                     # (4)
        loss = loss + -torch.log_softmax(out, dim=0)[targets[t]]            # (3) and cross-entropy
    loss.backward()
    grads = {n: t.grad.numpy() for n, t in p.items()}
    delta_norms = [float(n.grad.norm()) for n in reversed(nets)]  # k = 0 is net(t) itself
    return grads, delta_norms


@dataclass
class Walkthrough:
    tokens: list[str]
    loss: float
    grads: Grads                    # bptt_numpy's, by the delta rule
    record: BackwardRecord          # the walk back from output t: ‖δ(t−k)‖ and ΔU terms
    reference: dict[str, np.ndarray]  # autograd's gradients
    reference_delta_norms: list[float]
    rel_errors: dict[str, float]    # ‖numpy − autograd‖ / ‖autograd‖ per weight matrix
    states: list[np.ndarray] = field(default_factory=list)  # s(t) of the forward pass, per step
    target_probs: list[float] = field(default_factory=list)  # y(t) at the token that follows step t


def walkthrough(tokens: list[str], hidden: int = 8, tau: int = 5, seed: int = 0, scale: float = 0.5,
                inspect_t: int | None = None, guo_typo: bool = False) -> Walkthrough:
    """One training example (predict each next token of `tokens`), both ways."""
    if len(tokens) < 2:
        raise ValueError("the example needs at least two tokens")
    vocab = sorted(set(tokens))
    ids = [vocab.index(t) for t in tokens]
    inputs, targets = ids[:-1], ids[1:]
    params = LectureRNN.init(len(vocab), hidden, seed=seed, scale=scale)
    s0 = np.zeros(hidden)
    loss, caches = forward(params, inputs, targets, s0)
    grads, record = backward(params, caches, tau, inspect_t, guo_typo=guo_typo)
    reference, ref_norms = autograd_truncated(params, inputs, targets, s0, tau, record.t)
    ours = {"V": grads.dV, "U": grads.dU, "W": grads.dW}
    rel = {n: float(np.linalg.norm(ours[n] - reference[n]) / max(np.linalg.norm(reference[n]), 1e-300)) for n in ours}
    states = [caches.s[t] for t in range(len(inputs))]
    probs = [float(caches.y[t][targets[t]]) for t in range(len(inputs))]
    return Walkthrough(tokens, loss, grads, record, reference, ref_norms, rel, states, probs)
