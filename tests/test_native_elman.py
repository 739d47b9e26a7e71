"""The C++ time loop of the Elman layer (lmcore/nn/native/elman_steps.cpp, through lmcore.nn.elman_layer) computes
what unroll.run_layer's Python loop computes: the same outputs, final state and gradients of every input, for σ,
tanh and ReLU, in float32 and float64, at batch and hidden sizes off the product kernel's tiles; and training an
Elman network on the cells goes through it."""
from __future__ import annotations


import pytest
import torch

from lmcore.nn import native
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.cells import ElmanCell
from lmcore.nn.model import RNNLM
from lmcore.nn.unroll import run_layer

from .conftest import graph_node_names, require_compiler


@pytest.fixture(scope="module")
def ops():
    require_compiler("training keeps the Python loop")
    built = native.elman_steps()
    assert built is not None, "a C++ compiler is here, yet the Elman loop did not build"
    return built


def layer_run(activation: str, dtype: torch.dtype, T: int, B: int, H: int):
    """(outputs, h_T), the gradients of xp, h0, U and b under a loss that uses both, and out's grad_fn name."""
    g = torch.Generator().manual_seed(3)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_()

    xp, h0, U, b = rand(T, B, H), rand(B, H), rand(H, H, scale=0.8 / H ** 0.5), rand(H, scale=0.1)
    out, h_T, _ = run_layer(ElmanCell(activation), xp, h0, U, b)
    loss = (out * torch.randn(out.shape, generator=g, dtype=dtype)).sum() + (h_T * h_T).sum()
    grads = torch.autograd.grad(loss, (xp, h0, U, b))
    return [out.detach(), h_T.detach()], list(grads), type(out.grad_fn).__name__


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("B, H", [(3, 5), (13, 37), (8, 3)])
def test_native_elman_equals_the_python_loop(ops, activation, dtype, B, H, monkeypatch):
    values, grads, fn = layer_run(activation, dtype, T=9, B=B, H=H)
    assert fn == "_ElmanLayerBackward", "the C++ loop did not run"
    monkeypatch.setenv("LMCORE_NATIVE", "0")
    ref_values, ref_grads, ref_fn = layer_run(activation, dtype, T=9, B=B, H=H)
    assert ref_fn != fn  # the reference is the Python loop
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    for k, (got, want) in enumerate(zip(values + grads, ref_values + ref_grads)):
        assert want.abs().max() > 0, k
        torch.testing.assert_close(got, want, rtol=tol, atol=tol * want.abs().max().item(), msg=f"value/gradient {k}")


def test_training_an_elman_network_on_the_cells_runs_the_cpp_loop(ops):
    """The lecture's σ Elman network (only the cells run it): a training forward goes through the C++ loop."""
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch="elman", activation="sigmoid", emb=16, hidden=24, layers=2, vocab_size=50,
                              backend="cells"))
    x = torch.randint(0, 50, (6, 4))
    _, loss, _ = model(x[:-1], targets=x[1:])
    assert "_ElmanLayerBackward" in graph_node_names(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_native_elman_refuses_what_it_cannot_run(ops):
    x = torch.zeros(2, 3, 4)
    with pytest.raises(RuntimeError, match="activation"):
        ops.forward(x, None, torch.zeros(3, 4), torch.zeros(4, 4), 7)
    with pytest.raises(RuntimeError, match="every tensor in"):
        ops.forward(x, None, torch.zeros(3, 4, dtype=torch.float64), torch.zeros(4, 4), 0)
    with pytest.raises(RuntimeError, match="w_hh"):
        ops.forward(x, None, torch.zeros(3, 4), torch.zeros(5, 4), 0)
    with pytest.raises(RuntimeError, match="w_hh"):  # a wider U would read past δ's rows
        ops.backward(x, torch.zeros(3, 4), x, torch.zeros(4, 6), 0)
