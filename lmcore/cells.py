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

LSTM variants (Greff et al. 2016, "LSTM: A Search Space Odyssey"), options of the one LSTM cell.
Greff's "vanilla" LSTM has peepholes (Gers & Schmidhuber 2000; Graves 2012) and each of the eight
variants changes one thing in it:
    peephole: i_t = σ(V_i x_t + U_i h_{t-1} + p_i ⊙ c_{t-1} + b_i)
              f_t = σ(V_f x_t + U_f h_{t-1} + p_f ⊙ c_{t-1} + b_f)
              g_t = tanh(V_g x_t + U_g h_{t-1} + b_g)
              c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
              o_t = σ(V_o x_t + U_o h_{t-1} + p_o ⊙ c_t + b_o)        (c_t: the new cell)
              h_t = o_t ⊙ tanh(c_t)
    NIG  no input gate           i_t = 1             NIAF no input activation    g_t = V_g x_t + U_g h_{t-1} + b_g
    NFG  no forget gate          f_t = 1             NOAF no output activation   h_t = o_t ⊙ c_t
    NOG  no output gate          o_t = 1             NP   no peepholes           (PyTorch's LSTM)
    CIFG coupled input/forget    f_t = 1 - i_t
    FGR  full gate recurrence: i, f and o also see a_{t-1} = [i_{t-1}; f_{t-1}; o_{t-1}] through R:
         i_t = σ(… + R_i a_{t-1} + b_i), likewise f and o; R = [R_i; R_f; R_o] is (3H, 3H), Greff's nine
         matrices R_ii, R_fi, R_oi, … in one; a_0 = 0, and a_t travels with the state (h, c, a).
A removed gate has no weights (its rows are absent from V, U, b) and no peephole; CIFG's f has
neither. This project's default, "vanilla", is PyTorch's LSTM: Greff's NP, so "np" names the same
model. A gate that a variant removes is reported in traces as the constant 1: permanently open.

GRU conventions:
    pytorch  n = tanh(V_n x_t + b_in + r ⊙ (U_n h_{t-1} + b_hn))    (cuDNN; reset after the product)
    cho      n = tanh(V_n x_t + b_in + U_n (r ⊙ h_{t-1}) + b_hn)    (Cho et al. 2014; reset before it)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import weight_grads
from .lstm_bptt import run_lstm_layer

ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
SIGMOID_GATES = ("i", "f", "o")  # the LSTM's gates; g is the candidate ("block input" in Greff)


@dataclass(frozen=True)
class LSTMVariant:
    name: str                       # as shown: "vanilla", "peephole", "NIG", …
    description: str
    gates: str = "ifo"              # the sigmoid gates with weights of their own
    peepholes: bool = False         # p_i, p_f on c_{t-1}; p_o on c_t (each gate that has weights)
    coupled: bool = False           # CIFG: f = 1 − i
    input_activation: bool = True   # g = tanh(·); NIAF: identity
    output_activation: bool = True  # h = o ⊙ tanh(c); NOAF: h = o ⊙ c
    gate_recurrence: bool = False   # FGR: i, f, o also see [i; f; o] of the step before

    @property
    def blocks(self) -> tuple[str, ...]:
        """The row blocks of V, U and b, in PyTorch's order i, f, g, o, less the gates that are absent."""
        return tuple(b for b in "ifgo" if b == "g" or b in self.gates)

    @property
    def constant(self) -> tuple[str, ...]:
        """Gates held at 1 (permanently open): absent, and not computed from another gate."""
        return tuple(g for g in SIGMOID_GATES if g not in self.gates and not (self.coupled and g == "f"))

    @property
    def peephole_gates(self) -> tuple[str, ...]:
        return tuple(g for g in SIGMOID_GATES if g in self.gates) if self.peepholes else ()

    @property
    def pytorch_equivalent(self) -> bool:
        """The same function as nn.LSTM with nn.LSTM's parameters: can run fused."""
        return (self.gates == "ifo" and not (self.peepholes or self.coupled or self.gate_recurrence)
                and self.input_activation and self.output_activation)


LSTM_VARIANTS: dict[str, LSTMVariant] = {
    "vanilla": LSTMVariant("vanilla", "PyTorch's LSTM: no peepholes (Greff's NP); runs fused", peepholes=False),
    "peephole": LSTMVariant("peephole", "Greff's and Graves' vanilla LSTM: peepholes, i and f see c_{t-1}, "
                            "o sees c_t", peepholes=True),
    "nig": LSTMVariant("NIG", "no input gate: i = 1", gates="fo", peepholes=True),
    "nfg": LSTMVariant("NFG", "no forget gate: f = 1", gates="io", peepholes=True),
    "nog": LSTMVariant("NOG", "no output gate: o = 1", gates="if", peepholes=True),
    "niaf": LSTMVariant("NIAF", "no input activation: g without tanh", peepholes=True, input_activation=False),
    "noaf": LSTMVariant("NOAF", "no output activation: h = o ⊙ c", peepholes=True, output_activation=False),
    "np": LSTMVariant("NP", "no peepholes: the same model as vanilla (PyTorch's LSTM)", peepholes=False),
    "cifg": LSTMVariant("CIFG", "coupled input and forget gate: f = 1 − i", gates="io", peepholes=True,
                        coupled=True),
    "fgr": LSTMVariant("FGR", "full gate recurrence: i, f, o also see i, f, o of step t−1", peepholes=True,
                       gate_recurrence=True),
}
GRU_CONVENTIONS = {
    "pytorch": "PyTorch / cuDNN: reset after the recurrent product, n = tanh(V_n x + b_in + r ⊙ (U_n h + b_hn))",
    "cho": "Cho et al. 2014: reset before the recurrent product, n = tanh(V_n x + U_n (r ⊙ h) + b)",
}


def _recurrent(h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    return torch.addmm(b_hh, h, w_hh.t()) if b_hh is not None else h @ w_hh.t()


class ElmanCell:
    gate_names: tuple[str, ...] = ()
    constant_gates: tuple[str, ...] = ()
    chunks = 1

    def __init__(self, activation: str = "sigmoid"):
        self.f = ACTIVATIONS[activation]

    def step(self, xp: Tensor, state: Tensor, w_hh: Tensor, b_hh: Tensor | None, extra: dict | None = None):
        h = self.f(xp + _recurrent(state, w_hh, b_hh))  # (B, H)
        return h, h, {}


class LSTMCell:
    """The LSTM of one variant. State: (h, c), or (h, c, a) for FGR (a: [i; f; o] of the last step).

    `extra` holds the variant's parameters beyond V, U, b for this layer: "p_i", "p_f", "p_o"
    (peephole vectors, (H,)) and "R" (FGR's gate-to-gate matrix, (3H, 3H)).
    """
    gate_names = ("i", "f", "g", "o")

    def __init__(self, variant: str = "vanilla"):
        self.variant = v = LSTM_VARIANTS[variant]
        self.blocks, self.chunks, self.constant_gates = v.blocks, len(v.blocks), v.constant
        self.pytorch = v.pytorch_equivalent

    def step(self, xp: Tensor, state: tuple[Tensor, ...], w_hh: Tensor, b_hh: Tensor | None,
             extra: dict | None = None):
        h, c = state[0], state[1]
        pre = xp + _recurrent(h, w_hh, b_hh)  # (B, chunks·H)
        if self.pytorch:  # the common case in as few operations as possible
            i, f, g, o = pre.chunk(4, dim=1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = f * c + i * g
            h = o * torch.tanh(c)
            return h, (h, c), {"i": i, "f": f, "g": g, "o": o}
        v, extra = self.variant, extra or {}
        part = dict(zip(self.blocks, pre.chunk(self.chunks, dim=1)))  # each (B, H)
        if v.gate_recurrence:
            for name, r in zip(SIGMOID_GATES, (state[2] @ extra["R"].t()).chunk(3, dim=1)):
                part[name] = part[name] + r  # + R_name a_{t-1}

        def gate(name: str, cell: Tensor) -> Tensor:  # σ(pre + p ⊙ cell)
            peep = extra.get(f"p_{name}")
            return torch.sigmoid(part[name] if peep is None else torch.addcmul(part[name], peep, cell))

        g = torch.tanh(part["g"]) if v.input_activation else part["g"]
        i = gate("i", c) if "i" in part else None
        f = 1.0 - i if v.coupled else gate("f", c) if "f" in part else None
        c = (c if f is None else f * c) + (g if i is None else i * g)
        o = gate("o", c) if "o" in part else None  # the output gate's peephole sees the new cell
        out = torch.tanh(c) if v.output_activation else c
        h = out if o is None else o * out
        gates = {name: value for name, value in (("i", i), ("f", f), ("g", g), ("o", o)) if value is not None}
        if v.gate_recurrence:
            return h, (h, c, torch.cat([i, f, o], dim=1)), gates
        return h, (h, c), gates


class GRUCell:
    gate_names = ("r", "z", "n")
    constant_gates: tuple[str, ...] = ()
    chunks = 3

    def __init__(self, convention: str = "pytorch"):
        if convention not in GRU_CONVENTIONS:
            raise ValueError(f"unknown GRU convention {convention!r}; choose one of {', '.join(GRU_CONVENTIONS)}")
        self.cho = convention == "cho"

    def step(self, xp: Tensor, state: Tensor, w_hh: Tensor, b_hh: Tensor | None, extra: dict | None = None):
        x_r, x_z, x_n = xp.chunk(3, dim=1)
        if self.cho:  # r gates h before U_n: a second, smaller product once r is known
            H = state.size(1)
            h_r, h_z = _recurrent(state, w_hh[:2 * H], None if b_hh is None else b_hh[:2 * H]).chunk(2, dim=1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + _recurrent(r * state, w_hh[2 * H:], None if b_hh is None else b_hh[2 * H:]))
        else:
            h_r, h_z, h_n = _recurrent(state, w_hh, b_hh).chunk(3, dim=1)  # (B, 3H): U h + b_h, split per gate
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
        h = n + z * (state - n)  # = (1 - z) n + z h_{t-1}, one op fewer
        return h, h, {"r": r, "z": z, "n": n}


def make_cell(arch: str, activation: str, variant: str = "vanilla", gru_convention: str = "pytorch"):
    if arch == "lstm":
        return LSTMCell(variant)
    if arch == "gru":
        return GRUCell(gru_convention)
    return ElmanCell("relu" if arch == "irnn" else activation)


# ---------------------------------------------------------------------------------------------
# torch.compile of the per-step function (CUDA by default: there the element-wise gates become one
# kernel instead of about ten launches; on the CPU eager already runs them in a few fused ATen loops)
# ---------------------------------------------------------------------------------------------
COMPILE_MODES = ("auto", "on", "off")
COMPILE_BACKEND = "inductor"   # tests set "eager" to exercise the cache without a C++/Triton toolchain
_compiled_fns: dict = {}        # (cell class, backend) -> torch.compile wrapper of that class's step
_compiled_keys: set = set()     # (cell, shapes, dtype, device, grad) that compiled and ran
_eager_keys: dict = {}          # the same keys whose compile failed -> the error, run eagerly from then on


def compile_wanted(mode: str, device: torch.device | str, cell=None) -> bool:
    """auto: compile on CUDA only, except PyTorch's own LSTM cell, whose compiled step measured slower than
    eager on an H200 (0.83×; the peephole LSTM and Cho's GRU gained 15–27%); on: everywhere (the CPU
    needs a C++ compiler); off: never."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; choose one of {', '.join(COMPILE_MODES)}")
    if mode == "auto" and isinstance(cell, LSTMCell) and cell.pytorch:
        return False
    return mode == "on" or (mode == "auto" and torch.device(device).type == "cuda")


def _cell_signature(cell) -> tuple:
    return (type(cell).__name__, getattr(getattr(cell, "variant", None), "name", None),
            getattr(getattr(cell, "f", None), "__name__", None), getattr(cell, "cho", None))


def compiled_step(cell):
    """cell.step through torch.compile, compiled once per input shape/dtype/device/grad mode and reused;
    a shape whose compile fails (no compiler, an unsupported Python) runs eagerly, with one warning."""
    if not hasattr(torch, "compile"):
        return cell.step
    fn_key = (type(cell), COMPILE_BACKEND)
    if fn_key not in _compiled_fns:
        _raise_recompile_limit()
        # one wrapper per class: each class's step has its own code object, so dynamo's per-shape
        # cache (guards on shapes, dtype, device, the cell's attributes) holds every compiled version
        try:
            _compiled_fns[fn_key] = torch.compile(type(cell).step, dynamic=False, backend=COMPILE_BACKEND)
        except Exception as err:  # noqa: BLE001 -- no usable compiler here: eager, said once
            import warnings
            warnings.warn(f"torch.compile is not usable here ({type(err).__name__}: {err}); running the cells "
                          "eagerly", RuntimeWarning, stacklevel=2)
            _compiled_fns[fn_key] = None
    fn = _compiled_fns[fn_key]
    if fn is None:
        return cell.step

    def step(xp_t: Tensor, state, w_hh: Tensor, b_hh: Tensor | None, extra: dict | None = None):
        states = state if isinstance(state, tuple) else (state,)
        key = (_cell_signature(cell), tuple(xp_t.shape), tuple(s.shape for s in states), xp_t.dtype,
               xp_t.device, torch.is_grad_enabled(), COMPILE_BACKEND)
        if key in _eager_keys:
            return cell.step(xp_t, state, w_hh, b_hh, extra)
        if key in _compiled_keys:
            return fn(cell, xp_t, state, w_hh, b_hh, extra)
        try:
            out = fn(cell, xp_t, state, w_hh, b_hh, extra)
        except Exception as err:  # noqa: BLE001 -- any compile failure: this shape runs eagerly
            import warnings
            _eager_keys[key] = f"{type(err).__name__}: {err}"
            warnings.warn(f"torch.compile of the {type(cell).__name__} step failed ({type(err).__name__}); "
                          "running it eagerly", RuntimeWarning, stacklevel=2)
            return cell.step(xp_t, state, w_hh, b_hh, extra)
        _compiled_keys.add(key)
        return out

    return step


def compile_stats() -> dict:
    """How many step shapes compiled and how many fell back to eager (for tests and benchmarks)."""
    return {"compiled": len(_compiled_keys), "eager": len(_eager_keys)}


def _raise_recompile_limit(at_least: int = 64) -> None:
    """Dynamo keeps 8 compiled versions per function by default; train and eval shapes of several
    variants in one process (a sweep, the GPU tests) need more before it gives up and runs eagerly."""
    import torch._dynamo
    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name) and getattr(cfg, name) < at_least:
            setattr(cfg, name, at_least)


def run_layer(cell, xp: Tensor, state, w_hh: Tensor, b_hh: Tensor | None, keep_gates: bool = False,
              state_hook=None, extra: dict | None = None, step=None):
    """Unroll one layer over time. xp: (T, B, chunks·H) input projections.

    Returns outputs (T, B, H), the final state, and (if keep_gates) each gate stacked to (T, B, H),
    plus the LSTM cell state as "c"; a gate the cell does not have (`cell.constant_gates`) is stacked
    as ones. `state_hook(t, state) -> state`, if given, may replace each new state before it is used
    (gradient probes add a zero tensor there to read ∂loss/∂state_t). `extra`: the layer's parameters
    beyond V, U, b (see LSTMCell). `step`: a replacement for cell.step with its signature (compiled_step).
    """
    # training: gradients formed per layer (lstm_bptt, weight_grads), except under autocast, whose dtypes
    # are chosen op by op: there autograd's own per-step path
    by_layer = (weight_grads.wanted(w_hh, b_hh, *(extra or {}).values())
                and not torch.is_autocast_enabled(xp.device.type))
    if by_layer and isinstance(cell, LSTMCell) and step is None and not keep_gates and state_hook is None:
        out, state = run_lstm_layer(cell.variant, xp, state, w_hh, b_hh, extra or {})  # BPTT by hand
        return out, state, {}
    step = step or cell.step
    record = None
    if by_layer and isinstance(cell, (ElmanCell, LSTMCell)):
        xp, w_hh, b_hh, extra, record = _defer_weight_grads(cell, xp, w_hh, b_hh, extra)
    outputs, trace = [], {name: [] for name in cell.gate_names if name not in cell.constant_gates}
    if keep_gates and isinstance(cell, LSTMCell):
        trace["c"] = []
    for t in range(xp.size(0)):
        if record is not None:
            record(state)
        h, state, gates = step(xp[t], state, w_hh, b_hh, extra)
        if state_hook is not None:
            state = state_hook(t, state)
            h = state[0] if isinstance(state, tuple) else state
        outputs.append(h)
        if keep_gates:
            for name, value in gates.items():
                trace[name].append(value)
            if "c" in trace:
                trace["c"].append(state[1])
    outputs = torch.stack(outputs)
    if not keep_gates:
        return outputs, state, {}
    ones = torch.ones_like(outputs)
    names = [n for n in cell.gate_names if n in trace or n in cell.constant_gates] + (["c"] if "c" in trace else [])
    stacked = {n: ones if n in cell.constant_gates else torch.stack(trace[n]) for n in names}
    return outputs, state, stacked


def _defer_weight_grads(cell, xp: Tensor, w_hh: Tensor, b_hh: Tensor | None, extra: dict | None):
    """Elman and LSTM add U s_{t−1} + b (and FGR's R a_{t−1}) to xp_t: their gradients are formed once over
    all steps (weight_grads). Returns the loop's xp, detached U, b, extra, and the per-step state recorder."""
    extra = dict(extra or {})
    recurrent = weight_grads.Term(None)
    owed = [(w_hh, recurrent)] + ([(b_hh, weight_grads.Term(None, None))] if b_hh is not None else [])
    gate_recurrence = None
    if "R" in extra:  # FGR: R a_{t−1} feeds the columns of i, f, o, in that order
        H = w_hh.size(1)
        columns = torch.cat([torch.arange(k * H, (k + 1) * H, device=xp.device) for k, block in enumerate(cell.blocks)
                             if block in SIGMOID_GATES])
        gate_recurrence = weight_grads.Term(columns)
        owed.append((extra["R"], gate_recurrence))
    xp, detached = weight_grads.defer(xp, owed)
    if gate_recurrence is not None:
        extra["R"] = detached[-1]

    def record(state) -> None:
        recurrent.states.append((state[0] if isinstance(state, tuple) else state).detach())
        if gate_recurrence is not None:
            gate_recurrence.states.append(state[2].detach())

    return xp, detached[0], detached[1] if b_hh is not None else None, extra, record
