"""The hand-written BPTT of lmcore.lecture.numpy_rnn against PyTorch autograd and finite differences (float64)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lmcore.inspect.bptt_check import autograd_truncated, walkthrough
from lmcore.lecture.numpy_rnn import LectureRNN, backward, forward, sgd_train

NAMES = ("V", "U", "W", "b1", "b2")


def rel_err(a, b) -> float:
    """Norm-wise relative error ‖a - b‖ / max(‖a‖, ‖b‖)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300))


def numpy_grads(params, inputs, targets, s0, tau, **kw):
    _, caches = forward(params, inputs, targets, s0)
    g, record = backward(params, caches, tau, **kw)
    return {"V": g.dV, "U": g.dU, "W": g.dW, "b1": g.db1, "b2": g.db2}, record


def problem(vocab=7, hidden=5, T=9, seed=0, scale=0.5, biases=False):
    """A random network (biases random too, so they matter), a random chunk and a nonzero s0."""
    rng = np.random.default_rng(seed + 100)
    p = LectureRNN.init(vocab, hidden, seed=seed, scale=scale, biases=biases)
    if biases:
        p.b1, p.b2 = 0.3 * rng.standard_normal(hidden), 0.3 * rng.standard_normal(vocab)
    ids = rng.integers(0, vocab, T + 1).tolist()
    return p, ids[:-1], ids[1:], rng.uniform(0, 1, hidden)


def torch_params(p):
    return {n: torch.tensor(getattr(p, n), dtype=torch.float64, requires_grad=True)
            for n in NAMES if getattr(p, n) is not None}


def torch_step(tp, x, s_prev):
    """Equations (2) and (1), written again by hand in torch."""
    net = tp["V"] @ x + tp["U"] @ s_prev + (tp["b1"] if "b1" in tp else 0)
    return net, torch.sigmoid(net)


def torch_loss_t(tp, s_t, target):
    """Equations (4) and (3) and the cross-entropy of one output."""
    net_out = tp["W"] @ s_t + (tp["b2"] if "b2" in tp else 0)
    return -torch.log_softmax(net_out, dim=0)[target]


def onehots(inputs, vocab):
    return torch.eye(vocab, dtype=torch.float64)[inputs]


def autograd_full(p, inputs, targets, s0):
    """Untruncated BPTT over the chunk: autograd through the whole chunk, s0 a constant."""
    tp = torch_params(p)
    xs = onehots(inputs, p.V.shape[1])
    s, loss = torch.tensor(s0, dtype=torch.float64), 0
    for t in range(len(inputs)):
        _, s = torch_step(tp, xs[t], s)
        loss = loss + torch_loss_t(tp, s, targets[t])
    loss.backward()
    return loss.item(), {n: t.grad.numpy() for n, t in tp.items()}


@pytest.mark.parametrize("biases", [False, True])
def test_loss_is_the_summed_cross_entropy(biases):
    p, inputs, targets, s0 = problem(biases=biases)
    loss, caches = forward(p, inputs, targets, s0)
    ref, _ = autograd_full(p, inputs, targets, s0)
    assert loss == pytest.approx(ref, rel=1e-12)
    assert caches.T == len(inputs) and sorted(caches.s) == list(range(-1, len(inputs)))
    assert all(np.isclose(caches.y[t].sum(), 1.0) for t in range(caches.T))


@pytest.mark.parametrize("biases", [False, True])
@pytest.mark.parametrize("tau", [1, 2, 5, 9, 50])
def test_truncated_bptt_matches_autograd(tau, biases):
    p, inputs, targets, s0 = problem(T=9, biases=biases)
    ours, _ = numpy_grads(p, inputs, targets, s0, tau)
    ref, _ = autograd_truncated(p, inputs, targets, s0, tau)
    assert set(ref) == {n for n in NAMES if ours[n] is not None}
    for n in ref:
        assert rel_err(ours[n], ref[n]) <= 1e-6, n


@pytest.mark.parametrize("biases", [False, True])
def test_tau_at_least_T_is_full_bptt(biases):
    p, inputs, targets, s0 = problem(T=9, biases=biases)
    _, ref = autograd_full(p, inputs, targets, s0)
    for tau in (9, 10):
        ours, _ = numpy_grads(p, inputs, targets, s0, tau)
        for n in ref:
            assert rel_err(ours[n], ref[n]) <= 1e-6, (tau, n)
    shorter, _ = numpy_grads(p, inputs, targets, s0, 3)
    assert rel_err(shorter["U"], ref["U"]) > 1e-3          # truncation does change the gradient


@pytest.mark.parametrize("biases", [False, True])
def test_full_bptt_matches_central_differences(biases):
    p, inputs, targets, s0 = problem(vocab=4, hidden=3, T=5, seed=1, scale=0.8, biases=biases)
    ours, _ = numpy_grads(p, inputs, targets, s0, tau=5)
    eps = 1e-6
    for n in NAMES:
        theta = getattr(p, n)
        if theta is None:
            continue
        num = np.zeros_like(theta)
        for i in np.ndindex(theta.shape):
            old = theta[i]
            theta[i] = old + eps
            up = forward(p, inputs, targets, s0)[0]
            theta[i] = old - eps
            down = forward(p, inputs, targets, s0)[0]
            theta[i] = old
            num[i] = (up - down) / (2 * eps)
        assert rel_err(ours[n], num) <= 1e-6, n


