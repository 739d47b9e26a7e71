"""How strongly the hidden state at each step depends on one input: Graves (2012) Figs. 4.1 and 4.4.

    s_t = ‖ ∂ h̄_t / ∂ x_source ‖₂,     h̄_t = mean of h_t over the chosen units (one unit, a set, or all)

where x_source is the input embedding at step `source` and h_t the hidden state of one layer. s_t is 0
for t < source (the past cannot depend on a later input). A vanishing gradient shows as s_t falling
to 0 as t moves away from the source; an LSTM cell that keeps its content (forget gate open, input
gate closed) keeps s_t up.

One backward pass for all t. The steps before the source do not depend on x_source, so they run once
(batch 1). From the source on, the sequence runs as B = T - source independent copies in the batch,
each with its own leaf copy of x_source. Copy c contributes only h̄ at step source + c to the summed
objective, so the gradient on copy c's leaf is exactly ∂h̄_{source+c} / ∂x_source. Dropout is off
(eval mode) so the copies are identical; the hand-written cells (`model.run_cells`) run every
architecture, the sigmoid Elman RNN included.

`unit_sensitivity` uses the same trick across units instead of steps: ‖∂h_t[u]/∂x_source‖ for every
unit u at one step t, to find the unit that keeps the most of an input.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch

from lmcore.nn.architectures import require_recurrent
from lmcore.nn.model import RNNLM

Units = int | Iterable[int] | None
# Interventions inside the measurement: the edits (RNNLM.run_cells) of a run whose first step is this step of the
# text, e.g. lambda offset: interventions.make_edits(model, ivs, offset=offset).
EditsAt = Callable[[int], dict] | None


def unit_index(units: Units, hidden: int) -> list[int] | slice:
    """The units to average: an int (one unit), an iterable of ints (their mean), None (all units)."""
    if units is None:
        return slice(None)
    chosen = [int(units)] if isinstance(units, (int, np.integer)) else [int(u) for u in units]
    if not chosen:
        raise ValueError("units: choose at least one unit (or None for all)")
    bad = [u for u in chosen if not -hidden <= u < hidden]
    if bad:
        raise ValueError(f"units {bad} out of range for {hidden} hidden units")
    return chosen


def mean_over_units(values: np.ndarray, units: Units = None) -> np.ndarray:
    """(T, H) values → (T,): one unit's column, or the mean over a set of units (None: all)."""
    values = np.asarray(values)
    return values[:, unit_index(units, values.shape[1])].reshape(values.shape[0], -1).mean(axis=1)


def _run_copies(model: RNNLM, ids: np.ndarray, source: int, copies: int, steps: int, edits: EditsAt = None):
    """Run ids[:source + steps] with `copies` copies from the source on; returns (x_src leaf (copies, E),
    per-layer traces of the copies, each "h" (steps, copies, H)). The caller builds the objective."""
    device = model.encoder.weight.device
    x = torch.as_tensor(ids[:source + steps], device=device).view(-1, 1)  # (T, 1)
    with torch.no_grad():
        emb = model.encoder(x)  # (T, 1, E)
        hidden = model.init_hidden(1)
        if source > 0:  # the prefix does not depend on x_source: run it once, without a graph
            _, hidden, _ = model.run_cells(emb[:source], hidden, edits=edits(0) if edits else None)
    expand = lambda h: h.expand(-1, copies, -1).contiguous()
    hidden = tuple(expand(h) for h in hidden) if isinstance(hidden, tuple) else expand(hidden)
    x_src = emb[source].expand(copies, -1).clone().requires_grad_(True)  # (copies, E): one leaf per copy
    seq = torch.cat([x_src.unsqueeze(0), emb[source + 1:].expand(-1, copies, -1)], dim=0)  # (steps, copies, E)
    with torch.enable_grad():
        _, _, per_layer = model.run_cells(seq, hidden, edits=edits(source) if edits else None)
    return x_src, per_layer


def _check(model: RNNLM, T: int, source: int, layer: int) -> None:
    require_recurrent(model.cfg, "the sensitivity of the hidden state to an earlier input")
    if not 0 <= source < T:
        raise ValueError(f"source step {source} outside the sequence of {T} tokens")
    if not -model.cfg.layers <= layer < model.cfg.layers:
        raise ValueError(f"layer {layer} out of range for {model.cfg.layers} layers")


