"""One LSTM layer (any variant) with backpropagation through time written out, for training on the cells.

Autograd records some twenty operations per step and replays each as its own backward node; written by
hand, the backward of a step is a dozen element-wise products and the recurrent products, and the
weights' gradients come at the end in one product over all steps each. With δ_t = ∂ℓ/∂pre_t,
pre_t = V x_t + U h_{t−1} + b (+ R a_{t−1} on i, f, o for FGR):
    ∂ℓ/∂h_{t−1} = δ_t U,   ∂ℓ/∂a_{t−1} = δ_t^{ifo} R,
    ∂ℓ/∂U = Σ_t δ_tᵀ h_{t−1},   ∂ℓ/∂b = Σ_t δ_t,   ∂ℓ/∂R = Σ_t (δ_t^{ifo})ᵀ a_{t−1},
    ∂ℓ/∂p_i = Σ_t δ_t^i ⊙ c_{t−1},   ∂ℓ/∂p_f = Σ_t δ_t^f ⊙ c_{t−1},   ∂ℓ/∂p_o = Σ_t δ_t^o ⊙ c_t.
δ_t is the gradient reaching the activated blocks times their derivatives σ(1 − σ) and 1 − tanh², formed
for all steps at once from the saved activations. The forward is LSTMCell.step's equations (cells.py);
tests hold the gradients of every variant to autograd's in float64.

The time loops exist twice: here in Python (every variant, any device) and in C++ (lmcore/native: the
variants with all four blocks, NIAF and NOAF included, on the CPU, where Python's cost per operation was a fifth of
FGR's layer). The C++ runs wherever it could be built; tests hold it to the Python loops.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lmcore.nn import native

if TYPE_CHECKING:
    from lmcore.nn.architectures import LSTMVariant


def run_lstm_layer(variant: LSTMVariant, xp: Tensor, state: tuple[Tensor, ...], w_hh: Tensor,
                   b_hh: Tensor | None, extra: dict) -> tuple[Tensor, tuple[Tensor, ...]]:
    """outputs (T, B, H) and the final state (h, c) or (h, c, a), differentiable in everything."""
    a0 = state[2] if variant.gate_recurrence else None
    out, *final = _LSTMLayer.apply(xp, state[0], state[1], a0, w_hh, b_hh, extra.get("p_i"), extra.get("p_f"),
                                   extra.get("p_o"), extra.get("R"), variant)
    return out, tuple(final) if variant.gate_recurrence else tuple(final[:2])


class _Layout:
    """Where each block sits in pre inside the layer. FGR runs its blocks as i, f, o, g rather than
    PyTorch's i, f, g, o: a = [i; f; o] is then one slice of the activations and R a one product into
    one slice of pre. `inward`/`outward` move the block columns of (…, n) tensors between the two orders.
    regroup=False keeps PyTorch's order for every variant (the C++ loop's: it keeps FGR's a in a tensor of its own
    and regroups only its copy of U, so that xp and δ need no reordering copies)."""

    def __init__(self, variant: LSTMVariant, H: int, regroup: bool = True):
        self.blocks = ("i", "f", "o", "g") if variant.gate_recurrence and regroup else variant.blocks
        self.cols = {b: slice(k * H, (k + 1) * H) for k, b in enumerate(self.blocks)}
        self.has = {name: name in self.cols for name in "ifo"}
        self.ifo = slice(0, 3 * H)
        self.H, self.order = H, None
        if self.blocks != variant.blocks:  # whole blocks move: slices of H columns, no index tensor to copy
            self.order = [variant.blocks.index(b) for b in self.blocks]
            self.back = [self.blocks.index(b) for b in variant.blocks]

    def _move(self, x: Tensor | None, order: list[int] | None, dim: int) -> Tensor | None:
        if x is None or order is None:
            return x
        return torch.cat([x.narrow(dim, k * self.H, self.H) for k in order], dim=dim)

    def offsets(self) -> list[int]:
        """Column offsets of i, f, g, o (for the C++ loop, which handles only layouts with all four)."""
        return [self.cols[b].start for b in "ifgo"]

    def inward(self, x: Tensor | None, dim: int = -1) -> Tensor | None:
        return self._move(x, self.order, dim)

    def outward(self, x: Tensor | None, dim: int = -1) -> Tensor | None:
        return self._move(x, None if self.order is None else self.back, dim)


def _gate_derivatives(acts: Tensor, cols: dict[str, slice], input_activation: bool) -> Tensor:
    """d act / d pre for every block: σ(1 − σ) for the gates, 1 − g² for tanh's g (1 without it)."""
    deriv = acts - acts * acts
    g = acts[..., cols["g"]]
    deriv[..., cols["g"]] = 1.0 - g * g if input_activation else 1.0
    return deriv


