"""Gradient decay through time, measured with one backward pass, on hand-set weights with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmcore.inspect.gradients import fitted_log_slope, jacobian_decay, loss_gradient_decay, target_positions
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import RNNLM

IDS = np.random.default_rng(0).integers(0, 40, 300)


def tanh_rnn_with_spectral_norm(norm: float, hidden: int = 32) -> RNNLM:
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch="elman", activation="tanh", emb=16, hidden=hidden, layers=1, vocab_size=40,
                              dropout=0.0))
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(hidden, hidden))
        model.rnn.weight_hh_l0.copy_(norm * q)  # every singular value of U equals `norm`
        model.rnn.weight_ih_l0.mul_(0.01)       # tiny inputs keep tanh in its linear range: f' ≈ 1
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
    return model


def test_tanh_rnn_decays_geometrically_at_the_bound():
    model = tanh_rnn_with_spectral_norm(0.5)
    bound = np.log(0.5)  # ‖∂h_t/∂h_{t-k}‖ ≤ ‖U‖^k · max f'^k = 0.5^k
    for curve in (loss_gradient_decay(model, IDS, K=30), jacobian_decay(model, IDS, K=30)):
        slope = fitted_log_slope(curve, 1, 20)
        assert slope == pytest.approx(bound, rel=0.10)
        assert np.all(np.diff(curve.mean[:20]) < 0)


def test_lstm_with_open_forget_and_closed_input_gate_does_not_vanish():
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch="lstm", emb=16, hidden=16, layers=1, vocab_size=40, dropout=0.0))
    H = 16
    with torch.no_grad():
        model.rnn.weight_ih_l0.mul_(0.01)
        model.rnn.weight_hh_l0.mul_(0.01)
        b = model.rnn.bias_ih_l0
        b.zero_()
        model.rnn.bias_hh_l0.zero_()
        b[0:H] = -30.0       # input gate i closed
        b[H:2 * H] = 30.0    # forget gate f open: c_t = c_{t-1}, the constant error carousel
        b[3 * H:] = 30.0     # output gate o open
    curve = jacobian_decay(model, IDS, K=50)
    assert curve.mean[50] > 0.5 * curve.mean[1]  # no decay over 50 steps
    assert fitted_log_slope(curve, 1, 50) == pytest.approx(0.0, abs=0.01)
    tanh = jacobian_decay(tanh_rnn_with_spectral_norm(0.9, hidden=16), IDS, K=50)
    assert tanh.mean[50] < 1e-2 * tanh.mean[1]  # the plain RNN forgets over the same span


@pytest.mark.parametrize("arch", ["elman", "lstm", "gru"])
def test_one_pass_equals_autograd_per_position_and_lag(arch):
    torch.manual_seed(1)
    model = RNNLM(ModelConfig(arch=arch, activation="tanh", emb=8, hidden=8, layers=2, vocab_size=40,
                              dropout=0.0)).eval()
    ids = IDS[:60]
    curve = loss_gradient_decay(model, ids, K=6, positions=3, warmup=4)
    # Brute force: one forward and one backward per (position, lag), a probe on that single state only.
    for b, t in enumerate(curve.positions):
        window = torch.as_tensor(ids[t - 10:t + 1]).view(-1, 1)
        for k in range(7):
            probe = torch.zeros(2 if arch == "lstm" else 1, 1, 8, requires_grad=True)

            def add_probe(step, state, k=k, probe=probe):
                if step != len(window) - 1 - k:
                    return state
                return (state[0] + probe[0], state[1] + probe[1]) if arch == "lstm" else state + probe[0]

            out, _, _ = model.run_cells(model.encoder(window), model.init_hidden(1), state_hooks={1: add_probe})
            loss = F.cross_entropy(model.decoder(out[-1]), torch.as_tensor([ids[t + 1]]))
            (grad,) = torch.autograd.grad(loss, probe)
            assert curve.per_position[b, k] == pytest.approx(grad.norm().item(), rel=1e-4, abs=1e-9)


def test_positions_need_enough_text():
    assert target_positions(200, K=50, warmup=20, count=32)[0] == 70
    with pytest.raises(ValueError, match="needs at least"):
        target_positions(50, K=50, warmup=20, count=8)


def test_input_saliency_matches_autograd_per_token_and_ignores_the_future():
    from lmcore.inspect.gradients import input_saliency
    torch.manual_seed(2)
    model = RNNLM(ModelConfig(arch="gru", emb=8, hidden=8, layers=1, vocab_size=40, dropout=0.0)).eval()
    ids = IDS[:12]
    sal = input_saliency(model, ids, position=7)
    assert np.all(sal[7:] == 0) and np.all(sal[:7] > 0)
    emb = model.encoder(torch.as_tensor(ids[:7]).view(-1, 1)).detach().requires_grad_(True)
    logits, _, _ = model.decoder(model.rnn(emb)[0][-1, 0]), None, None
    (g,) = torch.autograd.grad(torch.log_softmax(logits, -1)[ids[7]], emb)
    np.testing.assert_allclose(sal[:7], g[:, 0].norm(dim=-1).numpy(), rtol=1e-5)
    with pytest.raises(ValueError):
        input_saliency(model, ids, position=0)


@pytest.mark.parametrize("arch", ["elman", "lstm", "gru"])
def test_output_sensitivity_matches_autograd_per_step(arch):
    from lmcore.inspect.sensitivity import output_sensitivity
    torch.manual_seed(4)
    model = RNNLM(ModelConfig(arch=arch, activation="tanh", emb=8, hidden=8, layers=2, vocab_size=40,
                              dropout=0.0)).eval()
    ids = IDS[:9]
    sens = output_sensitivity(model, ids, source=2)
    assert sens[:2].sum() == 0 and sens[-1] == 0
    for t in range(2, 8):
        emb = model.encoder(torch.as_tensor(ids[:t + 1]).view(-1, 1)).detach().requires_grad_(True)
        out, _, _ = model.run_cells(emb, model.init_hidden(1))
        p = torch.softmax(model.decoder(out[-1, 0]), -1)[ids[t + 1]]
        (g,) = torch.autograd.grad(p, emb)
        assert sens[t] == pytest.approx(g[2, 0].norm().item(), rel=1e-4, abs=1e-10)