def input_sensitivity(model: RNNLM, ids, source: int, layer: int = -1, units: Units = None,
                      edits: EditsAt = None) -> np.ndarray:
    """s_t = ‖∂ h̄_t / ∂ x_source‖ for every step t of `ids` (a sequence of T token ids), shape (T,).

    h̄_t is layer `layer`'s hidden state at step t (the LSTM's h, not c), averaged over `units`
    (an int, a list of ints, or None for all units). The state starts at zero before ids[0].
    Exact, with one backward pass (see the module docstring). s_t = 0 for t < source.
    Runs in eval mode and restores the model's mode after. edits: interventions made as the text is read (EditsAt).
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    T = ids.size
    _check(model, T, source, layer)
    pick = unit_index(units, model.cfg.hidden)
    was_training = model.training
    model.eval()
    try:
        B = T - source  # copy c answers for step t = source + c
        x_src, per_layer = _run_copies(model, ids, source, B, B, edits)
        with torch.enable_grad():
            h = per_layer[layer]["h"]  # (B, B, H): time × copies × units
            diag = torch.arange(B, device=h.device)
            objective = h[diag, diag][:, pick].mean(dim=1).sum()  # Σ_c h̄ of copy c at its own step
            (grad,) = torch.autograd.grad(objective, x_src)  # (B, E): row c = ∂h̄_{source+c}/∂x_source
    finally:
        model.train(was_training)
    out = np.zeros(T)
    out[source:] = grad.norm(dim=1).double().cpu().numpy()
    return out


def unit_sensitivity(model: RNNLM, ids, source: int, step: int, layer: int = -1) -> np.ndarray:
    """‖∂ h_step[u] / ∂ x_source‖ for every unit u of one layer, shape (H,); one backward pass
    (copy u of the sequence answers for unit u). All zeros when step < source.
    `int(np.argmax(...))` is the unit that keeps the most of x_source until `step`."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    _check(model, ids.size, source, layer)
    if not 0 <= step < ids.size:
        raise ValueError(f"step {step} outside the sequence of {ids.size} tokens")
    H = model.cfg.hidden
    if step < source:
        return np.zeros(H)
    was_training = model.training
    model.eval()
    try:
        x_src, per_layer = _run_copies(model, ids, source, H, step - source + 1)
        with torch.enable_grad():
            units = torch.arange(H, device=x_src.device)
            objective = per_layer[layer]["h"][-1, units, units].sum()  # copy u: unit u at `step`
            (grad,) = torch.autograd.grad(objective, x_src)  # (H, E)
    finally:
        model.train(was_training)
    return grad.norm(dim=1).double().cpu().numpy()


def normalise(sensitivity: np.ndarray) -> np.ndarray:
    """Divided by its maximum, so the largest value is 1 (all zeros stay zeros)."""
    s = np.asarray(sensitivity, dtype=float)
    top = s.max(initial=0.0)
    return s / top if top > 0 else np.zeros_like(s)


def normalised_input_sensitivity(model: RNNLM, ids, source: int, layer: int = -1, units: Units = None) -> np.ndarray:
    """`input_sensitivity` divided by its maximum: 1 at the step most sensitive to x_source."""
    return normalise(input_sensitivity(model, ids, source, layer, units))


def output_sensitivity(model: RNNLM, ids, source: int) -> np.ndarray:
    """‖∂ y_t[w_{t+1}] / ∂ x_source‖ for every step t, shape (T,): how strongly the probability the model
    gives the actual next token depends on the input at `source` (Graves' Fig. 4.1, output layer).

    Same one-backward-pass copies as `input_sensitivity`, read out through W and the softmax;
    0 for t < source and for the last step (it has no next token).
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    T = ids.size
    _check(model, T, source, -1)
    was_training = model.training
    model.eval()
    out = np.zeros(T)
    try:
        B = T - 1 - source  # steps source .. T-2 have a next token
        if B <= 0:
            return out
        x_src, per_layer = _run_copies(model, ids, source, B, B)
        with torch.enable_grad():
            h = per_layer[-1]["h"]  # (B, B, H)
            diag = torch.arange(B, device=h.device)
            probs = torch.softmax(model.decoder(h[diag, diag]), dim=-1)  # (B, vocab): copy c at step source + c
            nxt = torch.as_tensor(ids[source + 1:source + 1 + B], device=h.device)
            (grad,) = torch.autograd.grad(probs.gather(1, nxt[:, None]).sum(), x_src)
    finally:
        model.train(was_training)
    out[source:source + B] = grad.norm(dim=1).double().cpu().numpy()
    return out
