"""The adaptive softmax output layer (issue 19, part 3): an exact distribution over every word, a loss that computes
each row's own cluster only, the same parameter count as the catalogue says, and a run built, trained and
inspected through the same paths as any other (the CLI and the Train page's run_config, the pages)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from lmcore.cli.main import main
from lmcore.corpus.dataset import CorpusSpec
from lmcore.inspect.embeddings import embedding_matrix
from lmcore.lecture.notation import equations, parameter_map
from lmcore.nn.adaptive_output import AdaptiveOutput
from lmcore.nn.architectures import ModelConfig, adaptive_clusters, adaptive_cutoffs, count_params, model_name
from lmcore.nn.model import build_model
from lmcore.runs import service
from lmcore.runs.store import RunStore
from lmcore.training.device import bf16_native
from lmcore.training.checkpoints import load_checkpoint
from lmcore.training.presets import output_hint, run_config

from .conftest import docs_lines
from .test_cli import TINY
from .test_ffnn import app
from .test_pages import open_page


def _rows(n=64, hidden=24, vocab=5000, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hidden, generator=g, requires_grad=True)
    zipf = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float64)  # frequent words first, as the vocabulary is
    return h, torch.multinomial(zipf, n, replacement=True, generator=g)


@pytest.mark.parametrize("vocab", [8, 300, 5000, 25_000])
def test_an_exact_distribution_over_every_word(vocab):
    torch.manual_seed(0)
    layer = AdaptiveOutput(24, vocab)
    h, y = _rows(vocab=vocab)
    logp = layer(h)
    assert logp.shape == (64, vocab) and logp.dtype == torch.float32
    assert torch.allclose(logp.logsumexp(-1), torch.zeros(64), atol=1e-5)  # each row sums to one
    # the training loss is −log p(target) of that very distribution, and so are its gradients
    params = [h, *layer.parameters()]
    expected = torch.autograd.grad(F.cross_entropy(logp, y), params, allow_unused=True)
    loss = layer.loss(h, y)
    got = torch.autograd.grad(loss, params, allow_unused=True)
    assert loss.item() == pytest.approx(F.nll_loss(logp, y).item(), rel=1e-5)
    for e, g in zip(expected, got):
        assert (e is None and g is None) or torch.allclose(e, g, atol=1e-6, rtol=1e-4)


def test_a_row_computes_the_head_and_its_own_cluster_only():
    torch.manual_seed(0)
    layer = AdaptiveOutput(24, 25_000)  # clusters 2,000–10,000 and 10,000–25,000
    assert [(s, e) for s, e, _ in layer.spans] == [(2_000, 10_000), (10_000, 25_000)]
    seen = {0: [], 1: []}
    for i, tail in enumerate(layer.tails):
        tail[0].register_forward_hook(  # the cluster's projection of h: rows that reach it
            lambda module, args, out, i=i: seen[i].append(args[0].shape[0]))
    h, _ = _rows(n=10)
    layer.loss(h, torch.tensor([0, 5, 1999, 2000, 9999, 1, 2, 3, 4, 7]))
    assert seen == {0: [2], 1: []}  # two rows in the first cluster; nobody's target in the second
    layer.loss(h, torch.tensor([24_999] + [3] * 9))
    assert seen == {0: [2], 1: [1]}


def test_clusters_and_parameter_count():
    assert adaptive_cutoffs(2_900) == [725] and adaptive_cutoffs(10_000) == [2_000]
    assert adaptive_cutoffs(50_000) == [2_000, 10_000]
    assert adaptive_clusters(200, 50_000) == [(2_000, 10_000, 50), (10_000, 50_000, 12)]
    assert adaptive_cutoffs(3) == [1] and adaptive_cutoffs(5) == [1]  # any corpus: <unk>, <eos> and a word
    with pytest.raises(ValueError, match="at least 2 words"):
        adaptive_cutoffs(1)
    for cfg in (ModelConfig(vocab_size=3_000, output="adaptive"),
                ModelConfig(arch="gru", vocab_size=30_000, output="adaptive", bias=False, layers=1),
                ModelConfig(arch="ffnn", layers=1, window=4, direct=True, vocab_size=12_000, output="adaptive")):
        assert build_model(cfg).num_params() == count_params(cfg)
    full = ModelConfig(vocab_size=50_000)
    assert count_params(ModelConfig(vocab_size=50_000, output="adaptive")) < 0.7 * count_params(full)


@pytest.mark.parametrize("cfg", [ModelConfig(vocab_size=12_000, output="adaptive"),
                                 ModelConfig(arch="gru", vocab_size=30_000, output="adaptive", bias=False, layers=1),
                                 ModelConfig(arch="ffnn", layers=1, direct=True, vocab_size=300, output="adaptive")])
def test_the_equations_and_parameter_table_name_its_tensors(cfg):
    """The Equations panel of every inspection page: the head and clusters, each row a real tensor of its shape."""
    head, clusters = equations(cfg)[-2:]
    assert r"W_{head}" in head and r"W_c P_c" in clusters and ("b_{head}" in head + clusters) == cfg.bias
    params = dict(build_model(cfg).named_parameters())
    rows = [r for r in parameter_map(cfg) if r["PyTorch"].startswith("decoder")]
    assert {r["PyTorch"] for r in rows} == {name for name in params if name.startswith("decoder")}
    for r in rows:
        assert r["shape"] == str(tuple(params[r["PyTorch"]].shape)).replace(",)", ",)")
    symbols = [r["symbol"] for r in parameter_map(cfg)]
    assert len(symbols) == len(set(symbols)) and "W" not in symbols and "b_2" not in symbols


def test_configs_name_and_refuse_what_cannot_be():
    cfg = ModelConfig(vocab_size=100, output="adaptive")
    assert model_name(cfg, size=True) == "LSTM 2×200, adaptive softmax"
    with pytest.raises(ValueError, match="untie W"):
        ModelConfig(vocab_size=100, output="adaptive", tied=True).validate()
    with pytest.raises(ValueError, match="unknown output layer 'sampled'"):
        ModelConfig(vocab_size=100, output="sampled").validate()
    # the presets tie W to the embedding; asking for an adaptive softmax unties it, in the page's and CLI's function
    run = run_config("LSTM", CorpusSpec(), model={"output": "adaptive"})
    assert run.model.tied is False and run.model.emb == run.model.hidden and run.name == "LSTM 1×200, adaptive softmax"
    wide = run_config("LSTM", CorpusSpec(), model={"output": "adaptive", "hidden": 600}).model  # --hidden 600 alone
    assert (wide.emb, wide.hidden, wide.tied) == (600, 600, False)  # emb follows h, as it did while tied
    assert run_config("LSTM", CorpusSpec(), model={"output": "adaptive", "hidden": 600, "emb": 64}).model.emb == 64
    with pytest.raises(ValueError, match="untie W"):
        run_config("LSTM", CorpusSpec(), model={"output": "adaptive", "tied": True}).with_vocab(100).model.validate()


@pytest.mark.skipif(not bf16_native(torch.device("cpu")), reason="this CPU has no native bfloat16")
def test_bf16_autocast_stays_close_and_float32_where_it_counts():
    torch.manual_seed(0)
    layer = AdaptiveOutput(24, 5000)
    h, y = _rows()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = layer.loss(h, y)
        logp = layer(h)
    assert low.dtype == torch.float32 and logp.dtype == torch.float32
    assert low.item() == pytest.approx(layer.loss(h, y).item(), rel=1e-2)


def _train(home, corpus, capsys, *flags) -> dict:
    args = ["--home", str(home), "train", "--corpus", str(corpus), *TINY, "--max-steps", "120", "--json", *flags]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out.splitlines()[-1])


def test_trains_like_the_full_softmax_and_every_page_reads_it(tmp_path, lmcore_home, capsys):
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n".join(docs_lines(400)) + "\n", encoding="utf-8")
    full = _train(lmcore_home, corpus, capsys)
    adaptive = _train(lmcore_home, corpus, capsys, "--output", "adaptive")
    assert adaptive["status"] == "done" and adaptive["vocab"] == full["vocab"] > 100
    # the same steps, the same data: both learn (far below a uniform guess), the adaptive one within 15%
    assert full["valid_ppl"] < adaptive["valid_ppl"] * 1.15 and adaptive["valid_ppl"] < full["valid_ppl"] * 1.15
    assert adaptive["valid_ppl"] < full["vocab"] / 4

    at = open_page("views/embeddings.py")  # the newest run, the adaptive one, is the page's default
    assert at.radio(key="vectors").options == ["input"]
    assert any("adaptive softmax" in c.value for c in at.caption) and len(at.get("plotly_chart")) == 1
    for page in ("views/hidden.py", "views/gates.py", "views/memory.py"):
        open_page(page)  # each opens on the adaptive run without an exception (open_page checks)
    next_word = open_page("views/next_word.py")  # its opening line gives y_t = softmax(W h_t + b₂): it says which
    assert any(c.value.startswith("This run's y_t comes from an adaptive softmax") for c in next_word.caption)
    [best] = [p for p in lmcore_home.rglob("best.pt") if load_checkpoint(p)[1].model.output == "adaptive"]
    with pytest.raises(ValueError, match="no one output vector per word"):
        embedding_matrix(load_checkpoint(best)[0], "output")


def test_the_train_page_builds_and_trains_an_adaptive_run(lmcore_home, end_job_processes):
    at = app("views/train.py", corpus="builtin:agreement", tokenizer="words")
    at.slider[0].set_value(1).run()
    at.selectbox(key="preset1").set_value("LSTM").run()
    assert at.selectbox(key="out1").value == "softmax"  # the default: the lecture's softmax over every word
    at.checkbox(key="tied1").check().run()
    at.selectbox(key="out1").set_value("adaptive").run()  # W was tied: an adaptive softmax has none, so it unties
    assert any("W untied: an adaptive softmax" in c.value for c in at.caption)
    at.number_input(key="hid1").set_value(16)
    at.number_input(key="emb1").set_value(8)
    at.number_input[0].set_value(1)  # epochs
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    count = next(c.value for c in at.caption if "** parameters" in c.value)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    [run_id] = [int(x) for x in at.query_params["show"].split(",")]
    store = RunStore(lmcore_home)
    m = store.get_run(run_id).cfg.model
    assert (m.arch, m.output, m.tied, m.hidden) == ("lstm", "adaptive", False, 16)
    [finished] = service.wait_for(store, [run_id], timeout=300)
    assert finished.status == "done", finished.message
    assert finished.params == count_params(m, finished.vocab) == int(count.split("**")[1].replace(",", ""))
    assert "adaptive softmax" in store.get_run(run_id).cfg.label()


def test_the_train_page_points_to_it_where_the_vocabulary_is_large():
    small, large = ModelConfig(vocab_size=2_900), ModelConfig(vocab_size=23_000)
    assert output_hint(small) == "" and output_hint(replace(large, output="adaptive")) == ""
    assert output_hint(large).startswith("23,000 words: ") and "Advanced → Output layer" in output_hint(large)
