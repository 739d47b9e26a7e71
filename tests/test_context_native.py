"""The context-use measure's C++ (lmcore/nn/native/context_use.cpp through lmcore.nn.context_windows) against PyTorch.

lstm_windows, gru_windows: PyTorch's LSTM and GRU over overlapping windows from a zero state, the first layer's input
products once per token; nll_sum / output_nll_sums: −log softmax summed from bfloat16 or float32 logits. Both are held to float32
PyTorch on the same inputs, and context_perplexity with bf16 to its float32 self.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmcore.inspect.memory import context_perplexity
from lmcore.nn import native
from lmcore.nn.architectures import ModelConfig
from lmcore.inspect import memory
from lmcore.nn.context_windows import gru_windows, lstm_windows, output_nll_sums
from lmcore.nn.model import RNNLM, build_model

from .test_softmax_loss import OpsSeen

# .ci/run installs a compiler and sets LMCORE_REQUIRE_NATIVE: there a failed build fails these tests, not skips them
pytestmark = pytest.mark.skipif(native.context_use() is None and not os.environ.get("LMCORE_REQUIRE_NATIVE"),
                                reason="the C++ could not be built here (no compiler)")


def lively_lstm(layers: int, seed: int = 0, **cfg) -> RNNLM:
    """An LSTM whose state moves (embeddings and weights uniform in ±1 and ±0.5): the init's small ones would hide
    a wrong recurrence."""
    torch.manual_seed(seed)
    model = RNNLM(ModelConfig(arch="lstm", emb=24, hidden=32, layers=layers, vocab_size=50, **cfg)).eval()
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.uniform_(-0.5, 0.5)
        model.encoder.weight.uniform_(-1, 1)
    return model


def windows_by_pytorch(model: RNNLM, tokens: torch.Tensor, span: int) -> torch.Tensor:
    """The top layer's h (span, windows, H), float32, each window tokens[j : j + span] from a zero state."""
    with torch.no_grad():
        return model.features(tokens.unfold(0, span, 1).t().contiguous())[0]


@pytest.mark.parametrize("layers,bias,backend", [(1, True, "fused"), (2, True, "fused"), (3, False, "fused"),
                                                  (2, True, "cells")])
def test_lstm_windows_is_pytorchs_lstm_over_every_window(layers, bias, backend):
    model = lively_lstm(layers, bias=bias, backend=backend)
    tokens = torch.as_tensor(np.random.default_rng(layers).integers(0, 50, 40 + 17 - 1))  # 40 windows of 17
    steps = [0, 1, 4, 9, 16]
    got = lstm_windows(model, tokens, 17, steps)
    want = windows_by_pytorch(model, tokens, 17)[steps]
    assert got.shape == (len(steps), 40, 32) and got.dtype == torch.float32
    assert want.abs().mean() > 0.05  # a state that moves
    # bfloat16 products: each h within a few hundredths, and on average within a few percent of its size
    assert (got - want).abs().max() < 0.03 and (got - want).abs().mean() < 0.03 * want.abs().mean()


@pytest.mark.parametrize("layers,bias,backend", [(1, True, "fused"), (2, True, "fused"), (3, False, "fused"),
                                                  (2, True, "cells")])
