"""The C++ time loop of the GRU layer (lmcore/nn/native/gru_steps.cpp, through lmcore.nn.gru_layer) computes what
unroll.run_layer's Python loop (GRUCell.step, PyTorch's convention) computes: the same outputs, final state and
gradients of every input, in float32 and float64, at batch and hidden sizes off the product kernel's tiles; a GRU
trained on the cells goes through it, and Cho et al.'s convention keeps the Python loop."""
from __future__ import annotations

import pytest
import torch

from lmcore.nn import native
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.cells import GRUCell
from lmcore.nn.model import RNNLM
from lmcore.nn.unroll import run_layer

from .conftest import graph_node_names, require_compiler


@pytest.fixture(scope="module")
def ops():
    require_compiler("training keeps the Python loop")
    built = native.gru_steps()
    assert built is not None, "a C++ compiler is here, yet the GRU loop did not build"
    return built


def layer_run(dtype: torch.dtype, T: int, B: int, H: int, convention: str = "pytorch", bias: bool = True):
    """(outputs, h_T), the gradients of xp, h0, U (and b) under a loss that uses both, and out's grad_fn name."""
    g = torch.Generator().manual_seed(3)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_()

    xp, h0, U, b = rand(T, B, 3 * H), rand(B, H), rand(3 * H, H, scale=1.5 / H ** 0.5), rand(3 * H, scale=0.3)
    out, h_T, _ = run_layer(GRUCell(convention), xp, h0, U, b if bias else None)
    loss = (out * torch.randn(out.shape, generator=g, dtype=dtype)).sum() + (h_T * h_T).sum()
    inputs = (xp, h0, U, b) if bias else (xp, h0, U)
    grads = torch.autograd.grad(loss, inputs)
    return [out.detach(), h_T.detach()], list(grads), type(out.grad_fn).__name__


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("B, H, bias", [(3, 5, True), (13, 37, True), (8, 3, False), (20, 16, True)])
def test_native_gru_equals_the_python_loop(ops, dtype, B, H, bias, monkeypatch):
    values, grads, fn = layer_run(dtype, T=9, B=B, H=H, bias=bias)
    assert fn == "_GRULayerBackward", "the C++ loop did not run"
    monkeypatch.setenv("LMCORE_NATIVE", "0")
    ref_values, ref_grads, ref_fn = layer_run(dtype, T=9, B=B, H=H, bias=bias)
    assert ref_fn != fn  # the reference is the Python loop
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    for k, (got, want) in enumerate(zip(values + grads, ref_values + ref_grads)):
        assert want.abs().max() > 0, k
        torch.testing.assert_close(got, want, rtol=tol, atol=tol * want.abs().max().item(), msg=f"value/gradient {k}")


def test_the_gradients_are_the_derivatives(ops):
    """Held to finite differences as well (float64), not only to the Python loop."""
    g = torch.Generator().manual_seed(5)
    T, B, H = 4, 3, 4
    xp, h0 = torch.randn(T, B, 3 * H, generator=g, dtype=torch.float64), torch.randn(B, H, generator=g, dtype=torch.float64)
    U, b = torch.randn(3 * H, H, generator=g, dtype=torch.float64) * 0.5, torch.randn(3 * H, generator=g, dtype=torch.float64)
    inputs = tuple(t.requires_grad_() for t in (xp, h0, U, b))
    assert torch.autograd.gradcheck(lambda *a: run_layer(GRUCell(), *a)[0], inputs)


def test_chos_convention_keeps_the_python_loop(ops):
    _, _, fn = layer_run(torch.float32, T=5, B=4, H=6, convention="cho")
    assert fn != "_GRULayerBackward"


def test_training_a_gru_on_the_cells_runs_the_cpp_loop(ops):
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch="gru", emb=16, hidden=24, layers=2, vocab_size=50, backend="cells"))
    x = torch.randint(0, 50, (6, 4))
    _, loss, _ = model(x[:-1], targets=x[1:])
    assert "_GRULayerBackward" in graph_node_names(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_native_gru_refuses_what_it_cannot_run(ops):
    x = torch.zeros(2, 3, 12)
    with pytest.raises(RuntimeError, match="every tensor in"):
        ops.forward(x, None, torch.zeros(3, 4, dtype=torch.float64), torch.zeros(12, 4))
    with pytest.raises(RuntimeError, match="w_hh"):
        ops.forward(x, None, torch.zeros(3, 4), torch.zeros(12, 5))
    with pytest.raises(RuntimeError, match=r"xp \(T, B, 3H\)"):
        ops.forward(torch.zeros(2, 3, 11), None, torch.zeros(3, 4), torch.zeros(12, 4))
    out, acts = ops.forward(x, None, torch.zeros(3, 4), torch.zeros(12, 4))
    with pytest.raises(RuntimeError, match="acts"):
        ops.backward(out, torch.zeros(3, 4), acts[..., :8], out, torch.zeros(3, 4), torch.zeros(12, 4))
