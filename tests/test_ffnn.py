"""The feedforward LM (Bengio et al. 2003) as an architecture like the others: its window is exactly n − 1 words,
its parameters are counted in closed form, its context use is flat from k = n − 1, it trains, saves, resumes and
samples through the same paths as the recurrent models; the pages that apply to it take it, and the pages about
a state through time leave it out and say why."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from lmcore.cli.main import main
from lmcore.inspect.embeddings import embedding_matrix
from lmcore.inspect.gradients import input_saliency, loss_gradient_decay
from lmcore.inspect.memory import CONTEXT_LENGTHS, context_perplexity
from lmcore.inspect.sensitivity import input_sensitivity
from lmcore.inspect.trace import trace
from lmcore.lecture.notation import equations, parameter_map
from lmcore.nn.architectures import RECURRENT, ModelConfig, count_params, hidden_for_budget, model_name
from lmcore.nn.feedforward import FeedforwardLM
from lmcore.nn.model import RNNLM, build_model
from lmcore.nn.sampling import sample_tokens
from lmcore.paths import DEMO_DIR
from lmcore.runs import service
from lmcore.runs.reports import best_runs, lecture_table
from lmcore.runs.store import RunStore
from lmcore.runs.sweeps import SweepSpec, expand
from lmcore.training.checkpoints import load_checkpoint
from lmcore.training.config import RunConfig
from lmcore.training.trainer import train

from .conftest import REPO, stored_run
from .test_context_use import brute_force
from .test_resume import _assert_same_ending, _close, _config
from .test_train import Recorder

VOCAB = 29


def ffnn(window: int = 5, direct: bool = False, tied: bool = False, bias: bool = True, emb: int = 6,
         hidden: int = 10, seed: int = 0) -> FeedforwardLM:
    torch.manual_seed(seed)
    cfg = ModelConfig(arch="ffnn", window=window, direct=direct, tied=tied, bias=bias, emb=hidden if tied else emb,
                      hidden=hidden, layers=1, dropout=0.0, vocab_size=VOCAB)
    return build_model(cfg).eval()


def ids_tensor(ids) -> torch.Tensor:
    return torch.as_tensor(np.asarray(ids, dtype=np.int64)).view(-1, 1)  # (T, 1)


# --- (a) the window --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("window, direct", [(2, False), (3, True), (5, False), (5, True)])
@torch.no_grad()
def test_only_the_n_minus_1_previous_words_change_the_prediction(window, direct):
    model = ffnn(window, direct)
    ids = np.random.default_rng(1).integers(0, VOCAB, 14)
    t = 10                                                # logits[t] predict word t + 1 from words t − n + 2 … t
    base = model(ids_tensor(ids))[0][t, 0]
    for back in range(window - 1, t + 1):                 # word t + 1 − back − 1 … : n − 1 or more words back
        changed = ids.copy()
        changed[t - back] = (changed[t - back] + 1) % VOCAB
        assert torch.equal(model(ids_tensor(changed))[0][t, 0], base), back
    for back in range(window - 1):                        # inside the window: words t − n + 2 … t
        changed = ids.copy()
        changed[t - back] = (changed[t - back] + 1) % VOCAB
        assert not torch.allclose(model(ids_tensor(changed))[0][t, 0], base, atol=1e-6), back


@torch.no_grad()
def test_a_recurrent_model_is_changed_by_a_word_far_back():
    """The control: the same change, well outside an FFNN's window, reaches an LSTM's prediction."""
    torch.manual_seed(0)
    lstm = RNNLM(ModelConfig(arch="lstm", emb=6, hidden=10, layers=1, dropout=0.0, vocab_size=VOCAB)).eval()
    ids = np.random.default_rng(1).integers(0, VOCAB, 14)
    changed = ids.copy()
    changed[2] = (changed[2] + 1) % VOCAB
    assert not torch.allclose(lstm(ids_tensor(ids))[0][10, 0], lstm(ids_tensor(changed))[0][10, 0], atol=1e-6)


@pytest.mark.parametrize("window", [2, 4, 7])
@torch.no_grad()
def test_chunks_with_the_carried_state_equal_the_whole_text(window):
    model = ffnn(window, direct=True)
    x = torch.as_tensor(np.random.default_rng(2).integers(0, VOCAB, (23, 3)))  # (T, B)
    whole, _, last = model(x)
    pieces, hidden, start = [], None, 0
    for size in (1, 2, 5, 1, 14):  # chunks shorter and longer than the window
        logits, _, hidden = model(x[start:start + size], hidden)
        pieces.append(logits)
        start += size
    assert start == x.size(0)
    assert torch.allclose(torch.cat(pieces), whole, atol=1e-6, rtol=0)
    assert torch.equal(hidden, last) and torch.equal(hidden, x[-(window - 1):])  # the state: the last n − 1 ids
    fresh = model.init_hidden(3)
    assert fresh.shape == (window - 1, 3) and (fresh == -1).all()


# --- (b) parameters ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("window", [2, 5])
@pytest.mark.parametrize("direct, tied", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("bias", [True, False])
def test_closed_form_count_equals_the_model(window, direct, tied, bias):
    model = ffnn(window, direct, tied, bias)
    assert count_params(model.cfg) == model.num_params()


def test_tied_direct_connections_are_refused():
    with pytest.raises(ValueError, match="direct connections D x need an untied W"):
        ffnn(5, direct=True, tied=True)


def test_the_count_by_hand():
    """n = 3, V = 50, E = 8, H = 12, biases, direct connections, W untied: x_i has (n − 1)·E = 16 numbers."""
    cfg = ModelConfig(arch="ffnn", window=3, direct=True, emb=8, hidden=12, layers=1, vocab_size=50)
    by_hand = 50 * 8 + 12 * 16 + 12 + 50 * 12 + 50 * 16 + 50  # e, V, b1, W, D, b2
    assert by_hand == 2054 == count_params(cfg) == build_model(cfg).num_params()
    assert model_name(cfg) == "FFNN-direct n=3"


def test_same_parameters_sizing_finds_the_ffnns_hidden_size():
    cfg = ModelConfig(arch="ffnn", window=5, emb=20, hidden=20, layers=1, tied=True, vocab_size=300)
    target = count_params(ModelConfig(arch="lstm", emb=20, hidden=20, layers=1, tied=True), 300)
    h = hidden_for_budget(cfg, target, 300)
    got = lambda size: count_params(replace(cfg, hidden=size, emb=size), 300)
    assert abs(got(h) - target) <= min(abs(got(h - 1) - target), abs(got(h + 1) - target))


# --- (c) context use ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo():
    model, cfg, vocab, _ = load_checkpoint(DEMO_DIR / "agreement-ffnn.pt")
    return model, cfg, vocab


def test_context_use_is_flat_from_n_minus_1_on_the_demo(demo):
    model, cfg, vocab = demo
    assert isinstance(model, FeedforwardLM) and cfg.model.window == 5
    from lmcore.corpus.loading import load_corpus
    corpus = load_corpus(cfg.corpus)
    assert {3, 4} <= set(CONTEXT_LENGTHS)
    table = context_perplexity(model, vocab.encode(corpus.vocab.decode(corpus.valid)), max_targets=3000)
    ppl = dict(zip(table["context"], table["ppl"]))
    window = [ppl[str(k)] for k in CONTEXT_LENGTHS if k >= 4] + [ppl["all"]]
    assert max(window) == pytest.approx(min(window), rel=1e-6)
    assert ppl["1"] > ppl["2"] > ppl["3"] > ppl["4"] * (1 + 1e-3)  # every word of the window helps
    assert ppl["1"] > 1.5 * ppl["4"]


def test_the_shared_start_trick_matches_one_window_per_target_for_the_ffnn():
    model = ffnn(4, direct=True, seed=3)
    ids = np.random.default_rng(5).integers(0, VOCAB, 120)
    lengths = (1, 2, 3, 6, 20)
    table = context_perplexity(model, ids, lengths=lengths, max_targets=80, batch=16)
    targets = np.arange(20, 100)
    for k in lengths:
        got = table.loc[table["context"] == str(k), "ppl"].item()
        assert got == pytest.approx(brute_force(model, ids, k, targets), rel=1e-5), k
    flat = table.loc[table["tokens"] >= 3, "ppl"]
    assert flat.max() == pytest.approx(flat.min(), rel=1e-6)


# --- the probability pages' computations on an FFNN --------------------------------------------------------------
def test_trace_reads_its_one_layer_and_the_forward_pass(demo):
    model, cfg, vocab = demo
    tokens = "the roses in the vase by the door are red .".split()
    tr = trace(model, vocab.encode(tokens), vocab, top_k=5)
    assert tr.names(0) == ["h"] and tr.quantity("h").shape == (len(tokens), cfg.model.hidden)
    assert np.abs(tr.quantity("h")).max() <= 1.0  # tanh
    with torch.no_grad():
        probs = torch.softmax(model(ids_tensor(vocab.encode(tokens)))[0][:, 0], dim=-1).numpy()
    assert np.allclose(tr.next_prob, probs[np.arange(len(tokens) - 1), vocab.encode(tokens)[1:]], atol=1e-6)
    assert np.allclose(tr.prob_mass, 1.0, atol=1e-5)


def test_sampling_is_seeded_and_reads_the_window(demo):
    model, _, vocab = demo
    prompt = vocab.encode("the roses in the vase".split())
    first = list(sample_tokens(model, prompt, 12, seed=4))
    assert first == list(sample_tokens(model, prompt, 12, seed=4)) and len(first) == 12
    assert first != list(sample_tokens(model, prompt, 12, seed=5))


def test_output_vectors_are_w_without_the_direct_connections():
    model = ffnn(4, direct=True)
    out = embedding_matrix(model, "output")
    assert model.decoder.weight.shape == (VOCAB, 10 + 3 * 6)
    assert out.shape == (VOCAB, 10) and np.array_equal(out, model.decoder.weight[:, :10].detach().numpy())
    assert embedding_matrix(model, "input").shape == (VOCAB, 6)
    tied = ffnn(3, tied=True)
    assert np.array_equal(embedding_matrix(tied, "output"), embedding_matrix(tied, "input"))


def test_measurements_through_time_refuse_the_ffnn_in_one_line():
    model = ffnn(3)
    ids = np.random.default_rng(0).integers(0, VOCAB, 100)
    for call in (lambda: input_sensitivity(model, ids[:10], 2), lambda: input_saliency(model, ids[:10], 5),
                 lambda: loss_gradient_decay(model, ids, K=5, positions=4)):
        with pytest.raises(ValueError, match="needs a recurrent model; FFNN n=3 carries no state through time"):
            call()


# --- notation, tables, sweeps ------------------------------------------------------------------------------------
def test_notation_gives_the_ffnns_equations_and_shapes():
    cfg = ModelConfig(arch="ffnn", window=5, direct=True, emb=8, hidden=12, layers=1, vocab_size=50)
    eqs = equations(cfg)
    assert eqs[0].startswith(r"x_i = [e(w_{i-4}); \dots; e(w_{i-1})]")
    assert eqs[1] == r"h_i = \tanh(V x_i + b_1)"
    assert eqs[2].startswith(r"y_i = \mathrm{softmax}(W h_i + D x_i + b_2)")
    assert not any("U" in e or "h_{t-1}" in e for e in eqs)  # no recurrence
    shapes = {r["symbol"]: r["shape"] for r in parameter_map(cfg)}
    assert shapes == {"e(w)": "(8,)", "x_i": "(32,)", "V": "(12, 32)", "b_1": "(12,)", "W": "(50, 12)",
                      "D": "(50, 32)", "b_2": "(50,)"}
    plain = replace(cfg, window=3, direct=False, bias=False)
    assert equations(plain)[2].startswith(r"y_i = \mathrm{softmax}(W h_i)")
    assert "D" not in {r["symbol"] for r in parameter_map(plain)}


def test_lecture_table_and_best_runs_place_the_ffnn(tmp_path):
    ff = RunConfig(model=ModelConfig(arch="ffnn", window=5, hidden=200, emb=200, layers=1, tied=True))
    lstm = RunConfig(model=ModelConfig(arch="lstm", hidden=200, layers=1))
    runs = [stored_run(tmp_path, ff, status="done", params=434_766, test_ppl=81.14, best_valid_ppl=74.21),
            stored_run(tmp_path, lstm, status="done", params=596_166, test_ppl=90.0, best_valid_ppl=80.0)]
    table = lecture_table(runs)
    assert table["method"].tolist() == ["FFNN n=5 (1 layer, 200 units, a window of 4 words)",
                                        "LSTM (1 layer, 200 units)"]
    best = best_runs(runs)
    assert best["ffnn"].id == runs[0].id  # the better perplexity, in a family of its own
    assert best["all"].id == runs[1].id and best["lstm"].id == runs[1].id  # the recurrent pages' run
    assert set(best_runs(runs[:1])) == {"ffnn"}


def test_a_sweep_with_the_ffnn_gives_it_one_layer():
    base = RunConfig(model=ModelConfig(layers=2, backend="cells", vocab_size=40))
    configs = expand(SweepSpec(base=base, archs=["lstm", "ffnn"], hidden=[16], seeds=[1]))
    lstm, ff = (c.model for c in configs)
    assert (lstm.arch, lstm.layers, lstm.backend) == ("lstm", 2, "cells")
    assert (ff.arch, ff.layers, ff.backend, ff.window) == ("ffnn", 1, "auto", 5)
    ff.validate()
    assert configs[1].name == "FFNN n=5 1×16 seed 1"


# --- (d) the CLI: train, store, checkpoint, resume, inspect -------------------------------------------------------
TINY = ["--corpus", "builtin:agreement", "--arch", "ffnn", "--emb", "16", "--hidden", "16", "--batch", "4",
        "--bptt", "10", "--epochs", "1", "--optimizer", "adam", "--lr", "0.01", "--device", "cpu", "--threads", "1",
        "--seed", "3"]


def test_cli_trains_an_ffnn_that_loads_back_with_its_window(lmcore_home, capsys):
    assert main(["train", *TINY, "--window", "3", "--max-steps", "5", "--json"]) == 0
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    store = RunStore(lmcore_home)
    [run] = store.list_runs()
    assert run.id == done["run_id"] and run.status == "done" and run.step == 5
    assert run.cfg.model.arch == "ffnn" and run.cfg.model.window == 3 and run.cfg.model.layers == 1
    model, cfg, vocab, _ = load_checkpoint(store.checkpoints(run.id)["best"]["path"])
    assert isinstance(model, FeedforwardLM) and model.context == 2 and cfg.model.window == 3
    assert run.params == model.num_params() == count_params(cfg.model)
    assert main(["train", *TINY, "--window", "1", "--max-steps", "5"]) == 2  # refused in one line
    assert "window n must be between 2" in capsys.readouterr().err


def test_cli_resume_of_an_ffnn_ends_like_an_uninterrupted_run(lmcore_home, capsys):
    assert main(["train", *TINY, "--max-steps", "12", "--json"]) == 0
    assert main(["train", *TINY, "--max-steps", "5", "--json"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "2", "--max-steps", "12", "--json"]) == 0
    store = RunStore(lmcore_home)
    whole, resumed = store.get_run(1), store.get_run(2)
    assert resumed.status == "done" and resumed.step == whole.step == 12
    assert [m["step"] for m in store.metrics(2)] == [5, 12]  # the cut's evaluation, then the end's
    assert _close(store.metrics(1)[-1]["valid_ppl"], store.metrics(2)[-1]["valid_ppl"])
    wa = load_checkpoint(store.checkpoints(1)["last"]["path"])[0].state_dict()
    wb = load_checkpoint(store.checkpoints(2)["last"]["path"])[0].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_resumed_ffnn_carries_its_window_and_dropout_draws_across_the_cut(grammar_file, tmp_path):
    """As the recurrent models (tests/test_resume.py): cut mid-epoch, resumed, the same metrics to the end."""
    a_hooks = Recorder()
    ra = train(_config(grammar_file, "ffnn", "adam"), tmp_path / "a", a_hooks)
    first = train(_config(grammar_file, "ffnn", "adam", max_steps=37), tmp_path / "b", Recorder())
    assert first.step == 37
    b_hooks = Recorder()
    rb = train(_config(grammar_file, "ffnn", "adam"), tmp_path / "b", b_hooks, resume_from=tmp_path / "b" / "last.pt")
    assert b_hooks.start["resumed_at"] == 37
    _assert_same_ending(a_hooks, ra, b_hooks, rb, 37)


@pytest.mark.parametrize("command", [["decay"], ["saliency", "--text", "the roses in the vase are"]])
def test_cli_inspections_through_time_refuse_an_ffnn_in_one_line(command, capsys):
    assert main(["inspect", command[0], "--run", "demo:agreement-ffnn", *command[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith(f"error: inspect {command[0]} (") and "needs a recurrent model" in err


def test_cli_trace_context_and_sample_take_an_ffnn(capsys):
    assert main(["inspect", "trace", "--run", "demo:agreement-ffnn", "--text", "the roses are red", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["token"] for r in rows] == ["the", "roses", "are", "red"] and rows[0]["gates"] == [{}]
    assert main(["inspect", "context", "--run", "demo:agreement-ffnn", "--max-targets", "500", "--json"]) == 0
    ppl = {r["context"]: r["ppl"] for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert ppl["4"] == pytest.approx(ppl["200"], rel=1e-6) and ppl["3"] > ppl["4"]
    assert main(["sample", "demo:agreement-ffnn", "-n", "6", "--seed", "2"]) == 0
    assert capsys.readouterr().out.strip()


# --- (e) the pages ------------------------------------------------------------------------------------------------
def app(page: str, **params) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chooser_labels(at: AppTest) -> list[str]:
    """Every option of every run chooser on the page (the labels shown, "demo · FFNN n=5 1×128 · agreement")."""
    return [o for w in [*at.selectbox, *at.multiselect] if (w.key or "").startswith("pick_") for o in w.options]


def test_train_page_queues_a_valid_ffnn_from_its_preset(lmcore_home, end_job_processes):
    at = app("views/train.py", corpus="builtin:agreement", tokenizer="words")
    at.slider[0].set_value(1).run()
    at.selectbox(key="preset1").set_value("FFNN").run()
    assert not at.exception, [e.value for e in at.exception]
    labels = {w.label for w in [*at.number_input, *at.checkbox, *at.selectbox]}
    assert {"Window n", "Direct connections D x"} <= labels
    assert "Layers" not in labels and "Activation f (Elman)" not in labels and "LSTM variant" not in labels
    assert any(c.value.startswith("Layers: 1, the feedforward model's one hidden layer") for c in at.caption)
    assert at.number_input(key="win1").value == 5 and at.number_input(key="win1").min == 2
    assert at.number_input(key="win1").max == 64
    at.number_input(key="win1").set_value(3)
    at.checkbox(key="direct1").check()
    at.number_input(key="hid1").set_value(16)
    at.number_input(key="emb1").set_value(8)
    at.number_input[0].set_value(1)  # epochs
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("W untied" in c.value for c in at.caption)
    count = next(c.value for c in at.caption if "** parameters" in c.value)
    assert count.startswith("reads the 2 previous words · 1×16 units")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    [run_id] = [int(x) for x in at.query_params["show"].split(",")]
    store = RunStore(lmcore_home)
    m = store.get_run(run_id).cfg.model
    assert (m.arch, m.window, m.direct, m.tied, m.layers, m.hidden, m.emb) == ("ffnn", 3, True, False, 1, 16, 8)
    [finished] = service.wait_for(store, [run_id], timeout=300)
    assert finished.status == "done", finished.message
    assert finished.params == count_params(m, finished.vocab) and int(count.split("**")[1].replace(",", "")) == \
        finished.params


@pytest.mark.parametrize("page, what", [("views/hidden.py", "hidden states over the text"),
                                        ("views/gates.py", "gates"), ("views/gradients.py", "gradient through time")])
def test_pages_through_time_leave_the_ffnn_out_and_say_why(lmcore_home, page, what):
    at = app(page, run="demo:agreement-ffnn", decay_runs="demo:agreement-ffnn,demo:agreement-lstm")
    labels = chooser_labels(at)
    assert labels and not any("FFNN" in label for label in labels)
    assert any("LSTM" in label for label in labels)
    note = [c.value for c in at.caption if c.value.startswith("The feedforward model (FFNN) is not listed")]
    assert note == [f"The feedforward model (FFNN) is not listed: it carries no state through time, so it has no "
                    f"{what}; its context is the fixed window of the n − 1 previous words (see Markov vs memory)."]


def test_next_word_reads_and_samples_the_ffnn_demo(lmcore_home):
    at = app("views/next_word.py", run="demo:agreement-ffnn", nw_sampled="1", nw_prompt="the roses", nw_seed="3")
    assert at.selectbox(key="pick_run").value == "demo:agreement-ffnn"
    assert any("FFNN" in label for label in chooser_labels(at))
    assert len(at.get("plotly_chart")) == 1 and at.metric
    assert any("the roses" in h.proto.body for h in at.get("html"))  # the sample after its prompt
    assert any(r"\tanh(V x_i" in e.value for e in at.latex)  # its own equations, no recurrence


def test_markov_vs_memory_measures_the_ffnn_demo(lmcore_home):
    at = app("views/memory.py", runs_view="demo:agreement-ffnn,demo:agreement-lstm", mem_context="1",
             mem_targets="2000")
    assert len(at.get("plotly_chart")) == 2  # agreement by distance, context use
    agreement = at.dataframe[0].value
    assert any("FFNN" in str(c) for c in agreement.columns)
    context = at.dataframe[-1].value.set_index("context")
    ff = context[next(c for c in context.columns if "FFNN" in c)]
    assert ff["1"] > ff["3"] > ff["4"] and ff["4"] == ff["5"] == ff["200"] == ff["all"]  # rounded to 0.1
    lstm = context[next(c for c in context.columns if "LSTM" in c)]
    assert lstm["4"] > lstm["200"]  # the recurrent one keeps gaining past the window


def test_compare_places_an_ffnn_run_and_sends_it_where_it_applies(lmcore_home):
    ff = RunConfig(model=ModelConfig(arch="ffnn", window=5, hidden=200, emb=200, layers=1, tied=True))
    lstm = RunConfig(model=ModelConfig(arch="lstm", hidden=200, emb=200, layers=1, tied=True))
    f = stored_run(lmcore_home, ff, status="done", params=434_766, test_ppl=81.14, best_valid_ppl=74.21)
    r = stored_run(lmcore_home, lstm, status="done", params=596_166, test_ppl=75.0, best_valid_ppl=67.9)
    at = app("views/compare.py")
    table = at.dataframe[0].value
    assert table.loc[table["run"] == f.id, "architecture"].item() == "FFNN n=5"
    lecture = at.dataframe[1].value
    assert "FFNN n=5 (1 layer, 200 units, a window of 4 words)" in lecture["method"].tolist()
    links = {link.proto.page.split("/")[-1].removesuffix(".py"): link.proto.query_string
             for link in at.get("page_link")}
    assert links["next_word"].endswith(f"run%3A{f.id}") and links["memory"].endswith(f"run%3A{f.id}")
    assert links["hidden"].endswith(f"run%3A{r.id}")                    # the recurrent run, not the better FFNN
    assert f"run%3A{f.id}" not in links["gradients"] and f"run%3A{r.id}" in links["gradients"]


def test_word_representations_of_an_ffnn(lmcore_home):
    at = app("views/embeddings.py", run="demo:agreement-ffnn", vectors="output", method="PCA", words="50")
    assert at.selectbox(key="pick_run").value == "demo:agreement-ffnn"
    assert at.get("plotly_chart") and at.dataframe


def test_recurrent_architectures_are_the_four_with_a_state():
    assert RECURRENT == ("elman", "irnn", "lstm", "gru")
    assert not ModelConfig(arch="ffnn", layers=1).recurrent and all(ModelConfig(arch=a).recurrent for a in RECURRENT)
