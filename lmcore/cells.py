"""Hand-written recurrent cells that expose their gates.

Each cell reads its weights from the same tensors as PyTorch's fused module (nn.RNN / nn.LSTM /
nn.GRU, same names and gate order), so a model trained fused can be run through these cells and
traced gate by gate. The input projection V x + b for all time steps is one matrix product made by
the caller; `step` keeps only the recurrent product U h and the element-wise gates.

Gate conventions (PyTorch's):
    Elman: h_t = f(V x_t + U h_{t-1} + b)                      f = σ, tanh or relu
    LSTM:  i, f, g, o = σ(.), σ(.), tanh(.), σ(.)   of  V x_t + U h_{t-1} + b
           c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
    GRU:   r, z = σ(.) of V x_t + U h_{t-1} + b,   n = tanh(V_n x_t + b_in + r ⊙ (U_n h_{t-1} + b_hn))
           h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
"""
from __future__ import annotations

import torch
from torch import Tensor

ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


def _recurrent(h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    return torch.addmm(b_hh, h, w_hh.t()) if b_hh is not None else h @ w_hh.t()


class ElmanCell:
    gate_names: tuple[str, ...] = ()
    chunks = 1

    def __init__(self, activation: str = "sigmoid"):
        self.f = ACTIVATIONS[activation]

    def step(self, xp: Tensor, state: Tensor, w_hh: Tensor, b_hh: Tensor | None):
        h = self.f(xp + _recurrent(state, w_hh, b_hh))  # (B, H)
        return h, h, {}


class LSTMCell:
    gate_names = ("i", "f", "g", "o")
    chunks = 4

    def step(self, xp: Tensor, state: tuple[Tensor, Tensor], w_hh: Tensor, b_hh: Tensor | None):
        h, c = state
        pre = xp + _recurrent(h, w_hh, b_hh)  # (B, 4H)
        i, f, g, o = pre.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        h = o * torch.tanh(c)
        return h, (h, c), {"i": i, "f": f, "g": g, "o": o}


class GRUCell:
    gate_names = ("r", "z", "n")
    chunks = 3

    def step(self, xp: Tensor, state: Tensor, w_hh: Tensor, b_hh: Tensor | None):
        hp = _recurrent(state, w_hh, b_hh)  # (B, 3H): U h + b_h, split per gate
        x_r, x_z, x_n = xp.chunk(3, dim=1)
        h_r, h_z, h_n = hp.chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = n + z * (state - n)  # = (1 - z) n + z h_{t-1}, one op fewer
        return h, h, {"r": r, "z": z, "n": n}


def make_cell(arch: str, activation: str):
    if arch == "lstm":
        return LSTMCell()
    if arch == "gru":
        return GRUCell()
    return ElmanCell("relu" if arch == "irnn" else activation)


def run_layer(cell, xp: Tensor, state, w_hh: Tensor, b_hh: Tensor | None, keep_gates: bool = False,
              state_hook=None):
    """Unroll one layer over time. xp: (T, B, chunks·H) input projections.

    Returns outputs (T, B, H), the final state, and (if keep_gates) each gate stacked to (T, B, H),
    plus the LSTM cell state as "c". `state_hook(t, state) -> state`, if given, may replace each new
    state before it is used (gradient probes add a zero tensor there to read ∂loss/∂state_t).
    """
    outputs, trace = [], {name: [] for name in cell.gate_names}
    if keep_gates and isinstance(cell, LSTMCell):
        trace["c"] = []
    for t in range(xp.size(0)):
        h, state, gates = cell.step(xp[t], state, w_hh, b_hh)
        if state_hook is not None:
            state = state_hook(t, state)
            h = state[0] if isinstance(state, tuple) else state
        outputs.append(h)
        if keep_gates:
            for name, value in gates.items():
                trace[name].append(value)
            if "c" in trace:
                trace["c"].append(state[1])
    stacked = {name: torch.stack(values) for name, values in trace.items()} if keep_gates else {}
    return torch.stack(outputs), state, stacked
