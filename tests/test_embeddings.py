"""Word representations: PCA, cosine neighbours, frequency order, escaped labels; the page via AppTest.
The t-SNE map, its labels and its URL are in test_projection.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lmcore.corpus.vocab import Vocab
from lmcore.inspect.embeddings import (
    cosine_neighbours,
    embedding_matrix,
    find_word,
    most_frequent_ids,
    neighbour_table,
    pca,
)
from lmcore.nn.architectures import ModelConfig
from lmcore.nn.model import RNNLM
from lmcore.viz.embeddings import word_map_figure

from .test_pages import open_page


@pytest.fixture(autouse=True)
def home(lmcore_home):
    return lmcore_home


def test_pca_recovers_a_dominant_direction():
    rng = np.random.default_rng(0)
    direction = np.array([3.0, 4.0, 0.0, 0.0]) / 5
    points = 5 + rng.normal(size=(200, 1)) * 10 * direction + rng.normal(size=(200, 4)) * 0.1  # offset: must centre
    proj = pca(points, 2)
    assert abs(proj.components[0] @ direction) > 0.999
    assert proj.explained[0] > 0.99 and proj.explained.sum() <= 1 + 1e-12
    assert np.allclose(np.linalg.norm(proj.components, axis=1), 1)
    assert proj.coords.shape == (200, 2) and abs(proj.coords.mean(axis=0)).max() < 1e-9
    assert np.isclose(pca(points, 4).explained.sum(), 1)  # every direction: all of the variance


def test_cosine_neighbours_on_a_hand_made_matrix():
    m = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [-1.0, 0.0], [0.7, 0.7]])
    ids, sims = cosine_neighbours(m, 0, k=10)
    assert ids.tolist() == [1, 4, 2, 3]  # itself left out; scale does not matter, only direction
    np.testing.assert_allclose(sims, [2 / np.hypot(2, 0.1), np.sqrt(0.5), 0, -1], atol=1e-12)
    assert cosine_neighbours(m, 0, k=10, among=3)[0].tolist() == [1, 2]  # only the first (most frequent) rows


def test_most_frequent_words_and_lookup():
    vocab = Vocab.build("b a b c b a <eos> d".split())
    assert vocab.itos[:2] == ["<unk>", "<eos>"]
    assert vocab.decode(most_frequent_ids(vocab, 2)) == ["b", "a"]
    assert find_word(vocab, " B ", lowercase=True) == (vocab.stoi["b"], [])
    wid, close = find_word(Vocab.build("roses vase door".split()), "rose")
    assert wid is None and close == ["roses"]
    table = neighbour_table(np.eye(len(vocab)) + 0.1, vocab, vocab.stoi["b"], k=3)
    assert len(table) == 3 and set(table.columns) >= {"word", "cosine similarity", "frequency rank"}


@pytest.mark.parametrize("tied", [True, False])
def test_input_and_output_matrices(tied):
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(arch="lstm", emb=8, hidden=8, layers=1, vocab_size=20, tied=tied))
    x, w = embedding_matrix(model, "input"), embedding_matrix(model, "output")
    assert x.shape == w.shape == (20, 8) and np.array_equal(x, w) == tied
    with pytest.raises(ValueError):
        embedding_matrix(model, "hidden")


def test_map_figure_labels_are_escaped():
    words = ["<b>bold</b>", "<img src=x onerror=alert(1)>", "plain"]
    fig = word_map_figure(np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 5.0]]), words, [0.5, 0.25, 1.0])
    labels = fig.data[-1]
    assert list(labels.text) == ["&lt;b&gt;bold&lt;/b&gt;", "&lt;img src=x onerror=alert(1)&gt;", "plain"]
    assert all("<img" not in h and "<b>bold" not in h for h in fig.data[0].hovertext)
    assert "neighbours kept 25%" in fig.data[0].hovertext[1]


def test_page_draws_the_map_and_finds_neighbours():
    at = open_page("views/embeddings.py")
    assert len(at.get("plotly_chart")) == 1
    assert len(at.dataframe[-1].value) == 10 and "cosine similarity" in at.dataframe[-1].value.columns
    at.select_slider(key="among").set_value(100).run()
    assert len(at.dataframe[-1].value) == 10 and at.dataframe[-1].value["frequency rank"].max() < 100
    at.slider(key="words").set_value(30).run()
    at.radio(key="vectors").set_value("output").run()
    at.radio(key="method").set_value("PCA").run()
    assert not at.exception and len(at.get("plotly_chart")) == 1
    assert any("PCA of the 30 most frequent" in c.value for c in at.caption)


def test_page_answers_an_unknown_word_with_a_message():
    at = open_page("views/embeddings.py")
    at.text_input(key="word").set_value("<script>zzzq</script>").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.warning and "not in this run's vocabulary" in at.warning[0].value
