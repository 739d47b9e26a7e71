"""The trace: the cells' h equals the fused forward, and the gates rebuild the states exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lmcore.inspect.trace import gate_means, trace
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import RNNLM

ARCHS = [("lstm", "tanh"), ("gru", "tanh"), ("elman", "tanh"), ("elman", "sigmoid"), ("irnn", "relu")]


def model_for(arch, activation, layers=2):
    torch.manual_seed(3)
    return RNNLM(ModelConfig(arch=arch, activation=activation, emb=12, hidden=10, layers=layers,
                             vocab_size=30, dropout=0.3)).eval()


@pytest.mark.parametrize("arch, activation", ARCHS)
def test_traced_h_equals_the_forward_pass(arch, activation):
    model = model_for(arch, activation)
    ids = np.random.default_rng(0).integers(0, 30, 25)
    tr = trace(model, ids)
    with torch.no_grad():
        logits, _, _ = model(torch.as_tensor(ids).view(-1, 1))  # fused where PyTorch has the module
    emb = model.encoder(torch.as_tensor(ids).view(-1, 1))
    with torch.no_grad():
        out, _ = (model.rnn(emb) if model.cfg.uses_fused else model.run_cells(emb, model.init_hidden(1))[:2])
    np.testing.assert_allclose(tr.layers[-1]["h"], out[:, 0].numpy(), atol=1e-5)
    probs = torch.softmax(logits[:, 0], -1).numpy()
    np.testing.assert_allclose(tr.next_prob, probs[np.arange(24), ids[1:]], rtol=1e-4)
    np.testing.assert_allclose(tr.prob_mass, 1.0, atol=1e-5)  # the lecture's rule: the distribution sums to 1
    assert tr.top_probs.shape == (25, 10) and np.all(np.diff(tr.top_probs, axis=1) <= 0)
    assert np.allclose(tr.surprisal, -np.log2(tr.next_prob))


def test_lstm_gates_rebuild_cell_and_hidden_state():
    tr = trace(model_for("lstm", "tanh"), np.arange(20) % 30)
    for layer in tr.layers:
        i, f, g, o, c, h = (layer[k] for k in "ifgoch")
        c_prev = np.vstack([np.zeros((1, c.shape[1])), c[:-1]])
        np.testing.assert_allclose(c, f * c_prev + i * g, atol=1e-6)     # c_t = f ⊙ c_{t-1} + i ⊙ g
        np.testing.assert_allclose(h, o * np.tanh(c), atol=1e-6)          # h_t = o ⊙ tanh(c_t)
        assert ((i > 0) & (i < 1)).all() and ((g > -1) & (g < 1)).all()


def test_gru_gates_rebuild_hidden_state():
    tr = trace(model_for("gru", "tanh"), np.arange(20) % 30)
    for layer in tr.layers:
        r, z, n, h = (layer[k] for k in "rznh")
        h_prev = np.vstack([np.zeros((1, h.shape[1])), h[:-1]])
        np.testing.assert_allclose(h, (1 - z) * n + z * h_prev, atol=1e-6)  # PyTorch's convention
        assert ((r > 0) & (r < 1)).all()


def test_elman_trace_has_no_gates_and_gate_means_are_per_step():
    tr = trace(model_for("elman", "sigmoid", layers=1), [1, 2, 3])
    assert tr.names() == ["h"] and gate_means(tr) == [{}]
    lstm = trace(model_for("lstm", "tanh", layers=1), [1, 2, 3])
    means = gate_means(lstm)[0]
    assert set(means) == {"i", "f", "g", "o", "c"} and len(means["f"]) == 3
    assert means["f"][1] == pytest.approx(float(lstm.layers[0]["f"][1].mean()), abs=1e-6)


# The trace takes the layers' C++ loops where they apply (every LSTM variant with all four blocks, PyTorch's GRU):
# the same quantities as the Python cells to float32's rounding, without one Python step
NATIVE_TRACED = [("lstm", "vanilla"), ("lstm", "peephole"), ("lstm", "fgr"), ("lstm", "niaf"), ("lstm", "noaf"),
                 ("gru", "vanilla")]


@pytest.mark.parametrize("arch, variant", NATIVE_TRACED)
def test_trace_through_the_cpp_loop_equals_the_python_cells(arch, variant, monkeypatch):
    from lmcore.nn import native
    from lmcore.nn.cells import GRUCell, LSTMCell

    from .conftest import require_compiler
    require_compiler("the trace keeps the Python loop")
    torch.manual_seed(5)
    model = RNNLM(ModelConfig(arch=arch, variant=variant, emb=12, hidden=37, layers=2, vocab_size=30)).eval()
    ids = np.random.default_rng(1).integers(0, 30, 41)
    assert (native.lstm_steps() if arch == "lstm" else native.gru_steps()) is not None

    def no_python_step(*args, **kwargs):
        raise AssertionError("a Python step ran")
    with monkeypatch.context() as m:
        m.setattr(LSTMCell, "step", no_python_step)
        m.setattr(GRUCell, "step", no_python_step)
        fast = trace(model, ids)
    monkeypatch.setenv("LMCORE_NATIVE", "0")  # the reference: the Python cells
    slow = trace(model, ids)
    for got, want in zip(fast.layers, slow.layers, strict=True):
        assert list(got) == list(want)  # the same names in the same order (i, f, g, o, c, h; r, z, n, h)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], atol=2e-6, err_msg=name)
    np.testing.assert_allclose(fast.next_prob, slow.next_prob, rtol=1e-5)
