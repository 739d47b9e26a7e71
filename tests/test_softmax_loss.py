"""Training's output layer on the CPU in float32 takes lmcore's C++ softmax (lmcore/nn/native/softmax_loss.cpp):
z + b, ℓ and ∂ℓ/∂z in one pass over each row, in place. It must give PyTorch's loss and gradients to float32's
rounding, whatever the vocabulary, the targets, the chunks or the threads, and training must take it where
lmcore.training.device.native_loss_pays says."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from lmcore.nn import native
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.chunked_loss import output_loss
from lmcore.nn.model import build_model
from lmcore.training.device import native_loss_pays
from lmcore.training.trainer import train

from .conftest import require_compiler

CPU = torch.device("cpu")


@pytest.fixture
def ops():
    require_compiler("training's output layer keeps PyTorch's log-softmax")
    loaded = native.softmax_loss()
    assert loaded is not None, "the C++ did not build"
    return loaded


class OpsSeen(TorchDispatchMode):
    """The ops dispatched while active, by name, with how often each ran."""

    def __init__(self):
        super().__init__()
        self.names = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names[func.name()] += 1
        return func(*args, **(kwargs or {}))


def _inputs(n, hidden, vocab, bias=True, spread=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hidden, generator=g).mul_(spread).requires_grad_()
    w = torch.randn(vocab, hidden, generator=g, requires_grad=True)
    b = torch.randn(vocab, generator=g, requires_grad=True) if bias else None
    y = torch.randint(0, vocab, (n,), generator=g)
    y[0], y[-1] = 0, vocab - 1  # the first and last word: the ends of a row, and of its 16-wide tail
    return h, w, b, y


@pytest.mark.parametrize("vocab", [1, 7, 16, 33, 300, 1366])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows", [None, 5])
def test_loss_and_gradients_are_pytorchs(ops, vocab, bias, rows):
    h, w, b, y = _inputs(70, 24, vocab, bias)
    params = (h, w) if b is None else (h, w, b)
    whole = F.cross_entropy(F.linear(h, w, b), y)
    expected = torch.autograd.grad(2.5 * whole, params)
    got_loss = output_loss(h, w, b, y, rows=rows, in_place=True)
    got = torch.autograd.grad(2.5 * got_loss, params)  # a scaled loss: backward scales what forward kept
    assert got_loss.item() == pytest.approx(whole.item(), rel=2e-6, abs=1e-6)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)


def test_the_c_softmax_ran_and_pytorchs_did_not(ops):
    h, w, b, y = _inputs(40, 8, 100)
    with OpsSeen() as seen:
        output_loss(h, w, b, y, in_place=True).backward()
    assert "lmcore_softmax_loss::softmax_xent_" in seen.names
    assert not {"aten::_log_softmax", "aten::logsumexp", "aten::_log_softmax_backward_data"} & seen.names.keys()
    with OpsSeen() as plain:
        output_loss(h, w, b, y).backward()
    assert "aten::logsumexp" in plain.names and "lmcore_softmax_loss::softmax_xent_" not in plain.names


def test_far_apart_logits_neither_overflow_nor_lose_the_target(ops):
    """Logits in the thousands: exp of the raw values overflows float32; the row's max must come out first."""
    h, w, b, y = _inputs(50, 16, 200, spread=300.0)
    whole = F.cross_entropy(F.linear(h, w, b), y)
    got = output_loss(h, w, b, y, in_place=True)
    assert torch.isfinite(got) and whole.item() > 100
    assert got.item() == pytest.approx(whole.item(), rel=1e-5)
    grads = torch.autograd.grad(got, (h, w, b))
    assert all(torch.isfinite(g).all() for g in grads)
    torch.testing.assert_close(grads[2], torch.autograd.grad(whole, b)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows, vocab", [(203, 50), (700, 1366), (31, 7)])
def test_the_bias_gradient_is_the_same_on_any_number_of_threads_to_the_bit(ops, rows, vocab):
    """(Summed per thread, it had been the one thing that made an LSTM's or GRU's training differ between 1 and 2
    threads; rows are summed per fixed block now, the blocks in order.)"""
    before = torch.get_num_threads()
    h, w, b, y = _inputs(rows, 8, vocab)
    got = {}
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            got[threads] = torch.autograd.grad(output_loss(h, w, b, y, in_place=True), b)[0]
    finally:
        torch.set_num_threads(before)
    expected = torch.autograd.grad(F.cross_entropy(F.linear(h, w, b), y), b)[0]
    for threads, grad in got.items():
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-7)
        assert torch.equal(grad, got[1]), threads


