"""Input sensitivity (against brute-force autograd, one backward pass), the Fig. 4.4 glyph layout,
gate saturation, the gate figures, and the Gates page through AppTest."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from lmcore.inspect.sensitivity import (
    input_sensitivity,
    mean_over_units,
    normalise,
    normalised_input_sensitivity,
    unit_sensitivity,
)
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import RNNLM
from lmcore.viz.gates import (
    CLOSED,
    OPEN,
    PARTLY,
    fig44_figure,
    fig44_window,
    gate_glyph,
    gate_histogram_figure,
    glyph_layout,
    saturation_figure,
    saturation_fractions,
    state_over_time_figure,
)

from .conftest import REPO

ARCHS = [("elman", "sigmoid"), ("elman", "tanh"), ("irnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]


def small_model(arch: str, activation: str = "tanh", layers: int = 2, seed: int = 0) -> RNNLM:
    torch.manual_seed(seed)
    model = RNNLM(ModelConfig(arch=arch, activation=activation, emb=5, hidden=7, layers=layers, dropout=0.3,
                              vocab_size=13))
    with torch.no_grad():  # weights big enough that the gradients are not all tiny
        for p in model.rnn.parameters():
            p.uniform_(-0.6, 0.6)
    return model


def brute_force(model: RNNLM, ids, source: int, layer: int, units) -> np.ndarray:
    """One autograd call per step t: ‖∂ mean(h_t[units]) / ∂x_source‖."""
    model.eval()
    x = torch.as_tensor(np.asarray(ids)).view(-1, 1)
    out = np.zeros(len(ids))
    pick = slice(None) if units is None else ([units] if isinstance(units, int) else list(units))
    for t in range(source, len(ids)):
        emb = model.encoder(x).detach().requires_grad_(True)  # (T, 1, E)
        _, _, per_layer = model.run_cells(emb, model.init_hidden(1))
        (grad,) = torch.autograd.grad(per_layer[layer]["h"][t, 0, pick].mean(), emb)
        out[t] = grad[source, 0].norm().item()
    return out


IDS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]


@pytest.mark.parametrize("arch, activation", ARCHS)
@pytest.mark.parametrize("source, layer, units", [(0, -1, None), (3, 0, 2), (4, 1, [0, 5, 6]), (10, -1, None)])
def test_sensitivity_equals_brute_force_per_step(arch, activation, source, layer, units):
    model = small_model(arch, activation)
    model.train()
    got = input_sensitivity(model, IDS, source, layer, units)
    assert model.training  # the mode is restored
    want = brute_force(model, IDS, source, layer, units)
    assert got.shape == (len(IDS),)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)
    assert np.all(got[:source] == 0) and got[source] > 0
    norm = normalised_input_sensitivity(model, IDS, source, layer, units)
    assert norm.max() == pytest.approx(1.0) and np.allclose(norm, got / got.max())


@pytest.mark.parametrize("arch, activation", ARCHS)
def test_unit_sensitivity_equals_input_sensitivity_per_unit(arch, activation):
    model = small_model(arch, activation)
    per_unit = unit_sensitivity(model, IDS, 2, 8, layer=1)
    want = [input_sensitivity(model, IDS, 2, 1, u)[8] for u in range(model.cfg.hidden)]
    np.testing.assert_allclose(per_unit, want, atol=1e-6)
    assert np.all(unit_sensitivity(model, IDS, 5, 3) == 0)


def test_one_backward_pass(monkeypatch):
    model = small_model("lstm")
    calls = []
    grad, backward = torch.autograd.grad, torch.Tensor.backward
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append("grad") or grad(*a, **k))
    monkeypatch.setattr(torch.Tensor, "backward", lambda *a, **k: calls.append("backward") or backward(*a, **k))
    input_sensitivity(model, IDS, 1)
    assert calls == ["grad"]


def test_bad_arguments_raise():
    model = small_model("gru")
    for kwargs in (dict(source=11), dict(source=-1), dict(source=0, layer=2), dict(source=0, units=7),
                   dict(source=0, units=[])):
        with pytest.raises(ValueError):
            input_sensitivity(model, IDS, **kwargs)
    assert np.all(normalise(np.zeros(3)) == 0)


def test_tanh_rnn_with_tiny_U_forgets_quickly():
    model = small_model("elman", "tanh", layers=1)
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(0.05)
    s = input_sensitivity(model, IDS, 2)
    assert s[2] > 0.01 and s[5] < 1e-3 * s[2]
    assert np.all(np.diff(s[2:]) < 0)


def hand_set_lstm(forget_bias: float) -> RNNLM:
    """A 1-unit LSTM with U = 0: token 0 opens the input gate (and writes tanh(1) into c), every other token
    closes it; the forget gate is forced by its bias; the output gate is forced open."""
    model = RNNLM(ModelConfig(arch="lstm", emb=2, hidden=1, layers=1, dropout=0.0, vocab_size=2))
    with torch.no_grad():
        model.encoder.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # token 0: x = (1, 0); token 1: (0, 1)
        w_ih, w_hh, b_ih, b_hh = model.layer_weights(0)  # rows: i, f, g, o
        w_hh.zero_(), b_hh.zero_()
        w_ih.copy_(torch.tensor([[20.0, -20.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]))
        b_ih.copy_(torch.tensor([0.0, forget_bias, 0.0, 20.0]))
    return model


def test_lstm_with_forget_gate_open_and_input_gate_closed_keeps_the_input():
    ids = [1, 1, 0] + [1] * 30
    kept = input_sensitivity(hand_set_lstm(forget_bias=30.0), ids, 2)
    assert kept[2] > 0.1 and kept[-1] > 0.99 * kept[2]
    forgotten = input_sensitivity(hand_set_lstm(forget_bias=-30.0), ids, 2)
    assert forgotten[2] > 0.1 and forgotten[3] < 1e-6 * forgotten[2]


# --- viz -------------------------------------------------------------------------------------------------
def test_gate_glyph_thresholds():
    assert [gate_glyph(v) for v in (0.95, 0.05, 0.5, 0.9, 0.1)] == [OPEN, CLOSED, PARTLY, PARTLY, PARTLY]
    assert [gate_glyph(v, 0.6, 0.94) for v in (0.95, 0.5, 0.9)] == [OPEN, CLOSED, PARTLY]
    with pytest.raises(ValueError):
        gate_glyph(0.5, 0.9, 0.1)


def test_glyph_layout_puts_each_lstm_gate_on_its_side():
    gates = {"i": np.array([0.95, 0.05, 0.5]), "f": np.array([0.05, 0.5, 0.95]), "o": np.array([0.5, 0.95, 0.05]),
             "g": np.zeros(3)}
    layout = glyph_layout(gates, "lstm", start=10)
    assert {g.gate for g in layout} == {"i", "f", "o"} and len(layout) == 9
    for g in layout:
        assert 10 <= g.t < 13 and g.value == gates[g.gate][g.t - 10]
        assert g.glyph == {0.95: OPEN, 0.05: CLOSED, 0.5: PARTLY}[g.value]
        if g.gate == "i":
            assert g.x == g.t and g.y < 0      # below
        elif g.gate == "f":
            assert g.x < g.t and g.y == 0      # left
        else:
            assert g.x == g.t and g.y > 0      # above
    strict = glyph_layout(gates, "lstm", closed_below=0.6, open_above=0.97)
    assert [g.glyph for g in strict if g.gate == "i"] == [PARTLY, CLOSED, CLOSED]


def test_glyph_layout_gru_and_elman():
    layout = glyph_layout({"z": np.array([0.99]), "r": np.array([0.01]), "n": np.array([0.3])}, "gru")
    by_gate = {g.gate: g for g in layout}
    assert set(by_gate) == {"z", "r"}
    assert by_gate["z"].x < 0 and by_gate["z"].y == 0 and by_gate["z"].glyph == OPEN
    assert by_gate["r"].x == 0 and by_gate["r"].y < 0 and by_gate["r"].glyph == CLOSED
    assert glyph_layout({}, "elman") == []


def test_saturation_fractions_on_hand_made_gates():
    values = np.array([[0.05, 0.5, 0.99],
                       [0.05, 0.5, 0.99],
                       [0.95, 0.5, 0.99],
                       [0.10, 0.9, 0.99]])  # (T=4, H=3); 0.1 and 0.9 themselves are not saturated
    left, right = saturation_fractions(values)
    np.testing.assert_allclose(left, [0.5, 0.0, 0.0])
    np.testing.assert_allclose(right, [0.25, 0.0, 1.0])
    left, right = saturation_fractions(values, closed_below=0.6, open_above=0.95)
    np.testing.assert_allclose(left, [0.75, 0.75, 0.0])
    np.testing.assert_allclose(right, [0.0, 0.0, 1.0])


def test_mean_over_units_and_window():
    values = np.arange(12.0).reshape(3, 4)
    assert np.allclose(mean_over_units(values, 1), [1, 5, 9])
    assert np.allclose(mean_over_units(values, [0, 2]), [1, 5, 9])
    assert np.allclose(mean_over_units(values), [1.5, 5.5, 9.5])
    assert fig44_window(100, 50, 40) == (48, 88)
    assert fig44_window(100, 95, 40) == (60, 100)
    assert fig44_window(13, 1, 40) == (0, 13)


def test_figures_from_a_trace_shaped_layer():
    rng = np.random.default_rng(0)
    layer = {name: rng.uniform(size=(6, 4)) for name in ("i", "f", "g", "o", "c", "h")}
    tokens = ["the", "<b>roses</b>", "are", "red", ".", "<eos>"]
    s = np.array([0, 1, 0.5, 0.25, 0.1, 0.0])
    glyphs = glyph_layout({g: layer[g][:, 0] for g in ("i", "f", "o")}, "lstm")
    fig = fig44_figure(tokens, s, glyphs, source=1, arch="lstm", title="LSTM")
    nodes = fig.data[0]
    assert np.allclose(nodes.marker.color, s)
    ticks = " ".join(fig.layout.xaxis.ticktext)  # each token above its step number
    assert "&lt;b&gt;roses&lt;/b&gt;<br>" in ticks and "<b>roses</b>" not in ticks
    texts = [t for t in fig.data if t.mode == "text"]
    assert len(texts) == 3 and all(set(t.text) <= {OPEN, CLOSED, PARTLY} for t in texts)
    assert len(saturation_figure(layer).data) == 6  # 3 gates × (bound line + units)
    assert len(gate_histogram_figure(layer).data) == 3
    assert len(state_over_time_figure(layer["c"], tokens).data) == 1


# --- the page ------------------------------------------------------------------------------------------------
@pytest.fixture
def page(lmcore_home) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("views/gates.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]


def test_gates_page_draws_three_fig44_charts_and_saturation(page):
    titles = chart_titles(page)
    fig44 = [t for t in titles if "∂h_t/∂x_1" in t]
    assert [t.split(",")[0] for t in fig44] == ["σ-RNN", "LSTM", "GRU"]
    assert sum("layer 1" in t for t in titles) == 6  # saturation, histograms, state: LSTM and GRU
    assert sum(": cell state c" in t for t in titles) == 1 and sum(": hidden state h" in t for t in titles) == 1
    assert len(titles) == 9
    spec = json.loads(page.get("plotly_chart")[1].proto.spec)  # the LSTM's Fig. 4.4
    glyphs = {g for trace in spec["data"] if trace.get("mode") == "text" for g in trace["text"]}
    assert glyphs and glyphs <= {OPEN, CLOSED, PARTLY}
    assert page.text_area[0].value.startswith("the roses in the vase")


def test_gates_page_other_unit_source_thresholds_and_validation_text(page):
    page.slider(key="src").set_value(4).run()
    page.selectbox(key="g_unit").set_value(5).run()
    page.slider(key="thr").set_value((0.3, 0.7)).run()
    assert not page.exception, [e.value for e in page.exception]
    titles = chart_titles(page)
    assert sum("unit 5: ‖∂h_t/∂x_4‖" in t for t in titles) == 3
    page.radio(key="text_source").set_value("from the validation split").run()
    assert not page.exception, [e.value for e in page.exception]
    assert len(page.get("plotly_chart")) == 9
