"""Next word: escaped surprisal HTML, the top-k bars, ranks, text pieces, seeded sampling; the page via AppTest."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lmcore.corpus.tokenize import detokenize
from lmcore.corpus.vocab import Vocab
from lmcore.inspect.next_word import next_token_ranks, prompt_tokens, sample_pieces, surprisal_table, text_pieces
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import RNNLM
from lmcore.nn.sampling import prompt_ids
from lmcore.paths import DEMO_DIR
from lmcore.training.checkpoints import load_checkpoint
from lmcore.viz.next_word import HIGHLIGHT, sample_html, surprisal_html, topk_figure

from .test_pages import open_page

SCRIPT, IMG = "<script>alert(1)</script>", "<img src=x onerror=alert(1)>"


@pytest.fixture(autouse=True)
def home(lmcore_home):
    return lmcore_home


def tiny_model(vocab_size=12):
    torch.manual_seed(0)
    return RNNLM(ModelConfig(arch="gru", emb=8, hidden=8, layers=1, vocab_size=vocab_size, dropout=0.0)).eval()


def test_surprisal_html_escapes_tokens_and_carries_the_bits():
    tokens = ["a", SCRIPT, IMG, "it's", "<eos>"]
    page = surprisal_html(tokens, np.array([1.5, 7.25, 0.5, 2.0]), selected=1)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script" not in page and "<img" not in page
    assert "it&#x27;s" in page and "it's" not in page  # a quote cannot end the title='...' attribute
    assert "7.25 bits" in page and "1.50 bits" in page and "first token" in page
    spans = page.split("<span title=")
    assert f"outline:2px solid {HIGHLIGHT}" in spans[2] and f"outline:2px dashed {HIGHLIGHT}" in spans[3]


def test_topk_figure_shows_the_distribution_with_the_actual_token_marked():
    words, probs = ["the", "<unk>", "a", "cat"], [0.5, 0.25, 0.15, 0.1]
    fig = topk_figure(words, probs, actual="a")
    bar = fig.data[0]
    assert list(bar.x) == probs and list(bar.y) == ["the", "&lt;unk&gt;", "a", "cat"]
    assert [c == HIGHLIGHT for c in bar.marker.color] == [False, False, True, False]
    assert list(bar.text) == ["0.500", "0.250", "0.150", "0.100"]
    assert fig.layout.yaxis.autorange == "reversed"  # the most probable on top


def test_ranks_match_a_sort_of_the_full_distribution():
    model, ids = tiny_model(), np.random.default_rng(1).integers(0, 12, 30)
    with torch.no_grad():
        probs = torch.softmax(model(torch.as_tensor(ids).view(-1, 1))[0][:, 0], -1).numpy()
    expected = [1 + int(np.sum(probs[t] > probs[t, ids[t + 1]])) for t in range(29)]
    assert next_token_ranks(model, ids).tolist() == expected


def test_surprisal_table_gives_perplexity_two_to_the_mean():
    table = dict(surprisal_table(["x", "a", "b", "c"], np.array([1.0, 2.0, 3.0]), np.array([1, 2, 1])).values)
    assert table["mean surprisal (bits/token)"] == "2.000" and table["perplexity = 2^mean"] == "4.00"
    assert table["most surprising token"].startswith("c (3.00")
    assert table["actual next token was the first guess"] == "66.7%"


@pytest.mark.parametrize("kind", ["words", "char"])
def test_text_pieces_join_into_the_detokenized_text(kind):
    tokens = ["the", "cat", "<eos>", "a", "dog", ".", "<eos>"] if kind == "words" else list("ab c") + ["<eos>", "d"]
    assert "".join(text_pieces(tokens, kind)) == detokenize(tokens, kind)
    assert prompt_tokens("The cat\nsat", "words", True) == ["the", "cat", "<eos>", "sat"]


def test_sampling_is_seeded():
    model, vocab = tiny_model(), Vocab(["<unk>", "<eos>"] + [f"w{i}" for i in range(10)])
    run = lambda seed: "".join(sample_pieces(model, vocab, ["w1"], "words", 30, 1.5, 0, seed))
    assert run(3) == run(3) and run(3) != run(4)
    assert run(3).startswith(" ")  # continues the prompt's line
    assert sample_html(SCRIPT, "<b>").count("&lt;") == 3 and "<script" not in sample_html(SCRIPT, "")


def test_a_sample_reads_its_prompt_as_a_line_start():
    """Every line the model trained on came after an <eos>: the sampler reads <eos> before the prompt, as the
    agreement probe reads its sentences, so its first word is the one the model expects at a line's start."""
    model, _, vocab, _ = load_checkpoint(DEMO_DIR / "agreement-lstm.pt")
    prompt = "the boy".split()  # read from a zero state without the <eos>, its first guess was "." (0.34)
    ids = prompt_ids(vocab, prompt)
    assert ids[0] == vocab.eos_id and ids[1:] == list(vocab.encode(prompt)) and prompt_ids(vocab, ["<eos>"]) == [1]
    with torch.no_grad():
        expected = int(model(torch.tensor(ids).view(-1, 1))[0][-1, 0].argmax())
    first = next(sample_pieces(model, vocab, prompt, "words", 1, temperature=1e-4, seed=0)).strip()
    assert first == vocab.itos[expected] == "that"  # a relative clause, as sentences of this corpus go on


def html_bodies(at) -> str:
    return " ".join(h.proto.body for h in at.get("html"))


def test_page_shows_chart_mass_and_rank():
    at = open_page("views/next_word.py")
    assert len(at.get("plotly_chart")) == 1
    metrics = {m.label: m.value for m in at.metric}
    assert next(v for k, v in metrics.items() if k.startswith("Total probability")) == "1.000"
    assert int(next(v for k, v in metrics.items() if k.startswith("Its rank (of"))) >= 1
    assert "bits" in html_bodies(at)
    at.slider[0].set_value(at.slider[0].max).run()  # the last token: no next token, still a distribution
    assert not at.exception and len(at.get("plotly_chart")) == 1


def test_page_escapes_typed_text():
    at = open_page("views/next_word.py")
    at.radio[0].set_value("type my own").run()
    at.text_area[0].set_value(f"the roses {SCRIPT} are {IMG} red .").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = html_bodies(at)
    assert "&lt;" in shown and "onerror" in shown and "<script" not in shown and "<img" not in shown
    assert "read as &lt;unk&gt;" in shown  # script, img... are not in the demo's vocabulary
    at.text_input[0].set_value(SCRIPT)
    at.button[0].click().run()
    assert "&lt;script&gt;" in html_bodies(at) and "<script" not in html_bodies(at)


def sample_through_page(seed: int) -> str:
    at = open_page("views/next_word.py")
    at.text_input[0].set_value("the roses")
    at.number_input[-1].set_value(seed)  # Seed
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at.get("html")[-1].proto.body


def test_sampling_through_the_page_is_deterministic():
    first = sample_through_page(7)
    assert "the roses" in first and first == sample_through_page(7)
    assert first != sample_through_page(8)  # the seed is what the page passes on