def test_a_word_far_below_the_rows_best_gets_exactly_nothing(ops):
    """exp of a logit 87 or more below the row's max is 0, not a denormal fed to the next products."""
    z = torch.tensor([[0.0, -100.0, -1e4, 5.0, -float("inf"), 4.0]])
    loss, _ = ops.softmax_xent_(z, torch.tensor([3]), None, 1.0)
    assert z[0, 1].item() == z[0, 2].item() == z[0, 4].item() == 0.0
    expected = torch.softmax(torch.tensor([0.0, 5.0, 4.0]), 0)
    torch.testing.assert_close(z[0, [0, 3, 5]], expected - torch.tensor([0.0, 1.0, 0.0]))
    assert loss == pytest.approx(-torch.log(expected[1]).item(), rel=1e-6)


def test_a_target_outside_the_vocabulary_is_refused(ops):
    z = torch.randn(4, 10)
    with pytest.raises(RuntimeError, match="out of range"):
        ops.softmax_xent_(z, torch.tensor([0, 3, 10, 1]), None, 0.25)
    with pytest.raises(RuntimeError, match="float32"):
        ops.softmax_xent_(z.double(), torch.tensor([0, 3, 9, 1]), None, 0.25)


def test_training_takes_it_on_the_cpu_in_float32_only(ops, monkeypatch):
    assert native_loss_pays(CPU, bf16=False)
    assert not native_loss_pays(CPU, bf16=True)  # autocast's products are bfloat16: PyTorch's way there
    assert not native_loss_pays(torch.device("cuda"), bf16=False)
    monkeypatch.setenv("LMCORE_NATIVE", "0")
    assert not native_loss_pays(CPU, bf16=False)


@pytest.mark.parametrize("arch, tied, bias", [("lstm", False, True), ("gru", True, True), ("lstm", True, False),
                                              ("ffnn", False, True)])
def test_a_models_training_step_takes_it_and_evaluation_does_not(ops, arch, tied, bias):
    """Tied weights too: W is the embedding, its gradient from both ends."""
    torch.manual_seed(1)
    model = build_model(ModelConfig(arch=arch, emb=12, hidden=12, layers=1, vocab_size=40, dropout=0.0, tied=tied,
                                    bias=bias))
    x, y = torch.randint(0, 40, (9, 3)), torch.randint(0, 40, (9, 3))
    assert _both_ways_alike(model, x, y) == [0, 1]  # C++ calls without the flag, with it
    model.eval()
    with torch.no_grad(), OpsSeen() as seen:
        model(x, None, y, need_logits=False)
    assert "lmcore_softmax_loss::softmax_xent_" not in seen.names


def test_a_run_trains_through_it_as_through_pytorchs_to_rounding(ops, tiny_cfg, tmp_path, monkeypatch):
    """The trainer sets it; the run goes the way PyTorch's loss takes it, apart by float32's rounding only."""
    cfg = tiny_cfg("gru", max_steps=10)
    cfg = replace(cfg, model=replace(cfg.model, dropout=0.0))
    seen = []
    original = native.softmax_loss
    monkeypatch.setattr(native, "softmax_loss", lambda: seen.append(1) or original())
    weights = {}
    for name, on in (("c", True), ("torch", False)):
        if not on:
            monkeypatch.setattr("lmcore.training.trainer.native_loss_pays", lambda device, bf16: False)
        result = train(cfg, tmp_path / name)
        assert result.status == "done", result
        weights[name] = torch.load(tmp_path / name / "last.pt", weights_only=True)["state_dict"]
        assert bool(seen) == on
        seen.clear()
    gap = max((weights["c"][k] - weights["torch"][k]).abs().max().item() for k in weights["c"])
    assert 0.0 < gap < 1e-4  # 0 would mean the run never took the C++


def test_the_adaptive_softmax_takes_it_for_its_head_and_clusters(ops):
    """--output adaptive: the head and every cluster's softmax through the C++, the same loss and gradients."""
    torch.manual_seed(4)
    model = build_model(ModelConfig(arch="lstm", emb=16, hidden=16, layers=1, vocab_size=30_000, dropout=0.0,
                                    output="adaptive"))
    x = torch.randint(0, 30_000, (7, 3))
    y = torch.tensor([[5, 2_500, 29_999], [1, 9_999, 10_000], [0, 3, 4]] + [[6, 7, 8]] * 4)  # both clusters
    assert _both_ways_alike(model, x, y) == [0, 3]  # with the flag: the head and 2 clusters


def _both_ways_alike(model, x, y) -> list[int]:
    """One training step without the flag and one with it: the same loss and gradients; how often the C++ ran in
    each."""
    model.train()
    grads, losses, calls = [], [], []
    for in_place in (False, True):
        model.native_loss = in_place
        model.zero_grad()
        with OpsSeen() as seen:
            loss = model(x, None, y, need_logits=False)[1]
            loss.backward()
        calls.append(seen.names["lmcore_softmax_loss::softmax_xent_"])
        losses.append(loss.item())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6)
    return calls