def _product(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    """a ⊙ b where None stands for ones."""
    return b if a is None else a if b is None else a * b


def _native_steps(variant: LSTMVariant, xp: Tensor):
    """lmcore.nn.native's C++ time loop where it applies (all four blocks, on the CPU), else None."""
    if (xp.device.type != "cpu" or xp.dtype not in (torch.float32, torch.float64) or variant.gates != "ifo"
            or variant.coupled or (variant.gate_recurrence and not variant.peepholes)):
        return None
    return native.lstm_steps()


def lstm_layer_gates(variant: LSTMVariant, xp: Tensor, state: tuple[Tensor, ...], w_hh: Tensor, b_hh: Tensor | None,
                     extra: dict) -> tuple[Tensor, tuple[Tensor, ...], dict[str, Tensor]] | None:
    """Without gradients, the C++ loop's forward with every gate kept: outputs, the final state, and i, f, g, o and
    c (each (T, B, H)) as unroll.run_layer's keep_gates stacks them; None where the C++ loop does not apply (the
    trace of 2,000 tokens at batch 1, 2 layers, had taken 4,000 Python steps of a dozen operations each)."""
    ops = _native_steps(variant, xp)
    if ops is None or xp.size(0) == 0:
        return None
    H = w_hh.size(1)
    a0 = state[2] if variant.gate_recurrence else None
    cols, (out, acts, cells, _, a_all) = _native_forward(ops, variant, xp, state[0], state[1], a0, w_hh, b_hh,
                                                         extra.get("p_i"), extra.get("p_f"), extra.get("p_o"),
                                                         extra.get("R"))
    gates = {name: acts[..., col:col + H] for name, col in zip("ifgo", cols)}
    gates["c"] = cells[1:]
    final = (out[-1], cells[-1], a_all[-1]) if variant.gate_recurrence else (out[-1], cells[-1])
    return out, final, gates


def _native_forward(ops, variant: LSTMVariant, xp, h0, c0, a0, w_hh, b_hh, p_i, p_f, p_o, R):
    """The C++ loop's forward in PyTorch's block layout (b_hh added in the loop): the block offsets and
    (out, acts, cells, tanh_c, a_all)."""
    cols = _Layout(variant, w_hh.size(1), regroup=False).offsets()
    return cols, ops.forward(xp, b_hh, h0, c0, a0, w_hh, R, p_i, p_f, p_o, cols, variant.input_activation,
                             variant.output_activation)


def native_lstm_loop(variant: LSTMVariant, xp: Tensor) -> bool:
    """Whether this layer's time loop would run in C++."""
    return _native_steps(variant, xp) is not None


class _LSTMLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, c0, a0, w_hh, b_hh, p_i, p_f, p_o, R, variant: LSTMVariant):
        ctx.native = _native_steps(variant, xp)
        ctx.variant = variant
        if ctx.native is not None:  # PyTorch's layout throughout; b_hh added in the loop
            cols, (out, acts, cells, tanh_c, a_all) = _native_forward(ctx.native, variant, xp, h0, c0, a0, w_hh, b_hh,
                                                                      p_i, p_f, p_o, R)
            ctx.cols = cols
            ctx.save_for_backward(acts, cells, tanh_c, out, h0, a0, a_all, w_hh, p_i, p_f, p_o, R)
            a = None if R is None else a_all[-1].clone()
            return out, out[-1].clone(), cells[-1].clone(), a
        H = w_hh.size(1)
        layout = _Layout(variant, H)
        w_hh = layout.inward(w_hh, 0)
        pre_all = layout.inward(xp)
        pre_all = (pre_all if b_hh is None else pre_all + layout.inward(b_hh)).contiguous()
        u_t, r_t = w_hh.t(), None if R is None else R.t()
        out, acts, cells, tanh_c = _forward_steps(variant, layout, pre_all, h0, c0, a0, u_t, r_t, p_i, p_f, p_o)
        ctx.layout = layout
        ctx.save_for_backward(acts, cells, tanh_c, out, h0, a0, None, w_hh, p_i, p_f, p_o, R)
        a = None if R is None else acts[-1, :, layout.ifo].clone()
        return out, out[-1].clone(), cells[-1].clone(), a

    @staticmethod
    @torch.autograd.function.once_differentiable  # written by hand (and in C++): no second derivatives
    def backward(ctx, d_out, d_hT, d_cT, d_aT):
        acts, cells, tanh_c, out, h0, a0, a_all, w_hh, p_i, p_f, p_o, R = ctx.saved_tensors
        T, B, n = acts.shape
        H = w_hh.size(1)
        d_aT = d_aT if R is not None else None
        if ctx.native is not None:
            d_pre, dh0, dc0, da0, d_ifog = ctx.native.backward(d_out, d_hT, d_cT, d_aT, acts, cells, tanh_c, w_hh,
                                                               R, p_i, p_f, p_o, ctx.cols,
                                                               ctx.variant.input_activation,
                                                               ctx.variant.output_activation)
            layout = _Layout(ctx.variant, H, regroup=False)
        else:
            layout = ctx.layout
            d_pre, dh0, dc0, da0 = _backward_steps(ctx.variant, layout, d_out, d_hT, d_cT, d_aT, acts, cells,
                                                   tanh_c, w_hh, R, p_i, p_f, p_o)
        flat = d_pre.reshape(T * B, n)
        need = ctx.needs_input_grad
        h_prev = torch.cat([h0.unsqueeze(0), out[:-1]])
        d_w_hh = layout.outward(flat.t() @ h_prev.reshape(T * B, H), 0) if need[4] else None
        d_b_hh = layout.outward(flat.sum(0)) if need[5] else None
        cols = layout.cols

        def peephole_grad(name: str, cell: Tensor) -> Tensor:
            return (d_pre[..., cols[name]] * cell).sum((0, 1))

        d_p = [peephole_grad(name, cells[1:] if name == "o" else cells[:-1]) if peep is not None and need[k] else None
               for k, name, peep in ((6, "i", p_i), (7, "f", p_f), (8, "o", p_o))]
        d_R = None
        if R is not None and need[9]:
            if a_all is not None:  # the C++ loop kept a_0 … a_T = [i; f; o] and δ as [i f o g] for every step
                a_prev = a_all[:-1]
                d_ifo = d_ifog.view(T * B, 4 * H)[:, :3 * H]
            else:
                a_prev = torch.cat([a0.unsqueeze(0), acts[:-1, :, layout.ifo]])
                d_ifo = flat[:, layout.ifo]
            d_R = d_ifo.t() @ a_prev.reshape(T * B, 3 * H)
        return layout.outward(d_pre), dh0, dc0, da0, d_w_hh, d_b_hh, *d_p, d_R, None


