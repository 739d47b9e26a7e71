"""lmcore's CPU dropout (lmcore/nn/dropout.py): its law, its gradient, its seeding, and the fused stack run one
layer at a time so that the mask between layers is lmcore's too."""
from __future__ import annotations

import pytest
import torch

from lmcore.nn.architectures import ModelConfig
from lmcore.nn import dropout as dropout_module
from lmcore.nn.dropout import Dropout, dropout, keep_mask, mask_words
from lmcore.nn.model import RNNLM
from lmcore.training.device import bf16_native

from .conftest import require_compiler

N = 400_000  # elements: the kept fraction's standard error is then ≤ 0.0008


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.65, 0.9])
def test_the_mask_keeps_each_element_with_probability_1_minus_p_and_has_mean_one(p):
    torch.manual_seed(3)
    mask = keep_mask(torch.Size([N]), p, torch.float32)
    values = mask.unique()
    assert values.numel() == 2 and values[0] == 0.0
    kept = (mask > 0).double().mean().item()
    assert abs(kept - (1 - p)) < 4 * ((p * (1 - p)) / N) ** 0.5
    assert values[1].item() * round((1 - p) * 65536) / 65536 == pytest.approx(1.0, abs=1e-6)  # E[mask] = 1


@pytest.mark.parametrize("p", [1 / 65536, 0.2, 0.5, 65535 / 65536])
def test_an_element_is_kept_exactly_when_its_16_bit_uniform_reaches_p_rounded_to_1_over_65536(p):
    """The rule itself, against the generator's own words: u = the word's 16-bit lane, read unsigned, in
    {0, …, 65,535}, kept iff u ≥ round(p · 65,536), so that P(keep) = 1 − round(p · 65,536) / 65,536 exactly."""
    n = (1 << 22) + 3  # not a multiple of 4: the last word is cut; ~64 elements sit exactly on each threshold
    torch.manual_seed(8)
    mask = keep_mask(torch.Size([n]), p, torch.float32)
    torch.manual_seed(8)
    seed = int(torch.randint(-(1 << 63), (1 << 63) - 1, (), dtype=torch.int64))  # keep_mask's one draw
    u = mask_words(seed, (n + 3) // 4).view(torch.int16)[:n].to(torch.int32) & 0xFFFF
    threshold = round(p * 65536)
    assert (u == threshold).any() and (u == threshold - 1).any()  # the boundary is tested, both sides
    assert torch.equal(mask > 0, u >= threshold)


def _splitmix64(seed: int, count: int) -> list[int]:
    """SplitMix64 in Python's integers, written from its definition: the reference for mask_words."""
    words, every = [], (1 << 64) - 1
    for i in range(1, count + 1):
        z = (seed + i * 0x9E3779B97F4A7C15) & every
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & every
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & every
        words.append(z ^ (z >> 31))
    return words


@pytest.mark.parametrize("seed", [0, 12345, -1, -(1 << 63), (1 << 63) - 2])
def test_the_words_are_splitmix64_of_the_seed_and_the_counter(seed):
    got = [w % (1 << 64) for w in mask_words(seed, 300).tolist()]  # int64 read as the unsigned word
    assert got == _splitmix64(seed % (1 << 64), 300)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 4 * 4096 + 3, 35 * 20 * 200])
def test_the_c_mask_is_the_tensor_one(monkeypatch, dtype, n):
    """With lmcore's C++ built, the mask comes from it; without, from mask_words: the same masks everywhere."""
    require_compiler("the tensor version is the only one here")
    assert dropout_module._native_masks() is not None, "the C++ did not build"
    for p in (0.2, 0.5, 1 / 65536):
        torch.manual_seed(n)
        from_c = keep_mask(torch.Size([n]), p, dtype)
        with monkeypatch.context() as m:
            m.setattr(dropout_module, "_native_masks", lambda: None)
            torch.manual_seed(n)
            from_tensors = keep_mask(torch.Size([n]), p, dtype)
        assert from_c.dtype == from_tensors.dtype == dtype and torch.equal(from_c, from_tensors), p


