"""One layer unrolled over time: the loop every hand-written cell runs in, the torch.compile cache of a
cell's step, and the two training speed-ups it hands over to (the LSTM's hand-written backward in
lstm_backward.py; the recurrent weights' gradients in one product, deferred_grads.py)."""
from __future__ import annotations

import warnings

import torch
from torch import Tensor

from lmcore.nn import deferred_grads
from lmcore.nn.architectures import LSTM_GATES
from lmcore.nn.cells import ElmanCell, GRUCell, LSTMCell
from lmcore.nn.elman_layer import run_elman_layer
from lmcore.nn.gru_layer import gru_layer_gates, run_gru_layer
from lmcore.nn.lstm_backward import lstm_layer_gates, native_lstm_loop, run_lstm_layer

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
    import torch._dynamo  # 1.6 s of every import of the model (every CLI call, every job process): only to compile
    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name) and getattr(cfg, name) < at_least:
            setattr(cfg, name, at_least)


def run_layer(cell, xp: Tensor, state, w_hh: Tensor, b_hh: Tensor | None, keep_gates: bool = False,
              state_hook=None, extra: dict | None = None, step=None, edit=None):
    """Unroll one layer over time. xp: (T, B, chunks·H) input projections.

    Returns outputs (T, B, H), the final state, and (if keep_gates) each gate stacked to (T, B, H),
    plus the LSTM cell state as "c"; a gate the cell does not have (`cell.constant_gates`) is stacked
    as ones. `state_hook(t, state) -> state`, if given, may replace each new state before it is used
    (gradient probes add a zero tensor there to read ∂loss/∂state_t). `extra`: the layer's parameters
    beyond V, U, b (see LSTMCell). `step`: a replacement for cell.step with its signature (compiled_step).
    `edit(t, name, value) -> value`, if given, may replace each gate, the cell c and h as step t makes them (an
    intervention, lmcore.inspect.interventions); it runs the eager step.
    """
    # training: gradients formed per layer (lstm_bptt, weight_grads), except under autocast, whose dtypes
    # are chosen op by op: there autograd's own per-step path
    no_autocast = not torch.is_autocast_enabled(xp.device.type)
    by_layer = deferred_grads.wanted(w_hh, b_hh, *(extra or {}).values()) and no_autocast
    # evaluation (no gradients) takes the layers' C++ loops too, where they apply: the Python loop below pays a
    # few microseconds for each of a step's dozen operations
    evaluating = not torch.is_grad_enabled() and no_autocast
    unhooked = step is None and state_hook is None and edit is None
    plain = (by_layer or evaluating) and unhooked and not keep_gates
    if plain and isinstance(cell, LSTMCell) and (by_layer or native_lstm_loop(cell.variant, xp)):
        out, state = run_lstm_layer(cell.variant, xp, state, w_hh, b_hh, extra or {})  # BPTT by hand
        return out, state, {}
    done = None
    if keep_gates and evaluating and unhooked:  # a trace: the gates from the C++ loop's forward, where it applies
        if isinstance(cell, LSTMCell):
            done = lstm_layer_gates(cell.variant, xp, state, w_hh, b_hh, extra or {})
        elif isinstance(cell, GRUCell) and not cell.cho:
            done = gru_layer_gates(xp, state, w_hh, b_hh)
        if done is not None:
            return done
    if plain and isinstance(cell, ElmanCell):
        done = run_elman_layer(cell.activation, xp, state, w_hh, b_hh)
    elif plain and isinstance(cell, GRUCell) and not cell.cho:
        done = run_gru_layer(xp, state, w_hh, b_hh)
    if done is not None:  # BPTT by hand, in C++
        return done[0], done[1], {}
    step = cell.step if edit is not None else step or cell.step
    record = None
    if by_layer and isinstance(cell, (ElmanCell, LSTMCell)):
        xp, w_hh, b_hh, extra, record = _defer_weight_grads(cell, xp, w_hh, b_hh, extra)
    outputs, trace = [], {name: [] for name in cell.gate_names if name not in cell.constant_gates}
    if keep_gates and isinstance(cell, LSTMCell):
        trace["c"] = []
    for t in range(xp.size(0)):
        if record is not None:
            record(state)
        if edit is None:
            h, state, gates = step(xp[t], state, w_hh, b_hh, extra)
        else:
            h, state, gates = step(xp[t], state, w_hh, b_hh, extra, edit=lambda name, value, t=t: edit(t, name, value))
        if state_hook is not None:
            state = state_hook(t, state)
            h = state[0] if isinstance(state, tuple) else state
        outputs.append(h)
        if keep_gates:
            for name, value in gates.items():
                if name in trace:  # an absent gate an intervention set is still drawn as the constant it was
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
    recurrent = deferred_grads.Term(None)
    owed = [(w_hh, recurrent)] + ([(b_hh, deferred_grads.Term(None, None))] if b_hh is not None else [])
    gate_recurrence = None
    if "R" in extra:  # FGR: R a_{t−1} feeds the columns of i, f, o, in that order
        H = w_hh.size(1)
        columns = torch.cat([torch.arange(k * H, (k + 1) * H, device=xp.device) for k, block in enumerate(cell.blocks)
                             if block in LSTM_GATES])
        gate_recurrence = deferred_grads.Term(columns)
        owed.append((extra["R"], gate_recurrence))
    xp, detached = deferred_grads.defer(xp, owed)
    if gate_recurrence is not None:
        extra["R"] = detached[-1]

    def record(state) -> None:
        recurrent.states.append((state[0] if isinstance(state, tuple) else state).detach())
        if gate_recurrence is not None:
            gate_recurrence.states.append(state[2].detach())

    return xp, detached[0], detached[1] if b_hh is not None else None, extra, record