def _forward_steps(variant: LSTMVariant, layout: _Layout, pre_all: Tensor, h0: Tensor, c0: Tensor,
                   a0: Tensor | None, u_t: Tensor, r_t: Tensor | None, p_i, p_f, p_o):
    """The forward time loop in Python: (h_t for all t, activations, c_0 … c_T, tanh(c_t) or c_t)."""
    T, B, n = pre_all.shape
    H = u_t.size(0)
    cols, has, ifo = layout.cols, layout.has, layout.ifo
    pre_all = pre_all.unbind(0)
    acts = pre_all[0].new_empty(T, B, n)
    act = {name: acts[..., s].unbind(0) for name, s in cols.items()}  # per block, per step: views
    act_if = p_if = None
    if has["i"] and has["f"] and cols["i"].stop == cols["f"].start and (p_i is None) == (p_f is None):
        act_if = acts[..., cols["i"].start:cols["f"].stop].view(T, B, 2, H).unbind(0)
        p_if = None if p_i is None else torch.stack([p_i, p_f])
    cells, tanh_c, hs = [c0], [], []
    h, c, a = h0, c0, a0
    for t in range(T):
        pre = torch.addmm(pre_all[t], h, u_t)
        if r_t is not None:  # FGR: + R a_{t−1} on i, f, o
            pre[:, ifo].addmm_(a, r_t)
        g = act["g"][t]
        if variant.input_activation:
            torch.tanh(pre[:, cols["g"]], out=g)
        else:
            g.copy_(pre[:, cols["g"]])
        if act_if is not None:  # i and f side by side: one pass over both, (B, 2, H)
            pre_if = pre[:, cols["i"].start:cols["f"].stop].view(B, 2, H)
            torch.sigmoid(pre_if if p_if is None else torch.addcmul(pre_if, p_if, c.unsqueeze(1)), out=act_if[t])
        else:
            for name, peep in (("i", p_i), ("f", p_f)):
                if has[name]:
                    z_gate = pre[:, cols[name]] if peep is None else torch.addcmul(pre[:, cols[name]], peep, c)
                    torch.sigmoid(z_gate, out=act[name][t])
        i = act["i"][t] if has["i"] else None
        f = act["f"][t] if has["f"] else (1.0 - i) if variant.coupled else None
        kept = c if f is None else f * c
        c = kept + g if i is None else torch.addcmul(kept, i, g)
        m = torch.tanh(c) if variant.output_activation else c
        if has["o"]:
            o = act["o"][t]
            torch.sigmoid(pre[:, cols["o"]] if p_o is None else torch.addcmul(pre[:, cols["o"]], p_o, c), out=o)
            h = o * m
        else:
            h = m
        if r_t is not None:
            a = acts[t, :, ifo]
        cells.append(c)
        tanh_c.append(m)
        hs.append(h)
    return torch.stack(hs), acts, torch.stack(cells), torch.stack(tanh_c)