def test_a_float64_mask_keeps_its_scale_to_the_last_bit():
    mask = keep_mask(torch.Size([1000]), 0.1, torch.float64)
    assert mask.dtype == torch.float64 and mask.max().item() == 65536 / (65536 - round(0.1 * 65536))


def test_neighbouring_elements_are_independent():
    """Four elements share one 64-bit draw: their keep decisions must still be uncorrelated, and so must an
    element and the one 4 places on (the next draw)."""
    torch.manual_seed(4)
    kept = (keep_mask(torch.Size([N]), 0.5, torch.float32) > 0).double().view(-1, 8)
    corr = torch.corrcoef(kept.T)
    off_diagonal = corr[~torch.eye(8, dtype=torch.bool)]
    assert off_diagonal.abs().max().item() < 0.02  # 4 standard errors at 50,000 rows


def test_same_seed_same_mask_and_the_generator_moves_on():
    torch.manual_seed(5)
    a, b = keep_mask(torch.Size([64, 9]), 0.3, torch.float32), keep_mask(torch.Size([64, 9]), 0.3, torch.float32)
    torch.manual_seed(5)
    assert torch.equal(keep_mask(torch.Size([64, 9]), 0.3, torch.float32), a)
    assert not torch.equal(a, b)


def test_the_gradient_is_the_mask_and_eval_or_p_zero_is_the_identity():
    x = torch.randn(5, 7, 11, requires_grad=True)
    torch.manual_seed(6)
    y = dropout(x, 0.4, training=True)
    y.backward(torch.ones_like(y))
    torch.manual_seed(6)
    mask = keep_mask(x.shape, 0.4, torch.float32)
    assert torch.equal(y.detach(), x.detach() * mask) and torch.equal(x.grad, mask)
    assert dropout(x, 0.4, training=False) is x and dropout(x, 0.0, training=True) is x
    module = Dropout(0.4).eval()
    assert module(x) is x and "p=0.4" in repr(module)


def test_a_bf16_input_stays_bf16():
    x = torch.randn(6, 10).to(torch.bfloat16)
    assert dropout(x, 0.25, training=True).dtype == torch.bfloat16


def _states(state) -> tuple:
    """A model's recurrent state as a tuple of tensors: (h, c) for the LSTM, (h,) otherwise."""
    return state if isinstance(state, tuple) else (state,)


FUSED = [("lstm", "tanh"), ("gru", "tanh"), ("elman", "tanh"), ("elman", "relu")]


