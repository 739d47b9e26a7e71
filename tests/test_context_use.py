"""Context use (Khandelwal et al. 2018): the shared-start computation against one run per (target, k)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lmcore.inspect.memory import context_perplexity
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import RNNLM


def brute_force(model: RNNLM, ids: np.ndarray, k: int, targets: np.ndarray) -> float:
    """Each target scored from its own zero-state window of the k tokens before it."""
    nll = 0.0
    for t in targets:
        out, _ = model.features(torch.as_tensor(ids[t - k:t]).view(-1, 1))
        nll -= torch.log_softmax(model.decoder(out[-1, 0]), dim=-1)[ids[t]].item()
    return math.exp(nll / len(targets))


@pytest.mark.parametrize("arch,variant", [("lstm", "vanilla"), ("lstm", "peephole"), ("gru", "vanilla"),
                                          ("elman", "vanilla")])
@torch.no_grad()
def test_every_context_length_matches_one_window_per_target(arch, variant):
    torch.manual_seed(3)
    model = RNNLM(ModelConfig(arch=arch, variant=variant, emb=12, hidden=16, layers=2, vocab_size=23)).eval()
    ids = np.random.default_rng(5).integers(0, 23, 160)
    lengths = (1, 3, 7, 20)
    table = context_perplexity(model, ids, lengths=lengths, max_targets=90, batch=16)  # batches split the starts
    targets = np.arange(20, 110)
    for k in lengths:
        got = table.loc[table["context"] == str(k), "ppl"].item()
        assert got == pytest.approx(brute_force(model, ids, k, targets), rel=1e-5), k
    out, _ = model.features(torch.as_tensor(ids[:109]).view(-1, 1))
    whole = torch.log_softmax(model.decoder(out[targets - 1, 0]), dim=-1)[torch.arange(90), ids[targets]]
    assert table["context"].tolist()[-1] == "all"
    assert table["ppl"].iloc[-1] == pytest.approx(math.exp(-whole.mean().item()), rel=1e-6)


def test_targets_near_the_end_and_a_text_too_short():
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch="lstm", emb=8, hidden=8, layers=1, vocab_size=9)).eval()
    ids = np.random.default_rng(1).integers(0, 9, 30)
    table = context_perplexity(model, ids, lengths=(2, 10), max_targets=1000, batch=4)  # targets 10 … 29
    for k in (2, 10):
        got = table.loc[table["context"] == str(k), "ppl"].item()
        assert got == pytest.approx(brute_force(model, ids, k, np.arange(10, 30)), rel=1e-5)
    with pytest.raises(ValueError, match="more than 10 tokens"):
        context_perplexity(model, ids[:10], lengths=(2, 10))


@pytest.mark.skipif(not __import__("lmcore.training.device", fromlist=["x"]).bf16_native(torch.device("cpu")),
                    reason="this CPU has no native bfloat16 arithmetic")
def test_bf16_context_use_of_a_trained_lstm_within_half_a_percent():
    """The page's and the CLI's default: the recurrent stack in bf16, the output layer in float32."""
    from lmcore.corpus.loading import load_corpus
    from lmcore.training.checkpoints import load_checkpoint
    from lmcore.training.demos import DEMO_DIR
    model, cfg, vocab, _ = load_checkpoint(DEMO_DIR / "agreement-lstm.pt", "cpu")
    ids = vocab.encode(load_corpus(cfg.corpus).vocab.decode(load_corpus(cfg.corpus).valid))[:700]
    lengths = (1, 5, 50, 200)
    exact = context_perplexity(model, ids, lengths=lengths, max_targets=300)
    fast = context_perplexity(model, ids, lengths=lengths, max_targets=300, bf16=True)
    assert not np.array_equal(exact["ppl"].to_numpy(), fast["ppl"].to_numpy())  # it did compute in bf16
    assert np.allclose(fast["ppl"], exact["ppl"], rtol=0.005)


def test_bf16_leaves_the_feedforward_model_exact():
    from lmcore.nn.model import build_model
    torch.manual_seed(0)
    ffnn = build_model(ModelConfig(arch="ffnn", emb=8, hidden=8, layers=1, vocab_size=9, window=3)).eval()
    ids = np.random.default_rng(1).integers(0, 9, 60)
    a = context_perplexity(ffnn, ids, lengths=(1, 2, 5, 10), max_targets=40)
    b = context_perplexity(ffnn, ids, lengths=(1, 2, 5, 10), max_targets=40, bf16=True)
    assert a["ppl"].tolist() == b["ppl"].tolist()
    assert len(set(a["ppl"].iloc[1:4])) == 1  # flat beyond its window of 2, exactly