def _backward_steps(variant: LSTMVariant, layout: _Layout, d_out: Tensor, d_hT: Tensor, d_cT: Tensor,
                    d_aT: Tensor | None, acts: Tensor, cells: Tensor, tanh_c: Tensor, w_hh: Tensor,
                    R: Tensor | None, p_i, p_f, p_o):
    """The backward time loop in Python: (δ_t = ∂ℓ/∂pre_t for all t, ∂ℓ/∂h_0, ∂ℓ/∂c_0, ∂ℓ/∂a_0)."""
    T, B, n = acts.shape
    H = w_hh.size(1)
    cols, has, ifo = layout.cols, layout.has, layout.ifo
    deriv_all = _gate_derivatives(acts, cols, variant.input_activation)
    deriv = deriv_all.unbind(0)
    # ∂h_t/∂c_t through m = tanh(c_t) (or c_t) and o, and δ^o's way back to c_t through p_o: all steps at once
    o_all = acts[..., cols["o"]] if has["o"] else None
    h_to_c = _product(o_all, 1.0 - tanh_c * tanh_c if variant.output_activation else None)
    h_to_c = h_to_c.unbind(0) if h_to_c is not None else None
    o_to_c = (deriv_all[..., cols["o"]] * p_o).unbind(0) if p_o is not None else None
    d_pre = torch.empty_like(acts)
    d_act = torch.empty_like(acts[0])  # ∂ℓ/∂(i, f, g, o) at one step, before the derivatives
    d_blk = {name: d_act[:, s] for name, s in cols.items()}
    act = {name: acts[..., s].unbind(0) for name, s in cols.items()}
    c_all, tc_all = cells.unbind(0), tanh_c.unbind(0)
    dh_next, dc, da = d_hT, d_cT, d_aT
    for t in reversed(range(T)):
        dh = d_out[t] + dh_next
        g, c_prev = act["g"][t], c_all[t]
        i = act["i"][t] if has["i"] else None
        dp = d_pre[t]
        if has["o"]:
            torch.mul(dh, tc_all[t], out=d_blk["o"])
        dc = dc + dh if h_to_c is None else torch.addcmul(dc, dh, h_to_c[t])
        if o_to_c is not None:  # o saw c_t through its peephole
            if da is not None:  # (o's share of ∂ℓ/∂a_t first)
                d_blk["o"] += da[:, 2 * H:]
            dc = torch.addcmul(dc, d_blk["o"], o_to_c[t])
        if i is None:
            d_blk["g"].copy_(dc)
        else:
            torch.mul(dc, i, out=d_blk["g"])
            torch.mul(dc, g, out=d_blk["i"])
            if variant.coupled:  # f = 1 − i
                d_blk["i"].sub_(dc * c_prev)
        if has["f"]:
            torch.mul(dc, c_prev, out=d_blk["f"])
        if da is not None:  # ∂ℓ/∂a_t into i, f, o (o's share already in when it has a peephole)
            if o_to_c is None:
                d_act[:, ifo] += da
            else:
                d_act[:, :2 * H] += da[:, :2 * H]
        torch.mul(d_act, deriv[t], out=dp)
        f = act["f"][t] if has["f"] else (1.0 - i) if variant.coupled else None
        dc = dc if f is None else dc * f
        for name, peep in (("i", p_i), ("f", p_f)):
            if has[name] and peep is not None:
                dc = torch.addcmul(dc, dp[:, cols[name]], peep)
        dh_next = dp @ w_hh
        if da is not None:
            da = dp[:, ifo] @ R
    return d_pre, dh_next, dc, da