def test_lstm_windows_in_float32_is_pytorchs_lstm_to_rounding(layers, bias, backend):
    """The float32 form (CPUs without bf16 arithmetic, or bf16 off): the same windows to float32 rounding."""
    model = lively_lstm(layers, seed=layers, bias=bias, backend=backend)
    tokens = torch.as_tensor(np.random.default_rng(layers + 10).integers(0, 50, 40 + 17 - 1))
    steps = [0, 3, 16]
    got = lstm_windows(model, tokens, 17, steps, torch.float32)
    want = windows_by_pytorch(model, tokens, 17)[steps]
    assert want.abs().mean() > 0.05
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hidden,windows,span", [(13, 1, 1), (13, 7, 9), (20, 1, 30)])
def test_lstm_windows_at_odd_sizes(hidden, windows, span):
    """Sizes off the 16 lanes of the vectorised loop, one window, one step."""
    torch.manual_seed(hidden)
    model = RNNLM(ModelConfig(arch="lstm", emb=11, hidden=hidden, layers=2, vocab_size=30)).eval()
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.uniform_(-0.5, 0.5)
        model.encoder.weight.uniform_(-1, 1)
    tokens = torch.as_tensor(np.random.default_rng(span).integers(0, 30, windows + span - 1))
    steps = sorted({0, span // 2, span - 1})
    want = windows_by_pytorch(model, tokens, span)[steps]
    got = lstm_windows(model, tokens, span, steps)
    assert got.shape == want.shape and (got - want).abs().max() < 0.03
    torch.testing.assert_close(lstm_windows(model, tokens, span, steps, torch.float32), want, rtol=1e-5, atol=1e-5)


def test_lstm_windows_refuses_steps_it_would_not_fill():
    model = lively_lstm(1)
    tokens = torch.arange(20) % 50
    for steps in ([4, 4], [4, 1], [-1], [10]):  # each row of the result is written at its step, once, in order
        with pytest.raises(RuntimeError, match="strictly ascending"):
            lstm_windows(model, tokens, 10, steps)


def test_lstm_windows_applies_only_to_pytorchs_lstm():
    tokens = torch.arange(20) % 9
    for cfg in (dict(arch="gru"), dict(arch="elman"), dict(arch="lstm", variant="peephole")):
        model = RNNLM(ModelConfig(emb=8, hidden=8, layers=1, vocab_size=9, **cfg)).eval()
        assert lstm_windows(model, tokens, 5, [4]) is None, cfg
    ffnn = build_model(ModelConfig(arch="ffnn", emb=8, hidden=8, layers=1, vocab_size=9, window=3)).eval()
    assert lstm_windows(ffnn, tokens, 5, [4]) is None


def lively_gru(layers: int, seed: int = 0, hidden: int = 32, emb: int = 24, vocab: int = 50, **cfg) -> RNNLM:
    torch.manual_seed(seed)
    model = RNNLM(ModelConfig(arch="gru", emb=emb, hidden=hidden, layers=layers, vocab_size=vocab, **cfg)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "encoder.weight" and not name.startswith("decoder"):
                p.uniform_(-0.5, 0.5)
        model.encoder.weight.uniform_(-1, 1)
    return model


@pytest.mark.parametrize("layers,bias,backend", [(1, True, "fused"), (2, True, "fused"), (3, False, "fused"),
                                                  (2, True, "cells")])
def test_gru_windows_is_pytorchs_gru_over_every_window(layers, bias, backend):
    model = lively_gru(layers, seed=layers, bias=bias, backend=backend)
    tokens = torch.as_tensor(np.random.default_rng(layers).integers(0, 50, 40 + 17 - 1))  # 40 windows of 17
    steps = [0, 1, 4, 9, 16]
    want = windows_by_pytorch(model, tokens, 17)[steps]
    assert want.abs().mean() > 0.05  # a state that moves
    torch.testing.assert_close(gru_windows(model, tokens, 17, steps, torch.float32), want, rtol=1e-5, atol=1e-5)
    got = gru_windows(model, tokens, 17, steps)  # bfloat16 products
    assert got.shape == (len(steps), 40, 32) and got.dtype == torch.float32
    assert (got - want).abs().max() < 0.03 and (got - want).abs().mean() < 0.03 * want.abs().mean()


@pytest.mark.parametrize("hidden,windows,span", [(13, 1, 1), (13, 7, 9), (20, 1, 30)])
def test_gru_windows_at_odd_sizes(hidden, windows, span):
    model = lively_gru(2, seed=hidden, hidden=hidden, emb=11, vocab=30)
    tokens = torch.as_tensor(np.random.default_rng(span).integers(0, 30, windows + span - 1))
    steps = sorted({0, span // 2, span - 1})
    want = windows_by_pytorch(model, tokens, span)[steps]
    torch.testing.assert_close(gru_windows(model, tokens, span, steps, torch.float32), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="strictly ascending"):
        gru_windows(model, tokens, span, [span])


def test_gru_windows_applies_only_to_pytorchs_gru():
    tokens = torch.arange(20) % 9
    for cfg in (dict(arch="gru", gru_convention="cho"), dict(arch="lstm"), dict(arch="elman")):
        model = RNNLM(ModelConfig(emb=8, hidden=8, layers=1, vocab_size=9, **cfg)).eval()
        assert gru_windows(model, tokens, 5, [4]) is None, cfg


def test_a_grus_context_use_through_the_cpp_is_pytorchs(monkeypatch):
    """The whole measure in float32, the windows through gru_windows against PyTorch's GRU over every window."""
    model = lively_gru(2, seed=5, hidden=16, emb=12, vocab=40)
    ids = np.random.default_rng(5).integers(0, 40, 400)
    lengths = (1, 3, 10, 30)
    with OpsSeen() as seen:
        ours = context_perplexity(model, ids, lengths=lengths, max_targets=300, batch=64)
    assert seen.names["lmcore_context_use::gru_windows"] == 6  # 329 starts (targets 30 … 329), 64 windows at a time
    monkeypatch.setattr(memory, "stack_windows", lambda *args: None)  # PyTorch's stack over the windows
    theirs = context_perplexity(model, ids, lengths=lengths, max_targets=300, batch=64)
    assert list(ours["context"]) == list(theirs["context"])
    np.testing.assert_allclose(ours["ppl"], theirs["ppl"], rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [7, 16, 1001])  # below, at and off a multiple of the 16 lanes
def test_nll_sum_is_cross_entropy(dtype, vocab):
    g = torch.Generator().manual_seed(vocab)
    logits = (torch.randn(37, vocab, generator=g) * 6).to(dtype)
    bias = torch.randn(vocab, generator=g)
    y = torch.randint(0, vocab, (37,), generator=g)
    ops = native.context_use()
    assert ops.nll_sum(logits, y, None) == pytest.approx(
        F.cross_entropy(logits.float(), y, reduction="sum").item(), rel=1e-5)
    assert ops.nll_sum(logits, y, bias) == pytest.approx(
        F.cross_entropy(logits.float() + bias, y, reduction="sum").item(), rel=1e-5)
    with pytest.raises(RuntimeError, match="out of range"):
        ops.nll_sum(logits, torch.full((37,), vocab), None)
    with pytest.raises(RuntimeError, match="integer"):  # 1.5 would have been read as word 1
        ops.nll_sum(logits, y.float() + 0.5, None)


def test_output_nll_sums_groups_rows_as_the_output_layer_would():
    model = lively_lstm(1, seed=4)
    with torch.no_grad():
        model.decoder.bias.normal_()
    h = torch.randn(1113, 32)
    groups = [torch.randint(0, 50, (n,)) for n in (12, 1, 1100)]  # the last in pieces of 512 rows
    got = output_nll_sums(model.decoder, h, groups)
    with torch.no_grad():
        z = model.decoder(h).split([12, 1, 1100])
    want = [F.cross_entropy(zz, y, reduction="sum").item() for zz, y in zip(z, groups)]
    assert got == pytest.approx(want, rel=2e-3)  # the product's bfloat16 against float32
    assert output_nll_sums(model.decoder, h, groups, torch.float32) == pytest.approx(want, rel=1e-6)
    adaptive = RNNLM(ModelConfig(arch="lstm", emb=8, hidden=8, layers=1, vocab_size=50, output="adaptive",
                                 tied=False)).eval()
    assert output_nll_sums(adaptive.decoder, torch.randn(3, 8), [torch.zeros(3, dtype=torch.long)]) is None


def test_bf16_context_use_through_the_cpp_is_float32s_within_a_tenth_of_a_percent(monkeypatch):
    """The page's default where bf16 is native: both halves in C++; with the C++ off (LMCORE_NATIVE=0's switch)
    the same call takes PyTorch's bf16 path, and both agree with float32."""
    from lmcore.training.device import bf16_native
    if not bf16_native(torch.device("cpu")):
        pytest.skip("this CPU has no native bfloat16: context use runs float32 there, and never takes this path")
    model = lively_lstm(2, seed=7)
    ids = np.random.default_rng(2).integers(0, 50, 400)
    lengths = (1, 2, 5, 20, 60)
    exact = context_perplexity(model, ids, lengths=lengths, max_targets=300, batch=64)
    fast = context_perplexity(model, ids, lengths=lengths, max_targets=300, batch=64, bf16=True)
    monkeypatch.setattr(native, "enabled", lambda: False)
    pytorch_bf16 = context_perplexity(model, ids, lengths=lengths, max_targets=300, batch=64, bf16=True)
    assert not np.array_equal(fast["ppl"].to_numpy(), pytorch_bf16["ppl"].to_numpy())  # two different paths
    assert np.allclose(fast["ppl"], exact["ppl"], rtol=1e-3)
    assert np.allclose(pytorch_bf16["ppl"], exact["ppl"], rtol=5e-3)
    assert all(math.isfinite(p) for p in fast["ppl"])
