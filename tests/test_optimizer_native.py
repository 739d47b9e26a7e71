"""Clipping and the update in one pass of C++ (lmcore/nn/native/optimizer_steps.cpp), as the trainer steps on the
CPU in float32: torch's clip_grad_norm_ and torch.optim's step to float32's rounding, the same norm on any number of
threads, and torch's way to the bit wherever the C++ does not apply."""
from __future__ import annotations

import math

import pytest
import torch

from lmcore.nn import native
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import build_model
from lmcore.training.optimizers import Adam, SGD, clip_factor
from lmcore.training.trainer import train

from .conftest import require_compiler
from .test_softmax_loss import OpsSeen

TORCH_OPTIM = {"sgd": lambda ps, lr: torch.optim.SGD(ps, lr=lr), "adam": lambda ps, lr: torch.optim.Adam(ps, lr=lr)}
OURS = {"sgd": SGD, "adam": Adam}
LR = {"sgd": 0.5, "adam": 0.01}


@pytest.fixture
def ops():
    require_compiler("the optimizers step through torch's foreach operations")
    loaded = native.optimizer_steps()
    assert loaded is not None, "the C++ did not build"
    return loaded


def _model(seed: int = 0, dtype=torch.float32):
    torch.manual_seed(seed)
    return build_model(ModelConfig(arch="lstm", vocab_size=30, emb=8, hidden=12, layers=2, dropout=0.0)).to(dtype)


def _steps(model, step, optimizer, steps: int = 8) -> None:
    """Seeded random batches; the decoder gets no gradient on odd steps (a parameter without .grad)."""
    for n in range(steps):
        g = torch.Generator().manual_seed(100 + n)
        x = torch.randint(0, 30, (7, 3), generator=g)
        optimizer.zero_grad(set_to_none=True)
        out, _ = model.features(x)
        loss = (out ** 2).mean() if n % 2 else model.decoder(out).logsumexp(-1).mean() * (1 + 20 * (n % 4 == 0))
        loss.backward()
        step()
        optimizer.param_groups[0]["lr"] *= 0.9  # as the trainer decays it


def _torchs_way(optimizer, max_norm: float):
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def step():
        if max_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
    return step


@pytest.mark.parametrize("max_norm", [0.0, 0.05, 1e3])  # off; clipping every step; never reached
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_the_cpp_step_is_torchs_clipping_and_step_to_rounding(ops, name, max_norm):
    ours, theirs, start = _model(), _model(), _model()
    optimizer = OURS[name](ours.parameters(), LR[name])
    with OpsSeen() as seen:
        _steps(ours, lambda: optimizer.clip_and_step(max_norm), optimizer)
    reference = TORCH_OPTIM[name](theirs.parameters(), LR[name])
    _steps(theirs, _torchs_way(reference, max_norm), reference)
    assert seen.names[f"lmcore_optimizer::{name}_"] == 8
    assert seen.names["lmcore_optimizer::sum_squares"] == (8 if max_norm else 0)
    for p, q, p0 in zip(ours.parameters(), theirs.parameters(), start.parameters()):
        assert not torch.equal(q, p0)  # every parameter moved
        torch.testing.assert_close(p, q, rtol=2e-5, atol=2e-6)
        if name == "sgd" and not max_norm:  # the same operations: to the bit
            assert torch.equal(p, q)
    if name == "adam":  # its state too, in torch.optim's layout
        theirs_state = reference.state_dict()["state"]
        for i, s in optimizer.state_dict()["state"].items():
            assert s["step"] == theirs_state[i]["step"]
            torch.testing.assert_close(s["exp_avg"], theirs_state[i]["exp_avg"], rtol=2e-5, atol=1e-9)
            torch.testing.assert_close(s["exp_avg_sq"], theirs_state[i]["exp_avg_sq"], rtol=2e-5, atol=1e-12)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_clipping_changes_the_step(ops, name):
    """The small norm clips: the weights differ from an unclipped run's by more than rounding."""
    runs = []
    for max_norm in (0.0, 0.05):
        model = _model()
        optimizer = OURS[name](model.parameters(), LR[name])
        _steps(model, lambda: optimizer.clip_and_step(max_norm), optimizer)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert float((runs[0] - runs[1]).abs().max()) > 1e-3


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_with_the_cpp_off_it_is_torchs_way_to_the_bit(name, monkeypatch):
    monkeypatch.setenv("LMCORE_NATIVE", "0")
    ours, theirs = _model(), _model()
    optimizer = OURS[name](ours.parameters(), LR[name])
    with OpsSeen() as seen:
        _steps(ours, lambda: optimizer.clip_and_step(0.05), optimizer)
    reference = TORCH_OPTIM[name](theirs.parameters(), LR[name])
    _steps(theirs, _torchs_way(reference, 0.05), reference)
    assert not any(n.startswith("lmcore_optimizer") for n in seen.names)
    assert all(torch.equal(p, q) for p, q in zip(ours.parameters(), theirs.parameters()))


