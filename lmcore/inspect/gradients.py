"""How gradients decay back through time, measured on a real model.

Both curves come from ONE backward pass over a batch: copy b of the batch is the stretch of text that
ends at target position t_b (with `warmup` tokens before the K steps of interest, so the state at
t_b − K is a real one, not zeros). A zero "probe" tensor is added to the state at every step of the
chosen layer, as the state is handed on to step t−k+1 (and, for h, to the output); the gradient
with respect to that probe is the gradient with respect to the state through every path that leaves it.

- ‖∂ℓ_t/∂h_{t−k}‖: ℓ_t is the cross-entropy of the token after t.
- ‖∂h_t/∂h_{t−k}‖_F: the Frobenius norm of the state Jacobian, from probe vectors v (exact with the
  H basis vectors when H ≤ 64, else an unbiased Gaussian estimate: E‖vᵀJ‖² = ‖J‖_F²).
For the LSTM the state at t−k is the whole memory block (h, c): the cell c is where the lecture says
information is kept, and its path (c_t = f ⊙ c_{t−1} + …) is the one that does not vanish.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lmcore.nn.architectures import require_recurrent
from lmcore.nn.model import RNNLM

EXACT_JACOBIAN_MAX_H = 64


@dataclass
class DecayCurve:
    k: np.ndarray          # (K+1,) 0..K
    mean: np.ndarray       # (K+1,) mean over target positions
    std: np.ndarray
    low: np.ndarray        # 10th percentile
    high: np.ndarray       # 90th percentile
    per_position: np.ndarray  # (positions, K+1)
    positions: np.ndarray  # the target positions t


def target_positions(n_tokens: int, K: int, warmup: int, count: int) -> np.ndarray:
    """`count` positions spread evenly over the text, each with K + warmup tokens before it and one after."""
    first, last = K + warmup, n_tokens - 2
    if last < first:
        raise ValueError(f"the text has {n_tokens} tokens; K = {K} with {warmup} warm-up tokens needs at "
                         f"least {K + warmup + 2}")
    return np.unique(np.linspace(first, last, num=min(count, last - first + 1)).round().astype(int))


def _windows(ids: np.ndarray, positions: np.ndarray, length: int, device) -> torch.Tensor:
    idx = positions[None, :] + np.arange(-length + 1, 1)[:, None]  # (L, B): window ending at each t_b
    return torch.as_tensor(np.asarray(ids)[idx], dtype=torch.long, device=device)


def _probed_run(model: RNNLM, x: torch.Tensor, layer: int, edits: dict | None = None):
    """Forward through the cells with zero probes added to `layer`'s state at every step (and the interventions'
    edits, if any: see RNNLM.run_cells).

    Returns (top-layer outputs (L, B, H), probes (L, states, B, H), that layer's h at the last step).
    """
    require_recurrent(model.cfg, "the gradient through time")
    L, B = x.shape
    layer, lstm = layer % model.cfg.layers, model.cfg.arch == "lstm"
    probes = torch.zeros(L, 2 if lstm else 1, B, model.cfg.hidden, device=x.device, requires_grad=True)
    last = {}

    def hook(t, state):
        # LSTM: probes on h and c; FGR's third state part (its gates at t) passes unprobed
        state = (state[0] + probes[t, 0], state[1] + probes[t, 1], *state[2:]) if lstm else state + probes[t, 0]
        last["h"] = state[0] if lstm else state
        return state

    out, _, _ = model.run_cells(model.encoder(x), model.init_hidden(B), state_hooks={layer: hook}, edits=edits)
    return out, probes, last["h"]


def _curve(norms: np.ndarray, positions: np.ndarray) -> DecayCurve:
    return DecayCurve(k=np.arange(norms.shape[1]), mean=norms.mean(0), std=norms.std(0),
                      low=np.percentile(norms, 10, axis=0), high=np.percentile(norms, 90, axis=0),
                      per_position=norms, positions=positions)


def loss_gradient_decay(model: RNNLM, ids, K: int = 50, positions: int = 32, layer: int = -1,
                        warmup: int = 20, edits: dict | None = None) -> DecayCurve:
    """‖∂ℓ_t/∂h_{t−k}‖ for k = 0..K over `positions` target positions, in one backward pass. edits: interventions
    (lmcore.inspect.interventions.make_edits) made in every window, its steps counted from the window's first,
    K + warmup steps before the target."""
    model.eval()
    ids = np.asarray(ids)
    pos = target_positions(len(ids), K, warmup, positions)
    device = model.encoder.weight.device
    x = _windows(ids, pos, K + warmup + 1, device)                 # (L, B)
    targets = torch.as_tensor(ids[pos + 1], device=device)        # the token after each t_b
    out, probes, _ = _probed_run(model, x, layer, edits)
    logits = model.decoder(out[-1])                                 # (B, vocab): prediction at t_b
    loss = F.cross_entropy(logits, targets, reduction="sum")       # copies are independent: one backward
    (grad,) = torch.autograd.grad(loss, probes)                     # (L, states, B, H)
    norms = grad.flip(0)[: K + 1].pow(2).sum(dim=(1, 3)).sqrt()    # (K+1, B); index k = t_b − k
    return _curve(norms.t().cpu().numpy(), pos)


def jacobian_decay(model: RNNLM, ids, K: int = 50, positions: int = 8, layer: int = -1, warmup: int = 20,
                   n_probes: int = 16, seed: int = 0) -> DecayCurve:
    """‖∂h_t/∂h_{t−k}‖_F for k = 0..K (exact for H ≤ 64, else estimated with Gaussian probes)."""
    model.eval()
    ids = np.asarray(ids)
    H = model.cfg.hidden
    pos = target_positions(len(ids), K, warmup, positions)
    if H <= EXACT_JACOBIAN_MAX_H:
        vectors, scale = torch.eye(H), 1.0                          # Σ_i ‖e_iᵀ J‖² = ‖J‖_F² exactly
    else:
        gen = torch.Generator().manual_seed(seed)
        vectors, scale = torch.randn(n_probes, H, generator=gen), 1.0 / n_probes  # E‖vᵀJ‖² = ‖J‖_F²
    P = vectors.size(0)
    device = model.encoder.weight.device
    x = _windows(ids, pos, K + warmup + 1, device).repeat_interleave(P, dim=1)  # (L, B·P): P copies per t_b
    _, probes, h_t = _probed_run(model, x, layer)                   # h_t: (B·P, H) at each t_b
    v = vectors.to(device).repeat(len(pos), 1)                      # (B·P, H), matching repeat_interleave
    (grad,) = torch.autograd.grad((h_t * v).sum(), probes)          # (L, states, B·P, H): vᵀ ∂h_t/∂s_{t−k}
    sq = grad.flip(0)[: K + 1].pow(2).sum(dim=(1, 3))               # (K+1, B·P)
    fro = (sq.view(K + 1, len(pos), P).sum(-1) * scale).sqrt()      # (K+1, B)
    return _curve(fro.t().cpu().numpy(), pos)


def fitted_log_slope(curve: DecayCurve, k_from: int = 1, k_to: int | None = None) -> float:
    """Slope of log(mean norm) against k: log of the per-step decay factor (0 means no decay)."""
    k_to = k_to or len(curve.k) - 1
    ks, ys = curve.k[k_from:k_to + 1], np.log(np.maximum(curve.mean[k_from:k_to + 1], 1e-300))
    return float(np.polyfit(ks, ys, 1)[0])


def input_saliency(model: RNNLM, ids, position: int) -> np.ndarray:
    """‖∂ log p(w_position) / ∂x_j‖ for every earlier input j < position (one backward pass).

    x_j is the embedding of token j; entry j of the result belongs to token j, and positions at or
    after `position` are 0. Large values mark the past tokens the prediction leans on.
    """
    require_recurrent(model.cfg, "saliency over the past")
    if not 1 <= position < len(ids):
        raise ValueError(f"position must be in 1..{len(ids) - 1}")
    model.eval()
    device = model.encoder.weight.device
    x = torch.as_tensor(np.asarray(ids[:position]), device=device).view(-1, 1)  # inputs w_0..w_{position-1}
    emb = model.encoder(x).detach().requires_grad_(True)                        # (T, 1, E)
    out, _, _ = model.run_cells(emb, model.init_hidden(1))
    logp = torch.log_softmax(model.decoder(out[-1, 0]), dim=-1)[int(ids[position])]
    (grad,) = torch.autograd.grad(logp, emb)
    saliency = np.zeros(len(ids))
    saliency[:position] = grad[:, 0].norm(dim=-1).cpu().numpy()
    return saliency
