"""LSTM variants (Greff et al. 2016) and GRU conventions: each one's equations on a hand-computed step,
the PyTorch-equivalent ones against nn.LSTM / nn.GRU, training, checkpoints, parameter counts, budgets,
and the gate views (trace, Fig. 4.4, saturation, gradients) for every variant."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from lmcore.cli.main import main
from lmcore.corpus.tokenize import EOS, UNK
from lmcore.corpus.vocab import Vocab
from lmcore.inspect.gradients import jacobian_decay, loss_gradient_decay
from lmcore.inspect.sensitivity import input_sensitivity
from lmcore.inspect.trace import gate_notes, trace
from lmcore.lecture.notation import equations, parameter_map
from lmcore.nn.architectures import GRU_CONVENTIONS, LSTM_VARIANTS, ModelConfig, count_params, hidden_for_budget
from lmcore.nn.model import RNNLM
from lmcore.runs.jobs import StoreHooks
from lmcore.nn.architectures import model_name
from lmcore.runs.reports import lecture_table
from lmcore.runs.service import record_result
from lmcore.runs.store import RunStore
from lmcore.training.checkpoints import load_checkpoint, save_checkpoint
from lmcore.training.config import RunConfig
from lmcore.training.trainer import train
from lmcore.viz.gates import OPEN, fig44_figure, gate_histogram_figure, glyph_layout, saturation_figure

from .conftest import REPO, stored_run

VARIANTS = list(LSTM_VARIANTS)
VOCAB = 11


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# --- the equations of each variant, by hand ---------------------------------------------------------------------
# One step of a 2-unit LSTM on a 2-d input from a non-zero state, every weight set by hand.
X = np.array([0.5, -1.0])                          # x_t (the embedding of token 1)
H0, C0 = np.array([0.3, -0.2]), np.array([0.8, -1.5])  # h_{t-1}, c_{t-1}
A0 = np.array([0.2, 0.7, 0.4, 0.9, 0.1, 0.6])      # a_{t-1} = [i; f; o]_{t-1} (FGR)
HAND_V = {"i": [[0.2, -0.1], [0.4, 0.3]], "f": [[-0.3, 0.5], [0.1, 0.2]],
          "g": [[0.6, 0.2], [-0.5, 0.4]], "o": [[0.1, 0.1], [-0.2, 0.3]]}
HAND_U = {"i": [[0.1, 0.2], [-0.3, 0.1]], "f": [[0.2, -0.1], [0.0, 0.3]],
          "g": [[-0.4, 0.3], [0.2, 0.1]], "o": [[0.3, 0.0], [0.1, -0.2]]}
HAND_B_IH = {"i": [0.1, -0.1], "f": [0.5, 0.2], "g": [0.0, 0.1], "o": [-0.2, 0.3]}
HAND_B_HH = {"i": [0.05, 0.0], "f": [0.1, -0.05], "g": [0.02, 0.0], "o": [0.0, 0.1]}
HAND_P = {"i": [0.3, -0.2], "f": [-0.1, 0.4], "o": [0.2, 0.5]}   # peepholes
HAND_R = 0.1 * (np.arange(36).reshape(6, 6) % 7 - 3)             # FGR: rows i, f, o at t; columns at t−1
# Rows of V, U, b each variant keeps, in PyTorch's order (a removed or coupled gate has none).
BLOCKS = {"nig": "fgo", "nfg": "igo", "nog": "ifg", "cifg": "igo"}
PEEPHOLES = {"vanilla": "", "np": "", "nig": "fo", "nfg": "io", "nog": "if", "cifg": "io"}  # default: "ifo"


def numpy_lstm_step(variant: str):
    """Greff et al. (2016), eqs. of the vanilla LSTM with peepholes, changed as each variant says."""
    V, U = {g: np.array(m) for g, m in HAND_V.items()}, {g: np.array(m) for g, m in HAND_U.items()}
    b = {g: np.array(HAND_B_IH[g]) + np.array(HAND_B_HH[g]) for g in "ifgo"}
    p = {g: np.array(v) if g in PEEPHOLES.get(variant, "ifo") else 0.0 for g, v in HAND_P.items()}
    pre = {g: V[g] @ X + U[g] @ H0 + b[g] for g in "ifgo"}
    if variant == "fgr":  # i, f, o also see [i; f; o] of the step before
        for k, g in enumerate("ifo"):
            pre[g] = pre[g] + HAND_R[2 * k:2 * k + 2] @ A0
    i = np.ones(2) if variant == "nig" else sigmoid(pre["i"] + p["i"] * C0)
    if variant == "nfg":
        f = np.ones(2)
    elif variant == "cifg":
        f = 1.0 - i
    else:
        f = sigmoid(pre["f"] + p["f"] * C0)
    g = pre["g"] if variant == "niaf" else np.tanh(pre["g"])
    c = f * C0 + i * g
    o = np.ones(2) if variant == "nog" else sigmoid(pre["o"] + p["o"] * c)  # o's peephole sees the new cell
    h = o * (c if variant == "noaf" else np.tanh(c))
    return {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h, "a": np.concatenate([i, f, o])}


def hand_set_lstm(variant: str) -> RNNLM:
    model = RNNLM(ModelConfig(arch="lstm", variant=variant, emb=2, hidden=2, layers=1, dropout=0.0,
                              vocab_size=VOCAB)).eval()
    blocks = BLOCKS.get(variant, "ifgo")
    stack = lambda d: torch.tensor(np.concatenate([np.array(d[g], dtype=float) for g in blocks]), dtype=torch.float32)
    with torch.no_grad():
        model.encoder.weight.zero_()
        model.encoder.weight[1] = torch.tensor(X)
        V, U, b_ih, b_hh = model.layer_weights(0)
        assert V.shape == (2 * len(blocks), 2)  # the removed gate has no rows
        for param, values in ((V, HAND_V), (U, HAND_U), (b_ih, HAND_B_IH), (b_hh, HAND_B_HH)):
            param.copy_(stack(values))
        extras = model.layer_extras(0)
        assert set(extras) == {f"p_{g}" for g in PEEPHOLES.get(variant, "ifo")} | ({"R"} if variant == "fgr" else set())
        for name, param in extras.items():
            param.copy_(torch.tensor(HAND_R if name == "R" else HAND_P[name[-1]], dtype=torch.float32))
    return model


def hand_state(variant: str):
    h, c = torch.tensor(H0, dtype=torch.float32).view(1, 1, 2), torch.tensor(C0, dtype=torch.float32).view(1, 1, 2)
    return (h, c, torch.tensor(A0, dtype=torch.float32).view(1, 1, 6)) if variant == "fgr" else (h, c)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_equations_on_a_hand_computed_step(variant):
    want = numpy_lstm_step(variant)
    model = hand_set_lstm(variant)
    emb = model.encoder(torch.tensor([[1]]))  # (1, 1, 2): x_t
    out, hidden, traces = model.run_cells(emb, hand_state(variant), keep_gates=True)
    got = {name: value[0, 0].detach().numpy() for name, value in traces[0].items()}
    assert set(got) == {"i", "f", "g", "o", "c", "h"}  # the same names for every variant
    for name in ("i", "f", "g", "o", "c", "h"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=f"{variant}: {name}")
    np.testing.assert_allclose(out[0, 0].detach().numpy(), want["h"], atol=1e-6)
    np.testing.assert_allclose(hidden[1][0, 0].detach().numpy(), want["c"], atol=1e-6)
    if variant == "fgr":  # the gates travel with the state to the next step
        assert len(hidden) == 3
        np.testing.assert_allclose(hidden[2][0, 0].detach().numpy(), want["a"], atol=1e-6)
    else:
        assert len(hidden) == 2
    # The output layer on top: y = softmax(W h + b2), through forward() with the same state.
    logits, _, _ = model(torch.tensor([[1]]), hand_state(variant))
    W, b2 = model.decoder.weight.detach().numpy(), model.decoder.bias.detach().numpy()
    np.testing.assert_allclose(logits[0, 0].detach().numpy(), W @ want["h"] + b2, atol=1e-6)


def test_variants_differ_from_each_other_on_the_hand_step():
    h = {v: numpy_lstm_step(v)["h"] for v in VARIANTS}
    assert np.allclose(h["vanilla"], h["np"])
    distinct = [v for v in VARIANTS if v != "np"]
    for a in distinct:
        for b in distinct:
            if a < b:
                assert not np.allclose(h[a], h[b], atol=1e-4), (a, b)


@pytest.mark.parametrize("variant", ["vanilla", "np"])
def test_pytorch_equivalent_variant_equals_nn_lstm(variant):
    torch.manual_seed(3)
    cfg = ModelConfig(arch="lstm", variant=variant, emb=6, hidden=8, layers=2, dropout=0.0, vocab_size=VOCAB)
    assert cfg.fusable and cfg.uses_fused and not replace(cfg, backend="cells").uses_fused
    model = RNNLM(replace(cfg, backend="cells")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    reference = torch.nn.LSTM(6, 8, 2)
    reference.load_state_dict(model.rnn.state_dict())
    x = torch.randint(0, VOCAB, (9, 3), generator=torch.Generator().manual_seed(4))
    emb = model.encoder(x)
    want, (h, c) = reference(emb)
    out, hidden, _ = model.run_cells(emb, model.init_hidden(3))
    assert torch.allclose(out, want, atol=1e-5, rtol=0)
    assert torch.allclose(hidden[0], h, atol=1e-5, rtol=0) and torch.allclose(hidden[1], c, atol=1e-5, rtol=0)


def test_peephole_lstm_with_zero_peepholes_is_pytorchs():
    torch.manual_seed(5)
    model = RNNLM(ModelConfig(arch="lstm", variant="peephole", emb=6, hidden=8, layers=1, dropout=0.0,
                              vocab_size=VOCAB)).eval()
    assert not model.cfg.uses_fused and isinstance(model.rnn, torch.nn.LSTM)
    with torch.no_grad():
        for p in model.extra.values():
            p.zero_()
    x = torch.randint(0, VOCAB, (9, 3), generator=torch.Generator().manual_seed(6))
    emb = model.encoder(x)
    want, _ = model.rnn(emb, model.init_hidden(3))  # the fused module on the same V, U, b
    assert torch.allclose(model.run_cells(emb, model.init_hidden(3))[0], want, atol=1e-5, rtol=0)


def test_fused_backend_is_refused_for_the_cells_only_variants():
    for variant in VARIANTS:
        cfg = ModelConfig(arch="lstm", variant=variant, vocab_size=VOCAB, backend="fused")
        if variant in ("vanilla", "np"):
            cfg.validate()
        else:
            with pytest.raises(ValueError, match="no fused module for the LSTM variant"):
                cfg.validate()
    with pytest.raises(ValueError, match="no fused module for Cho's GRU"):
        ModelConfig(arch="gru", gru_convention="cho", backend="fused", vocab_size=VOCAB).validate()


@pytest.mark.parametrize("changes, message", [
    (dict(variant="xyz"), "unknown LSTM variant 'xyz'"),
    (dict(arch="gru", variant="nig"), "'nig' is an LSTM variant"),
    (dict(gru_convention="bahdanau"), "unknown GRU convention"),
    (dict(arch="lstm", gru_convention="cho"), "applies to the GRU only"),
])
def test_variant_and_convention_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        replace(ModelConfig(vocab_size=VOCAB), **changes).validate()


# --- GRU conventions ---------------------------------------------------------------------------------------------
def test_gru_conventions_on_a_hand_computed_step():
    """Same weights, two conventions: each matches its own hand computation, and they differ."""
    V = {"r": [[0.3, -0.2], [0.1, 0.4]], "z": [[-0.1, 0.2], [0.3, 0.1]], "n": [[0.5, 0.3], [-0.4, 0.2]]}
    U = {"r": [[0.2, 0.1], [-0.3, 0.4]], "z": [[0.1, -0.2], [0.2, 0.3]], "n": [[0.6, -0.5], [0.4, 0.7]]}
    b_ih = {"r": [0.1, 0.0], "z": [-0.1, 0.2], "n": [0.2, -0.1]}
    b_hh = {"r": [0.0, 0.1], "z": [0.05, 0.0], "n": [0.3, -0.4]}
    M = lambda d: {k: np.array(v) for k, v in d.items()}
    V, U, b_ih, b_hh = M(V), M(U), M(b_ih), M(b_hh)
    r = sigmoid(V["r"] @ X + b_ih["r"] + U["r"] @ H0 + b_hh["r"])
    z = sigmoid(V["z"] @ X + b_ih["z"] + U["z"] @ H0 + b_hh["z"])
    n = {"pytorch": np.tanh(V["n"] @ X + b_ih["n"] + r * (U["n"] @ H0 + b_hh["n"])),   # reset after U_n
         "cho": np.tanh(V["n"] @ X + b_ih["n"] + U["n"] @ (r * H0) + b_hh["n"])}       # reset before U_n
    want = {c: (1 - z) * n[c] + z * H0 for c in n}
    assert not np.allclose(want["pytorch"], want["cho"], atol=1e-3)

    got = {}
    for convention in GRU_CONVENTIONS:
        model = RNNLM(ModelConfig(arch="gru", gru_convention=convention, emb=2, hidden=2, layers=1, dropout=0.0,
                                  vocab_size=VOCAB)).eval()
        assert model.cfg.uses_fused == (convention == "pytorch")
        with torch.no_grad():
            model.encoder.weight[1] = torch.tensor(X)
            for param, values in zip(model.layer_weights(0), (V, U, b_ih, b_hh)):
                param.copy_(torch.tensor(np.concatenate([values[g] for g in "rzn"]), dtype=torch.float32))
        h0 = torch.tensor(H0, dtype=torch.float32).view(1, 1, 2)
        out, _, traces = model.run_cells(model.encoder(torch.tensor([[1]])), h0, keep_gates=True)
        got[convention] = out[0, 0].detach().numpy()
        np.testing.assert_allclose(got[convention], want[convention], atol=1e-6, err_msg=convention)
        np.testing.assert_allclose(traces[0]["n"][0, 0].detach().numpy(), n[convention], atol=1e-6)
        np.testing.assert_allclose(traces[0]["r"][0, 0].detach().numpy(), r, atol=1e-6)
        fused_or_cells, _, _ = model(torch.tensor([[1]]), h0)  # the fused nn.GRU for pytorch, the cells for cho
        W, b2 = model.decoder.weight.detach().numpy(), model.decoder.bias.detach().numpy()
        np.testing.assert_allclose(fused_or_cells[0, 0].detach().numpy(), W @ want[convention] + b2, atol=1e-5)
    assert np.abs(got["pytorch"] - got["cho"]).max() > 1e-3


# --- every variant trains, saves and reloads ------------------------------------------------------------------------
def _vocab(n: int) -> Vocab:
    return Vocab([UNK, EOS] + [f"w{i}" for i in range(n - 2)])


MODEL_CASES = [("lstm", v, "pytorch") for v in VARIANTS] + [("gru", "vanilla", "cho")]


@pytest.mark.parametrize("arch, variant, convention", MODEL_CASES, ids=[f"{a}-{v}-{c}" for a, v, c in MODEL_CASES])
def test_variant_trains_saves_and_reloads(arch, variant, convention, tiny_cfg, tmp_path):
    cfg = tiny_cfg(arch, max_steps=8, eval_every=4)
    cfg.model = replace(cfg.model, layers=2, dropout=0.2, variant=variant, gru_convention=convention)
    result = train(cfg, tmp_path)
    assert result.status == "done" and np.isfinite(result.best_valid_ppl) and result.step == 8
    cfg = cfg.with_vocab(result.vocab)  # train() sized its own copy: the config given is never changed
    assert result.params == count_params(cfg.model)
    model, cfg2, vocab, _ = load_checkpoint(tmp_path / "last.pt")
    assert cfg2.model == cfg.model and cfg2.model.variant == variant
    assert set(model.state_dict()) == set(RNNLM(cfg.model).state_dict())
    x = torch.randint(0, len(vocab), (10, 2), generator=torch.Generator().manual_seed(0))
    logits, _, hidden = model(x)
    assert torch.isfinite(logits).all()
    # the state carried across two chunks == one pass (FGR carries its gates too)
    first, _, h1 = model(x[:4])
    second, _, h2 = model(x[4:], h1)
    assert torch.allclose(torch.cat([first, second]), logits, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(h2, hidden))
    # save / reload gives identical logits
    path = save_checkpoint(tmp_path / "again.pt", model, cfg2, vocab, {"step": 8})
    again, *_ = load_checkpoint(path)
    assert torch.equal(again(x)[0], logits)


def test_old_config_without_variant_loads_as_pytorchs():
    d = RunConfig(model=ModelConfig(arch="lstm")).to_dict()
    del d["model"]["variant"], d["model"]["gru_convention"]
    m = RunConfig.from_dict(d).model
    assert (m.variant, m.gru_convention, m.uses_fused) == ("vanilla", "pytorch", True)


def test_labels_equations_and_parameter_map_name_the_variant(tmp_path):
    nig = RunConfig(model=ModelConfig(arch="lstm", variant="nig", layers=2, hidden=200))
    assert nig.label() == "LSTM-NIG 2×200" and model_name(nig.model) == "LSTM-NIG"
    assert RunConfig(model=ModelConfig(arch="lstm")).label() == "LSTM 2×200"
    assert RunConfig(model=ModelConfig(arch="gru", gru_convention="cho", layers=1)).label() == "GRU-Cho 1×200"
    assert [model_name(ModelConfig(arch="elman", activation=a)) for a in ("sigmoid", "tanh", "relu")] == \
        ["σ-RNN", "tanh-RNN", "ReLU-RNN"]
    runs = [stored_run(tmp_path, nig, params=1, test_ppl=90.0, best_valid_ppl=95.0)]
    assert lecture_table(runs)["method"][0] == "LSTM-NIG (2 layers, 200 units)"

    eq = lambda v: " ".join(equations(ModelConfig(arch="lstm", variant=v, vocab_size=VOCAB)))
    assert r"p_i \odot c_{t-1}" in eq("peephole") and r"p_o \odot c_t" in eq("peephole")
    assert "p_i" not in eq("vanilla") and eq("vanilla") == eq("np")
    assert "i_t = 1" in eq("nig") and "f_t = 1 " in eq("nfg") and "o_t = 1" in eq("nog")
    assert "f_t = 1 - i_t" in eq("cifg") and "p_f" not in eq("cifg")
    assert r"g_t = V_g x_t" in eq("niaf") and r"h_t = o_t \odot c_t" in eq("noaf")
    assert "R_i a_{t-1}" in eq("fgr") and "a_0 = 0" in eq("fgr")
    gru = lambda c: " ".join(equations(ModelConfig(arch="gru", gru_convention=c, vocab_size=VOCAB)))
    assert r"U_n (r_t \odot h_{t-1})" in gru("cho") and r"r_t \odot (U_n h_{t-1}" in gru("pytorch")

    rows = {r["symbol"]: r for r in parameter_map(ModelConfig(arch="lstm", variant="fgr", hidden=4, vocab_size=VOCAB))}
    assert rows["R = [R_i; R_f; R_o]"]["shape"] == "(12, 12)" and rows["p_i, p_f, p_o"]["PyTorch"].startswith("extra.p_i_l0")
    nog = {r["symbol"]: r for r in parameter_map(ModelConfig(arch="lstm", variant="nog", hidden=4, vocab_size=VOCAB))}
    assert nog["V"]["PyTorch"] == "rnn.weight_ih_l0 (i, f, g stacked)" and nog["V"]["shape"] == "(12, 200)"


def test_cli_trains_a_variant(tmp_path, grammar_file, capsys):
    home = tmp_path / "home"
    flags = ["--corpus", str(grammar_file), "--tokenizer", "word", "--emb", "8", "--hidden", "8", "--layers", "1",
             "--bptt", "6", "--batch", "4", "--optimizer", "adam", "--max-steps", "4", "--json"]
    assert main(["--home", str(home), "train", "--arch", "lstm", "--variant", "CIFG", *flags]) == 0
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    run = RunStore(home).get_run(done["run_id"])
    assert run["config"]["model"]["variant"] == "cifg" and done["params"] == count_params(
        RunConfig.from_dict(run["config"]).model, done["vocab"])
    assert main(["--home", str(home), "train", "--arch", "gru", "--gru-convention", "cho", *flags]) == 0
    assert main(["--home", str(home), "train", "--arch", "gru", "--variant", "nig", *flags]) == 2
    assert "LSTM variant" in capsys.readouterr().err


# --- parameter counts and budgets ---------------------------------------------------------------------------------
COUNT_CASES = [(arch, act, v, c) for arch, act in (("elman", "sigmoid"), ("elman", "tanh"), ("irnn", "relu"))
               for v, c in [("vanilla", "pytorch")]] + \
              [("lstm", "tanh", v, "pytorch") for v in VARIANTS] + [("gru", "tanh", "vanilla", c) for c in GRU_CONVENTIONS]


@pytest.mark.parametrize("arch, act, variant, convention", COUNT_CASES, ids=[f"{a}-{act}-{v}-{c}" for a, act, v, c in COUNT_CASES])
@pytest.mark.parametrize("bias, layers, tied", [(True, 1, False), (False, 2, False), (True, 3, True)])
def test_count_params_equals_the_model(arch, act, variant, convention, bias, layers, tied):
    cfg = ModelConfig(arch=arch, activation=act, variant=variant, gru_convention=convention, bias=bias,
                      emb=7 if tied else 5, hidden=7, layers=layers, tied=tied, vocab_size=VOCAB)
    assert count_params(cfg) == RNNLM(cfg).num_params()


def test_variant_parameter_counts_follow_greff():
    base = ModelConfig(arch="lstm", emb=10, hidden=10, layers=1, vocab_size=VOCAB)
    n = {v: count_params(replace(base, variant=v)) for v in VARIANTS}
    block = 10 * (10 + 10 + 2)  # one gate's rows of V, U, b_ih, b_hh
    assert n["vanilla"] == n["np"]
    assert n["peephole"] == n["vanilla"] + 3 * 10 == n["niaf"] == n["noaf"]
    assert n["nig"] == n["nfg"] == n["nog"] == n["cifg"] == n["peephole"] - block - 10
    assert n["fgr"] == n["peephole"] + 9 * 10 * 10


@pytest.mark.parametrize("target_arch", ["lstm", "gru", "elman"])
@pytest.mark.parametrize("arch, variant", [("lstm", "vanilla"), ("lstm", "fgr"), ("lstm", "cifg"), ("gru", "vanilla"),
                                           ("elman", "vanilla")])
def test_hidden_for_budget_lands_within_two_percent(target_arch, arch, variant):
    vocab = 10_000
    target = count_params(ModelConfig(arch=target_arch, layers=2 if target_arch != "elman" else 1, hidden=200,
                                      vocab_size=vocab))
    cfg = ModelConfig(arch=arch, variant=variant, layers=2 if arch != "elman" else 1, vocab_size=vocab)
    h = hidden_for_budget(cfg, target, vocab)
    assert abs(count_params(replace(cfg, hidden=h)) - target) <= 0.02 * target
    tied = replace(cfg, tied=True, emb=cfg.hidden)  # a tied model moves emb with hidden
    h = hidden_for_budget(tied, target, vocab)
    assert abs(count_params(replace(tied, hidden=h, emb=h)) - target) <= 0.02 * target


# --- gate views for every variant --------------------------------------------------------------------------------
def small_variant(variant: str, seed: int = 0) -> RNNLM:
    torch.manual_seed(seed)
    model = RNNLM(ModelConfig(arch="lstm", variant=variant, emb=5, hidden=6, layers=2, dropout=0.0, vocab_size=13))
    with torch.no_grad():
        for p in list(model.rnn.parameters()) + list(model.extra.values()):
            p.uniform_(-0.6, 0.6)
    return model.eval()


IDS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7, 9, 5]


@pytest.mark.parametrize("variant", VARIANTS)
def test_gate_views_work_for_every_variant(variant):
    model = small_variant(variant)
    tr = trace(model, IDS)
    constant = model.cfg.constant_gates
    assert constant == {"nig": ("i",), "nfg": ("f",), "nog": ("o",)}.get(variant, ())
    notes = gate_notes(model.cfg)
    assert tr.gate_notes == notes
    for layer in tr.layers:
        assert set(layer) == {"i", "f", "g", "o", "c", "h"}
        for g in constant:
            assert np.all(layer[g] == 1.0)  # a removed gate: permanently open
        if variant == "cifg":
            np.testing.assert_allclose(layer["f"], 1 - layer["i"], atol=1e-6)
    for g in constant:
        assert notes[g] == f"no {dict(i='input', f='forget', o='output')[g]} gate: drawn as permanently open"
    if variant == "cifg":
        assert notes == {"f": "forget gate f = 1 − i (coupled)"}

    # Fig. 4.4: a removed gate is "O" even when "open" means above 1.0; it is said in the subtitle and on hover
    gates = {g: tr.layers[1][g][:, 0] for g in "ifo"}
    glyphs = glyph_layout(gates, "lstm", 0.1, 1.0, constant=constant)
    assert all(gl.glyph == OPEN for gl in glyphs if gl.gate in constant)
    s = input_sensitivity(model, IDS[:12], 2, layer=-1)
    fig = fig44_figure(tr.tokens[:12], s / s.max(), [gl for gl in glyphs if gl.t < 12], arch="lstm", notes=notes,
                       constant=constant)
    subtitle = fig.layout.title.subtitle.text
    assert all(note in subtitle.replace("&amp;", "&") for note in notes.values())
    sat = saturation_figure(tr.layers[1], notes=notes)
    titles = [a.text for a in sat.layout.annotations]
    assert len(titles) == 3 and sum(t.endswith(" †") for t in titles) == len(notes)
    assert all(f"† {note}" in sat.layout.title.subtitle.text.replace("&amp;", "&") for note in notes.values())
    hist = gate_histogram_figure(tr.layers[1], notes=notes)
    for g in constant:  # every value of a removed gate (exactly 1) lands in the last bin
        values = hist.data[list("ifo").index(g)].x
        assert len(values) == tr.layers[1][g].size and min(values) >= 0.975

    # the gradient views run through model.run_cells: the sensitivity is exact, the decay curves finite
    assert s[2] > 0 and np.all(s[:2] == 0) and np.all(np.isfinite(s))
    emb = model.encoder(torch.as_tensor(IDS[:12]).view(-1, 1)).detach().requires_grad_(True)
    _, _, per_layer = model.run_cells(emb, model.init_hidden(1))
    (grad,) = torch.autograd.grad(per_layer[-1]["h"][9, 0].mean(), emb)
    assert s[9] == pytest.approx(grad[2, 0].norm().item(), rel=1e-4)
    curve = loss_gradient_decay(model, IDS, K=6, positions=3, warmup=4)
    jac = jacobian_decay(model, IDS, K=6, positions=2, warmup=4)
    assert np.all(np.isfinite(curve.mean)) and curve.mean[0] > 0 and np.all(np.isfinite(jac.mean)) and jac.mean[0] > 0


# --- the pages ------------------------------------------------------------------------------------------------------
def test_gates_page_says_a_removed_gate_is_drawn_open(lmcore_home, tiny_cfg):
    store = RunStore(lmcore_home)
    cfg = tiny_cfg("lstm", max_steps=6)
    cfg.model = replace(cfg.model, variant="nig")
    run_id = store.create_run(cfg.to_dict(), status="running")
    record_result(store, run_id, train(cfg, store.run_dir(run_id), StoreHooks(store, run_id)))

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params["gates_lstm"] = f"run:{run_id}"
    at.run()
    at.switch_page("views/gates.py").run()
    at.text_area[0].set_value("the cat sees the dog . the dog sees the cat .").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(c.value for c in at.caption)
    assert "no input gate: drawn as permanently open" in captions
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    fig44 = next(s for s in specs if s["layout"]["title"]["text"].startswith("LSTM-NIG,"))
    assert "no input gate: drawn as permanently open" in fig44["layout"]["title"]["subtitle"]["text"]
    below = next(t for t in fig44["data"] if t.get("name") == "i (below)")
    assert set(below["text"]) == {OPEN}
    panels = [a["text"] for s in specs for a in s["layout"].get("annotations", [])]
    assert panels.count("input gate i †") == 2  # saturation and histogram panels, the note in their subtitles
    subtitles = [s["layout"]["title"].get("subtitle", {}).get("text", "") for s in specs]
    assert sum("† no input gate: drawn as permanently open" in t for t in subtitles) == 2


def test_train_page_offers_the_variants_and_counts_their_parameters(lmcore_home):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("views/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    counts = lambda: [c.value for c in at.caption if "units ·" in c.value]  # each run's size line, not the notes
    before = counts()
    variant = at.selectbox(key="variant2")  # run 2 is the LSTM preset
    assert variant.value == "vanilla" and "fgr" in variant.options[-1].lower()
    variant.set_value("nig").run()
    assert not at.exception, [e.value for e in at.exception]
    after = counts()
    count = lambda text: int(text.split("**")[1].replace(",", ""))
    assert count(after[1]) < count(before[1])  # no input gate: one block of V, U, b fewer
    assert count(after[0]) == count(before[0])
    at.selectbox(key="gru3").set_value("cho").run()
    assert not at.exception, [e.value for e in at.exception]