def test_guo_typo_gives_a_wrong_gradient():
    """f'(s) = σ'(σ(net)) instead of f'(net): the lecture's correction matters."""
    p, inputs, targets, s0 = problem(T=9, scale=1.0)
    ref, _ = autograd_truncated(p, inputs, targets, s0, tau=4)
    right, _ = numpy_grads(p, inputs, targets, s0, 4)
    wrong, _ = numpy_grads(p, inputs, targets, s0, 4, guo_typo=True)
    assert rel_err(right["U"], ref["U"]) <= 1e-6
    assert rel_err(wrong["W"], ref["W"]) <= 1e-6          # the output layer does not use f'
    assert rel_err(wrong["U"], ref["U"]) > 0.05
    assert rel_err(wrong["V"], ref["V"]) > 0.05


def test_record_holds_the_true_deltas_and_they_shrink_for_small_weights():
    p, inputs, targets, s0 = problem(vocab=6, hidden=8, T=10, scale=0.3)
    t = 9
    _, record = numpy_grads(p, inputs, targets, s0, tau=10, inspect_t=t)
    assert record.t == t and len(record.deltas) == len(record.dU_norms) == 10
    # δ(t-k) is ∂ℓ_t/∂net(t-k): check each against autograd through the whole chunk
    tp = torch_params(p)
    xs = onehots(inputs, p.V.shape[1])
    s, nets = torch.tensor(s0, dtype=torch.float64), []
    for j in range(t + 1):
        net, s = torch_step(tp, xs[j], s)
        net.retain_grad()
        nets.append(net)
    torch_loss_t(tp, s, targets[t]).backward()
    for k, delta in enumerate(record.deltas):
        assert rel_err(delta, nets[t - k].grad.numpy()) <= 1e-6, k
    # each step back multiplies by Uᵀ and f' <= 1/4, so ‖δ(t-k-1)‖ <= ‖U‖₂/4 · ‖δ(t-k)‖ < ‖δ(t-k)‖
    norms = np.array(record.delta_norms)
    assert np.allclose(norms, [np.linalg.norm(d) for d in record.deltas])
    bound = np.linalg.norm(p.U, 2) / 4
    assert bound < 1
    assert np.all(norms[1:] <= bound * norms[:-1] * (1 + 1e-12))
    assert norms[-1] < 1e-3 * norms[0]
    assert record.dU_norms[-1] < record.dU_norms[0]


def test_record_stops_at_tau_and_at_chunk_start():
    p, inputs, targets, s0 = problem(T=9)
    assert len(numpy_grads(p, inputs, targets, s0, tau=3, inspect_t=8)[1].deltas) == 3
    assert len(numpy_grads(p, inputs, targets, s0, tau=5, inspect_t=2)[1].deltas) == 3
    with pytest.raises(ValueError):
        numpy_grads(p, inputs, targets, s0, tau=0)


@pytest.mark.parametrize("biases", [False, True])
def test_sgd_learns_a_repetitive_text(biases):
    text = "the cat sat on the mat. " * 12
    chars = sorted(set(text))
    ids = [chars.index(c) for c in text]
    params, history = sgd_train(ids, vocab=len(chars), hidden=16, tau=5, lr=0.3, epochs=30,
                                chunk=12, seed=0, biases=biases)
    per_epoch = len(history) // 30
    assert len(history) == 30 * per_epoch
    first, last = np.mean(history[:per_epoch]), np.mean(history[-per_epoch:])
    assert history[0] > 0.95 * np.log(len(chars))            # starts near uniform
    assert last < 0.2 * first                                # the first epoch's mean already fell below
    unigram = -sum(f * np.log(f) for f in np.bincount(ids) / len(ids))
    assert last < 0.5 * unigram                              # it uses the context, not just frequencies
    assert (params.b1 is not None) == biases


@pytest.mark.parametrize("tau", [1, 3, 10])
def test_walkthrough_agrees_with_autograd_and_its_deltas_shrink(tau):
    w = walkthrough("the roses in the vase by the door are red .".split(), hidden=8, tau=tau, scale=0.5)
    assert max(w.rel_errors.values()) <= 1e-6
    assert len(w.record.delta_norms) == min(tau, len(w.tokens) - 1)
    np.testing.assert_allclose(w.record.delta_norms, w.reference_delta_norms, rtol=1e-6)
    assert all(b < a for a, b in zip(w.record.delta_norms, w.record.delta_norms[1:]))
    guo = walkthrough("the roses in the vase by the door are red .".split(), hidden=8, tau=tau, scale=0.5,
                      guo_typo=True)
    assert guo.rel_errors["U"] > 1e-2  # f'(g) instead of f'(net): a wrong gradient


def test_the_unrolled_figures_values_are_legible_on_every_node():
    """White on the dark red nodes near t, dark on the pale ones: grey had sat on both ("0.51" lost on dark red)."""
    from lmcore.viz.bptt import unrolled_figure
    w = walkthrough("the roses in the vase by the door are red .".split(), hidden=8, tau=6, scale=0.5)
    nodes = next(t for t in unrolled_figure(w).data if t.marker.color is not None and t.marker.colorscale)
    for shade, ink in zip(nodes.marker.color, nodes.textfont.color):
        assert ink == ("white" if shade > 0.55 else "#222222"), (shade, ink)
    assert {"white", "#222222"} <= set(nodes.textfont.color)  # this walk has both dark and pale nodes