@pytest.mark.parametrize("name", ["sgd", "adam"])
@pytest.mark.parametrize("odd", ["float64", "a transposed gradient"])
def test_tensors_the_cpp_does_not_take_go_torchs_way(ops, name, odd):
    g = torch.Generator().manual_seed(5)
    dtype = torch.float64 if odd == "float64" else torch.float32
    start = [torch.randn(6, 4, generator=g, dtype=dtype), torch.randn(5, generator=g, dtype=dtype)]
    grads = [torch.randn(4, 6, generator=g, dtype=dtype).t(), torch.randn(5, generator=g, dtype=dtype)]
    if odd == "float64":
        grads[0] = grads[0].contiguous()
    ours, theirs = ([torch.nn.Parameter(t.clone()) for t in start] for _ in range(2))
    optimizer, reference = OURS[name](ours, LR[name]), TORCH_OPTIM[name](theirs, LR[name])
    for p, q, grad in zip(ours, theirs, grads):
        p.grad, q.grad = grad.clone(), grad.clone()  # (clone keeps the transposed strides)
    assert not ours[0].grad.is_contiguous() or dtype == torch.float64
    with OpsSeen() as seen:
        optimizer.clip_and_step(0.5)
    _torchs_way(reference, 0.5)()
    assert not any(n.startswith("lmcore_optimizer") for n in seen.names)
    assert all(torch.equal(p, q) for p, q in zip(ours, theirs)) and not torch.equal(ours[0], start[0])


def test_the_norm_is_the_same_on_any_number_of_threads(ops):
    """Partial sums per block, added in the blocks' order: one number whatever the threads (a resumed run steps as
    it would have), and the float64 sum of squares to 1e-12."""
    g = torch.Generator().manual_seed(3)
    grads = [torch.randn(n, generator=g) * 10 ** e for n, e in ((5, 0), (40_001, -3), (16_384, 2), (1, 1), (70_000, -1))]
    threads = torch.get_num_threads()
    try:
        sums = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            sums.append(ops.sum_squares(grads))
    finally:
        torch.set_num_threads(threads)
    assert sums[0] == sums[1] == sums[2]
    exact = math.fsum(float(x) ** 2 for t in grads for x in t.double())
    assert sums[0] == pytest.approx(exact, rel=1e-12)


def test_it_refuses_tensors_that_do_not_match(ops):
    p, g = torch.zeros(10), torch.ones(10)
    ops.sgd_([p], [g], -0.5)
    assert torch.equal(p, torch.full((10,), -0.5))
    with pytest.raises(RuntimeError, match="does not match"):
        ops.sgd_([p], [torch.ones(9)], 1.0)
    with pytest.raises(RuntimeError, match="unequal length"):
        ops.sgd_([p, p], [g], 1.0)
    with pytest.raises(RuntimeError, match="float32 contiguous"):
        ops.sum_squares([torch.ones(4, 4).t()[:, :2]])
    with pytest.raises(RuntimeError, match="float32 contiguous"):
        ops.sum_squares([torch.ones(3, dtype=torch.float64)])


def test_gradients_that_are_not_numbers_make_weights_that_are_not_either(ops):
    """As with torch's clipping: a NaN or infinite gradient is not quietly clipped away; the run then ends diverged."""
    for bad in (math.nan, math.inf):
        model = _model()
        optimizer = SGD(model.parameters(), 0.1)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        model.decoder.bias.grad[0] = bad
        optimizer.clip_and_step(0.25)
        assert torch.isnan(model.decoder.bias[0]), bad
    assert math.isnan(clip_factor(math.nan, 0.25)) and clip_factor(0.0, 0.25) == 1.0 and clip_factor(1.0, 0.5) < 0.5


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_steps_through_it(ops, tiny_cfg, tmp_path, monkeypatch, optimizer):
    """The trainer's every step (clipped, on the CPU in float32) goes through the C++, and trains as torch's way
    does to float32's rounding over the run's 12 steps."""
    cfg = tiny_cfg("gru", max_steps=12, optimizer=optimizer, lr=LR[optimizer])
    with torch.profiler.profile() as prof:
        train(cfg, tmp_path / "cpp")
    assert sum(e.name == f"lmcore_optimizer::{optimizer}_" for e in prof.events()) == 12
    ours = torch.load(tmp_path / "cpp" / "last.pt", weights_only=True)["state_dict"]
    monkeypatch.setattr(native, "optimizer_steps", lambda: None)  # the trainer's path, the step in torch's way
    train(cfg, tmp_path / "torch")
    theirs = torch.load(tmp_path / "torch" / "last.pt", weights_only=True)["state_dict"]
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-5)