@pytest.mark.parametrize("arch, activation", FUSED, ids=[f"{a}-{b}" for a, b in FUSED])
def test_the_fused_stack_by_layer_equals_the_cells_with_the_same_masks(arch, activation):
    """Training on the CPU, a multi-layer fused model runs PyTorch's op one layer at a time with lmcore's dropout
    between layers; the hand-written cells draw the same masks in the same order, so from one seed the two give
    the same output and final state (to float32 rounding), and the same gradients."""
    cfg = ModelConfig(arch=arch, activation=activation, emb=12, hidden=10, layers=3, dropout=0.4, vocab_size=17)
    torch.manual_seed(0)
    model = RNNLM(cfg).train()
    assert cfg.uses_fused
    emb = torch.randn(9, 4, 12)
    hidden = model.init_hidden(4)
    hidden = tuple(torch.randn_like(h) for h in hidden) if isinstance(hidden, tuple) else torch.randn_like(hidden)

    def run(by_layer: bool):
        model.zero_grad()
        torch.manual_seed(1)
        out, final = model.stack(emb, hidden) if by_layer else model.stack(emb, hidden, use_cells=True)
        finals = _states(final)
        (out.square().sum() + sum(f.sum() for f in finals)).backward()
        return out.detach(), [f.detach() for f in finals], [p.grad.clone() for p in model.rnn.parameters()]

    out, finals, grads = run(by_layer=True)
    cell_out, cell_finals, cell_grads = run(by_layer=False)
    with torch.no_grad():
        undropped, _ = model.eval().stack(emb, hidden)
    model.train()
    assert (out - undropped).abs().max() > 1e-3  # the masks were drawn and used
    torch.testing.assert_close(out, cell_out, atol=2e-5, rtol=0)
    for a, b in zip(finals, cell_finals, strict=True):
        assert a.shape == (3, 4, 10)
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0)
    for a, b in zip(grads, cell_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


WITH_IRNN = FUSED + [("irnn", "relu")]


@pytest.mark.parametrize("arch, activation", WITH_IRNN, ids=[f"{a}-{b}" for a, b in WITH_IRNN])
@pytest.mark.parametrize("bias", [True, False])
def test_by_layer_without_masks_is_the_fused_module_to_the_bit(arch, activation, bias):
    """With the masks between layers taken out, the by-layer stack computes exactly what the whole module does:
    the same op on the same weights, output and every final state (bias or not)."""
    cfg = ModelConfig(arch=arch, activation=activation, bias=bias, emb=12, hidden=10, layers=3, dropout=0.4,
                      vocab_size=17)
    torch.manual_seed(0)
    model = RNNLM(cfg).train()
    emb = torch.randn(9, 4, 12)
    hidden = model.init_hidden(4)
    hidden = tuple(torch.randn_like(h) for h in hidden) if isinstance(hidden, tuple) else torch.randn_like(hidden)
    model.rnn.dropout = 0.0  # no masks: by layer and whole must then agree exactly
    out, final = model.fused_by_layer(emb, hidden)
    whole, whole_final = model.rnn(emb, hidden)
    assert torch.equal(out, whole)
    finals, whole_finals = _states(final), _states(whole_final)
    assert type(final) is type(whole_final)
    assert all(torch.equal(a, b) for a, b in zip(finals, whole_finals, strict=True))


def test_a_single_layer_with_dropout_runs_the_fused_module_whole():
    """One layer has no mask between layers (nn.RNNBase.dropout is 0 there), so training keeps the whole module."""
    cfg = ModelConfig(arch="lstm", emb=8, hidden=8, layers=1, dropout=0.5, vocab_size=11)
    torch.manual_seed(0)
    model = RNNLM(cfg).train()
    calls = []
    model.fused_by_layer = lambda *a: calls.append(a)  # planted: must not be called
    out, _ = model.stack(torch.randn(5, 2, 8))
    assert calls == [] and out.shape == (5, 2, 8)


def test_in_eval_the_fused_module_runs_whole():
    cfg = ModelConfig(arch="lstm", emb=8, hidden=8, layers=2, dropout=0.3, vocab_size=11)
    torch.manual_seed(0)
    model = RNNLM(cfg).eval()
    emb = torch.randn(5, 2, 8)
    calls = []
    model.fused_by_layer = lambda *a: calls.append(a)  # planted: eval must not take the by-layer path
    out, _ = model.stack(emb)
    assert calls == [] and torch.equal(out, model.rnn(emb, model.init_hidden(2))[0])


@pytest.mark.parametrize("arch", ["lstm", "gru", "elman"])
def test_under_bf16_autocast_the_by_layer_stack_gives_the_fused_modules_dtypes(arch):
    """Where lmcore trains in bf16 (autocast, on a CPU with native bf16), the by-layer stack must hand on what
    the whole module would: the same dtypes of output and state, and a loss that trains."""
    if arch == "lstm" and not bf16_native(torch.device("cpu")):
        pytest.skip("oneDNN's LSTM has no bf16 kernel on a CPU without native bf16 (nn.LSTM refuses it too)")
    cfg = ModelConfig(arch=arch, emb=16, hidden=16, layers=2, dropout=0.3, vocab_size=20)
    torch.manual_seed(0)
    model = RNNLM(cfg).train()
    x, targets = torch.randint(0, 20, (7, 3)), torch.randint(0, 20, (7, 3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = model.encoder(x)
        out, state = model.stack(emb)
        whole, whole_state = model.rnn(emb, model.init_hidden(3))
        _, loss, _ = model(x, targets=targets)
    dtypes = lambda state: [s.dtype for s in _states(state)]
    assert out.dtype == whole.dtype and dtypes(state) == dtypes(whole_state)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.rnn.parameters())
