"""The language model over every architecture: shapes, fused == hand-written cells, checkpoints, carried state."""
from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch

from lmcore.corpus.tokenize import EOS, UNK
from lmcore.corpus.vocab import Vocab
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import RNNLM, detach_hidden
from lmcore.training.checkpoints import load_checkpoint, save_checkpoint
from lmcore.training.config import RunConfig

VOCAB = 13
T, B = 7, 3
ARCHS = [("elman", "sigmoid"), ("elman", "tanh"), ("elman", "relu"), ("irnn", "relu"), ("lstm", "sigmoid"),
         ("gru", "sigmoid")]
GATES = {"elman": set(), "irnn": set(), "lstm": {"i", "f", "g", "o", "c"}, "gru": {"r", "z", "n"}}


def _case_id(case):
    (arch, act), bias, layers, tied = case
    name = f"elman-{act}" if arch == "elman" else arch
    return f"{name}-{'bias' if bias else 'nobias'}-L{layers}{'-tied' if tied else ''}"


CASES = list(itertools.product(ARCHS, (True, False), (1, 2), (False, True)))


def _vocab() -> Vocab:
    return Vocab([UNK, EOS] + [f"w{i}" for i in range(VOCAB - 2)])


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    return torch.equal(a, b)


def _close(a, b, atol=1e-5) -> bool:
    if isinstance(a, tuple):
        return all(torch.allclose(x, y, atol=atol, rtol=0) for x, y in zip(a, b, strict=True))
    return torch.allclose(a, b, atol=atol, rtol=0)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_every_architecture(case, tmp_path):
    (arch, act), bias, layers, tied = case
    cfg = ModelConfig(arch=arch, activation=act, bias=bias, emb=8 if tied else 6, hidden=8, layers=layers,
                      dropout=0.3, tied=tied, vocab_size=VOCAB)
    torch.manual_seed(0)
    model = RNNLM(cfg)
    # Random weights of a useful size (the default init leaves logits almost flat), and non-zero biases.
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randint(0, VOCAB, (T, B), generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, VOCAB, (T, B), generator=torch.Generator().manual_seed(2))

    # shapes; the loss is the mean cross-entropy of the logits
    logits, loss, hidden = model(x, targets=y)
    assert logits.shape == (T, B, VOCAB)
    hiddens = hidden if arch == "lstm" else (hidden,)
    assert len(hiddens) == (2 if arch == "lstm" else 1)
    assert all(h.shape == (layers, B, 8) for h in hiddens)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert (model.decoder.bias is not None) == bias and (model.layer_weights(0)[3] is not None) == bias
    assert (model.decoder.weight is model.encoder.weight) == tied

    # fused forward == hand-written cells, reading the same tensors
    cell_logits, _, cell_hidden = model(x, use_cells=True)
    if cfg.fusable:
        assert cfg.uses_fused
        assert _close(logits, cell_logits) and _close(hidden, cell_hidden)
    else:
        assert not cfg.uses_fused
        assert _same(logits, cell_logits)  # a sigmoid Elman always runs on the cells

    # the cells' trace: the last layer's h is the output, gates by name with shape (T, B, H)
    emb = model.encoder(x)
    out, _, traces = model.run_cells(emb, model.init_hidden(B), keep_gates=True)
    assert len(traces) == layers and set(traces[-1]) == GATES[arch] | {"h"}
    assert torch.equal(traces[-1]["h"], out)
    assert all(v.shape == (T, B, 8) for tr in traces for v in tr.values())

    # hidden state carried across two chunks == one pass over the concatenation
    first, _, h1 = model(x[:4])
    second, _, h2 = model(x[4:], detach_hidden(h1))
    assert _close(torch.cat([first, second]), logits) and _close(h2, hidden)
    first, _, h1 = model(x[:4], use_cells=True)
    second, _, h2 = model(x[4:], h1, use_cells=True)
    assert _close(torch.cat([first, second]), cell_logits) and _close(h2, cell_hidden)

    # save / reload through lmcore.training.checkpoints gives identical logits
    run_cfg = RunConfig(name="t", model=cfg)
    path = save_checkpoint(tmp_path / "m.pt", model, run_cfg, _vocab(), {"step": 5, "valid_ppl": 12.5})
    assert not (tmp_path / "m.pt.tmp").exists()
    loaded, cfg2, vocab2, meta = load_checkpoint(path)
    assert not loaded.training
    assert cfg2.model == cfg and vocab2.itos == _vocab().itos and meta == {"step": 5, "valid_ppl": 12.5}
    assert (loaded.decoder.weight is loaded.encoder.weight) == tied
    assert _same(loaded(x)[0], logits)
    assert loaded.num_params() == model.num_params()

    # the file holds plain tensors, strings and numbers only
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == 1 and payload["config"]["model"]["arch"] == arch
    assert set(payload["state_dict"]) == set(model.state_dict())


