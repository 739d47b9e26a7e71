"""The hand-written cells form U's, b's and FGR's R's gradients once over all steps (lmcore.nn.deferred_grads):
every parameter's gradient must equal the one autograd forms step by step, and the fused module's."""
from __future__ import annotations

import pytest
import torch

from lmcore.nn import deferred_grads as weight_grads
from lmcore.nn.architectures import LSTM_VARIANTS, ModelConfig
from lmcore.nn.model import RNNLM

CASES = [("elman", "vanilla", "sigmoid"), ("elman", "vanilla", "tanh")] + [("lstm", v, "tanh") for v in LSTM_VARIANTS]


def gradients(model: RNNLM, x: torch.Tensor, hidden, use_cells: bool = True) -> dict[str, torch.Tensor]:
    """Every parameter's gradient, and the initial state's (as "state0", "state1", …), the final state
    also feeding the loss so that its gradient path is exercised."""
    model.zero_grad(set_to_none=True)
    states = hidden if isinstance(hidden, tuple) else (hidden,)
    states = tuple(s.detach().requires_grad_() for s in states)
    _, loss, final = model(x[:-1], hidden=states if isinstance(hidden, tuple) else states[0], targets=x[1:],
                           use_cells=use_cells)
    final = final if isinstance(final, tuple) else (final,)
    (loss + sum((s * s).mean() for s in final)).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return grads | {f"state{k}": s.grad.clone() for k, s in enumerate(states)}


@pytest.mark.parametrize("arch, variant, activation", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_deferred_gradients_equal_step_by_step_autograd(arch, variant, activation, bias, monkeypatch):
    torch.manual_seed(7)
    model = RNNLM(ModelConfig(arch=arch, variant=variant, activation=activation, bias=bias, emb=6, hidden=5,
                              layers=2, dropout=0.0, vocab_size=11, backend="cells")).double()
    x = torch.randint(0, 11, (9, 3))
    hidden = model.init_hidden(3)  # a non-zero carried state, as TBPTT hands over between batches
    hidden = (tuple(torch.randn_like(s, dtype=torch.float64) for s in hidden) if isinstance(hidden, tuple)
              else torch.randn_like(hidden, dtype=torch.float64))
    deferred = gradients(model, x, hidden)
    monkeypatch.setattr(weight_grads, "wanted", lambda *weights: False)  # autograd's own per-step products
    reference = gradients(model, x, hidden)
    assert deferred.keys() == reference.keys()
    assert len(deferred) == len(list(model.parameters())) + (len(hidden) if isinstance(hidden, tuple) else 1)
    for name, grad in reference.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(deferred[name], grad, rtol=1e-10, atol=1e-12, msg=name)


def test_cells_gradients_equal_the_fused_lstm():
    torch.manual_seed(3)
    fused = RNNLM(ModelConfig(arch="lstm", emb=6, hidden=5, layers=2, dropout=0.0, vocab_size=11)).double()
    x = torch.randint(0, 11, (9, 3))
    hidden = tuple(s.double() for s in fused.init_hidden(3))
    reference = gradients(fused, x, hidden, use_cells=False)
    cells = gradients(fused, x, hidden)
    assert reference.keys() == cells.keys()
    for name, grad in reference.items():
        torch.testing.assert_close(cells[name], grad, rtol=1e-9, atol=1e-12, msg=name)


def test_inference_and_frozen_weights_take_autograds_path():
    assert not weight_grads.wanted(torch.zeros(2, requires_grad=False), None)
    w = torch.zeros(2, requires_grad=True)
    assert weight_grads.wanted(None, w)
    with torch.no_grad():
        assert not weight_grads.wanted(w)


@pytest.mark.parametrize("arch, variant", [("lstm", "vanilla"), ("lstm", "fgr"), ("elman", "vanilla")])
def test_training_under_autocast_takes_autograds_path_and_works(arch, variant):
    # --bf16 autocasts on CUDA; the CPU's autocast exercises the same dispatch here
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch=arch, variant=variant, emb=8, hidden=8, layers=2, vocab_size=20, backend="cells"))
    x = torch.randint(0, 20, (6, 3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss, _ = model(x[:-1], targets=x[1:])
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
