"""The output layer's loss a chunk of rows at a time: the same loss and gradients as the whole logits, and never
the whole logits in memory."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import build_model
from lmcore.nn import chunked_loss
from lmcore.nn.chunked_loss import chunk_rows, output_loss
from lmcore.training.device import bf16_native


class LargestTensor(TorchDispatchMode):
    """Records the most elements of any tensor an aten op returns while active."""

    def __init__(self):
        super().__init__()
        self.most = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.most = max(self.most, t.numel())
        return out


def _inputs(n=70, hidden=16, vocab=300, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hidden, generator=g, requires_grad=True)
    w = torch.randn(vocab, hidden, generator=g, requires_grad=True)
    b = torch.randn(vocab, generator=g, requires_grad=True) if bias else None
    return h, w, b, torch.randint(0, vocab, (n,), generator=g)


@pytest.mark.parametrize("rows", [1, 16, 69, 70, 500])
@pytest.mark.parametrize("bias", [True, False])
def test_loss_and_gradients_equal_the_whole_logits(rows, bias):
    h, w, b, y = _inputs(bias=bias)
    params = (h, w) if b is None else (h, w, b)
    whole = F.cross_entropy(F.linear(h, w, b), y)
    expected = torch.autograd.grad(2.5 * whole, params)
    chunked = output_loss(h, w, b, y, rows=rows)
    got = torch.autograd.grad(2.5 * chunked, params)  # a scaled loss: backward scales what forward kept
    assert chunked.item() == pytest.approx(whole.item(), rel=1e-6)
    for e, g in zip(expected, got):
        assert torch.allclose(e, g, atol=1e-6, rtol=1e-5)


def test_no_more_than_one_chunk_of_logits_is_ever_made():
    h, w, b, y = _inputs(n=120, vocab=1000)
    rows = 24
    with LargestTensor() as seen:
        output_loss(h, w, b, y, rows=rows).backward()
    assert seen.most <= rows * 1000 < 120 * 1000
    with LargestTensor() as whole:
        F.cross_entropy(F.linear(h, w, b), y).backward()
    assert whole.most == 120 * 1000  # the check sees the logits when they are made whole


def test_a_default_chunk_is_bounded_in_elements_not_rows():
    assert chunk_rows(50_000) * 50_000 <= 1 << 23 and chunk_rows(50_000) >= 16
    assert chunk_rows(100) >= 700  # a small vocabulary: one chunk for a whole batch


def test_without_gradients_the_loss_alone():
    h, w, b, y = _inputs()
    with torch.no_grad():
        got = output_loss(h, w, b, y, rows=7)
    assert got.item() == pytest.approx(F.cross_entropy(F.linear(h, w, b), y).item(), rel=1e-6)
    assert not got.requires_grad


@pytest.mark.parametrize("arch,tied", [("lstm", False), ("gru", True), ("ffnn", False)])
def test_a_models_training_step_is_the_same_either_way(arch, tied, monkeypatch):
    """need_logits=False (the trainer's call), with logits of more than one chunk, gives the loss and every
    parameter's gradient of the whole path, tied weights included (W is the embedding, its gradient from both
    ends)."""
    monkeypatch.setattr(chunked_loss, "CHUNK_ELEMENTS", 200)  # 27 targets × 40 words > 200: chunks of 16 rows
    torch.manual_seed(1)
    cfg = ModelConfig(arch=arch, emb=12, hidden=12, layers=1, vocab_size=40, tied=tied, dropout=0.0)
    model = build_model(cfg)
    x, y = torch.randint(0, 40, (9, 3)), torch.randint(0, 40, (9, 3))
    grads = []
    for need_logits in (True, False):
        model.zero_grad()
        logits, loss, _ = model(x, None, y, need_logits=need_logits)
        loss.backward()
        assert (logits is None) == (not need_logits)
        grads.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (whole_loss, whole), (chunks_loss, chunked) = grads
    assert chunks_loss == pytest.approx(whole_loss, rel=1e-6)
    for name in whole:
        assert torch.allclose(whole[name], chunked[name], atol=1e-6, rtol=1e-5), name


def test_logits_of_one_chunk_or_less_take_the_plain_path_bit_for_bit():
    """Below a chunk the trainer's loss is F.cross_entropy of the whole logits, as in a plain PyTorch loop."""
    torch.manual_seed(2)
    model = build_model(ModelConfig(arch="lstm", emb=8, hidden=8, layers=1, vocab_size=30, dropout=0.0))
    x, y = torch.randint(0, 30, (6, 2)), torch.randint(0, 30, (6, 2))
    logits, loss, _ = model(x, None, y, need_logits=False)
    out, _ = model.features(x)
    assert logits is None
    assert torch.equal(loss, F.cross_entropy(model.decoder(out).view(-1, 30), y.reshape(-1)))


@pytest.mark.skipif(not bf16_native(torch.device("cpu")), reason="this CPU has no native bfloat16")
def test_under_bf16_autocast_close_to_the_whole_logits_under_autocast():
    h, w, b, y = _inputs(n=64, hidden=32, vocab=500)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        whole = F.cross_entropy(F.linear(h, w, b), y)
        chunked = output_loss(h, w, b, y, rows=16)
    g_whole = torch.autograd.grad(whole, (h, w, b))
    g_chunked = torch.autograd.grad(chunked, (h, w, b))
    assert chunked.dtype == torch.float32
    assert chunked.item() == pytest.approx(whole.item(), rel=2e-3)
    for e, g in zip(g_whole, g_chunked):
        assert g.dtype == e.dtype == torch.float32
        assert (e - g).norm() <= 0.02 * e.norm()