def test_tied_counts_the_shared_matrix_once():
    base = ModelConfig(arch="gru", emb=8, hidden=8, layers=1, vocab_size=VOCAB)
    untied, tied = RNNLM(base), RNNLM(replace(base, tied=True))
    assert untied.num_params() - tied.num_params() == VOCAB * 8


def test_elman_sigmoid_is_the_lecture_equation():
    """h_i = σ(V x_i + U h_{i-1} + b1), y_i = W h_i + b2, written out by hand."""
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch="elman", activation="sigmoid", emb=5, hidden=4, layers=1, dropout=0.0,
                              vocab_size=VOCAB)).eval()
    x = torch.tensor([[1], [4], [2]])
    V, U, b_ih, b_hh = model.layer_weights(0)
    W, b2 = model.decoder.weight, model.decoder.bias
    h = torch.zeros(4)
    for t in range(3):
        h = torch.sigmoid(V @ model.encoder.weight[x[t, 0]] + b_ih + U @ h + b_hh)
        expected = W @ h + b2
        assert torch.allclose(model(x)[0][t, 0], expected, atol=1e-6)


def test_irnn_starts_with_identity_and_zero_biases():
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch="irnn", emb=6, hidden=8, layers=2, vocab_size=VOCAB))
    for layer in range(2):
        V, U, b_ih, b_hh = model.layer_weights(layer)
        assert torch.equal(U, torch.eye(8))
        assert torch.count_nonzero(b_ih) == 0 and torch.count_nonzero(b_hh) == 0
        assert 0.01 < V.std().item() < 0.06  # N(0, 0.001): std ≈ 0.032
    assert model.rnn.nonlinearity == "relu" and model.cfg.cell_activation == "relu"


@pytest.mark.parametrize("changes, message", [
    (dict(tied=True, emb=6, hidden=8), "tied weights need emb == hidden"),
    (dict(arch="elman", activation="sigmoid", backend="fused"), "no fused module for a sigmoid Elman"),
    (dict(arch="transformer"), "unknown architecture 'transformer'"),
    (dict(activation="gelu"), "unknown activation"),
    (dict(backend="cuda"), "unknown backend"),
    (dict(hidden=0), "hidden must be at least 1"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
])
def test_model_config_validate_errors(changes, message):
    cfg = replace(ModelConfig(emb=8, hidden=8, vocab_size=VOCAB), **changes)
    with pytest.raises(ValueError, match=message):
        cfg.validate()
    with pytest.raises(ValueError, match=message):
        RNNLM(cfg)


def test_backend_choice():
    assert ModelConfig(arch="elman", activation="tanh", backend="fused").uses_fused
    assert not ModelConfig(arch="lstm", backend="cells").uses_fused
    assert not ModelConfig(arch="elman", activation="sigmoid", backend="auto").uses_fused
    ModelConfig(arch="elman", activation="sigmoid", backend="cells", vocab_size=5).validate()


def test_checkpoint_with_wrong_format_is_refused(tmp_path):
    model = RNNLM(ModelConfig(arch="gru", emb=4, hidden=4, layers=1, vocab_size=VOCAB))
    path = save_checkpoint(tmp_path / "m.pt", model, RunConfig(model=model.cfg), _vocab(), {})
    payload = torch.load(path, weights_only=True)
    payload["format"] = 99
    torch.save(payload, path)
    with pytest.raises(ValueError, match="checkpoint format 99"):
        load_checkpoint(path)
