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

The LSTM variants and GRU conventions a cell takes are in architectures.py.
"""
from __future__ import annotations

import torch
from torch import Tensor

from lmcore.nn.architectures import GATES, GRU_CONVENTIONS, LSTM_GATES, LSTM_VARIANTS

ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


def _recurrent(h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    return torch.addmm(b_hh, h, w_hh.t()) if b_hh is not None else h @ w_hh.t()


class ElmanCell:
    gate_names: tuple[str, ...] = ()
    constant_gates: tuple[str, ...] = ()
    chunks = 1

    def __init__(self, activation: str = "sigmoid"):
        self.activation, self.f = activation, ACTIVATIONS[activation]

    def step(self, xp: Tensor, state: Tensor, w_hh: Tensor, b_hh: Tensor | None, extra: dict | None = None,
             edit=None):
        h = self.f(xp + _recurrent(state, w_hh, b_hh))  # (B, H)
        if edit is not None:
            h = edit("h", h)
        return h, h, {}


class LSTMCell:
    """The LSTM of one variant. State: (h, c), or (h, c, a) for FGR (a: [i; f; o] of the last step).

    `extra` holds the variant's parameters beyond V, U, b for this layer: "p_i", "p_f", "p_o"
    (peephole vectors, (H,)) and "R" (FGR's gate-to-gate matrix, (3H, 3H)).
    """
    gate_names = GATES["lstm"]

    def __init__(self, variant: str = "vanilla"):
        self.variant = v = LSTM_VARIANTS[variant]
        self.blocks, self.chunks, self.constant_gates = v.blocks, len(v.blocks), v.constant
        self.pytorch = v.pytorch_equivalent

    def step(self, xp: Tensor, state: tuple[Tensor, ...], w_hh: Tensor, b_hh: Tensor | None,
             extra: dict | None = None, edit=None):
        h, c = state[0], state[1]
        pre = xp + _recurrent(h, w_hh, b_hh)  # (B, chunks·H)
        if edit is not None:
            return self._edited_step(pre, state, extra or {}, edit)
        if self.pytorch:  # the common case in as few operations as possible
            i, f, g, o = pre.chunk(4, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = f * c + i * g
            h = o * torch.tanh(c)
            return h, (h, c), {"i": i, "f": f, "g": g, "o": o}
        return self._edited_step(pre, state, extra or {}, None)

    def _edited_step(self, pre: Tensor, state: tuple[Tensor, ...], extra: dict, edit):
        """Every variant, each quantity passed through edit(name, value) -> value (an intervention) as it is made;
        a gate the variant lacks is the constant 1, edited as such (a removed gate can still be closed)."""
        v, c = self.variant, state[1]
        put = (lambda name, value: value) if edit is None else edit
        part = dict(zip(self.blocks, pre.chunk(self.chunks, dim=1)))  # each (B, H)
        if v.gate_recurrence:
            for name, r in zip(LSTM_GATES, (state[2] @ extra["R"].t()).chunk(3, dim=1)):
                part[name] = part[name] + r  # + R_name a_{t-1}

        def gate(name: str, cell: Tensor) -> Tensor:  # σ(pre + p ⊙ cell)
            peep = extra.get(f"p_{name}")
            return torch.sigmoid(part[name] if peep is None else torch.addcmul(part[name], peep, cell))

        def constant(name: str) -> Tensor | None:  # an absent gate: 1, unless an intervention sets it
            return None if edit is None else edit(name, torch.ones_like(c))

        g = put("g", torch.tanh(part["g"]) if v.input_activation else part["g"])
        i = put("i", gate("i", c)) if "i" in part else constant("i")
        f = put("f", 1.0 - i if v.coupled else gate("f", c)) if ("f" in part or v.coupled) else constant("f")
        c = put("c", (c if f is None else f * c) + (g if i is None else i * g))
        o = put("o", gate("o", c)) if "o" in part else constant("o")  # the output gate's peephole sees the new cell
        out = torch.tanh(c) if v.output_activation else c
        h = put("h", out if o is None else o * out)
        gates = {name: value for name, value in (("i", i), ("f", f), ("g", g), ("o", o)) if value is not None}
        if v.gate_recurrence:
            return h, (h, c, torch.cat([i, f, o], dim=1)), gates
        return h, (h, c), gates


class GRUCell:
    gate_names = GATES["gru"]
    constant_gates: tuple[str, ...] = ()
    chunks = 3

    def __init__(self, convention: str = "pytorch"):
        if convention not in GRU_CONVENTIONS:
            raise ValueError(f"unknown GRU convention {convention!r}; choose one of {', '.join(GRU_CONVENTIONS)}")
        self.cho = convention == "cho"

    def step(self, xp: Tensor, state: Tensor, w_hh: Tensor, b_hh: Tensor | None, extra: dict | None = None,
             edit=None):
        put = (lambda name, value: value) if edit is None else edit
        x_r, x_z, x_n = xp.chunk(3, dim=1)
        if self.cho:  # r gates h before U_n: a second, smaller product once r is known
            H = state.size(1)
            h_r, h_z = _recurrent(state, w_hh[:2 * H], None if b_hh is None else b_hh[:2 * H]).chunk(2, dim=1)
            r = put("r", torch.sigmoid(x_r + h_r))
            z = put("z", torch.sigmoid(x_z + h_z))
            n = put("n", torch.tanh(x_n + _recurrent(r * state, w_hh[2 * H:], None if b_hh is None else b_hh[2 * H:])))
        else:
            h_r, h_z, h_n = _recurrent(state, w_hh, b_hh).chunk(3, dim=1)  # (B, 3H): U h + b_h, split per gate
            r = put("r", torch.sigmoid(x_r + h_r))
            z = put("z", torch.sigmoid(x_z + h_z))
            n = put("n", torch.tanh(x_n + r * h_n))
        h = put("h", n + z * (state - n))  # = (1 - z) n + z h_{t-1}, one op fewer
        return h, h, {"r": r, "z": z, "n": n}


def make_cell(arch: str, activation: str, variant: str = "vanilla", gru_convention: str = "pytorch"):
    if arch == "lstm":
        return LSTMCell(variant)
    if arch == "gru":
        return GRUCell(gru_convention)
    return ElmanCell("relu" if arch == "irnn" else activation)


