"""Word maps (issue 13, item 6): t-SNE finds planted groups, the score of neighbours kept, labels that never
overlap, and the page opened on a demo run from its URL."""
from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lmcore.inspect.embeddings import neighbours_kept, word_map
from lmcore.viz.embeddings import (SPOTS, label_box, label_size, place_labels, plot_size, to_pixels,
                                   word_map_figure)

from .conftest import REPO
from .test_pages import TIMEOUT


def planted_clusters(groups: int = 5, per_group: int = 40, dim: int = 32, seed: int = 0):
    """Rows in `groups` tight bunches around random directions, and each row's group."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim))
    labels = np.repeat(np.arange(groups), per_group)
    return centres[labels] + 0.15 * rng.normal(size=(len(labels), dim)), labels


def map_neighbours(coords: np.ndarray, k: int) -> np.ndarray:
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1)[:, :k]


def test_tsne_separates_planted_groups_and_is_deterministic_for_a_seed():
    x, labels = planted_clusters()
    ids = np.arange(len(x))
    tsne = word_map(x, ids, "t-SNE", perplexity=15, seed=0)
    same_group = labels[map_neighbours(tsne.coords, 10)] == labels[:, None]
    assert same_group.mean() == 1.0  # every word's 10 nearest on the map are of its own group
    assert tsne.score > 0.5 > 10 / (len(x) - 1) * 5  # far above a random map's ~5%
    again = word_map(x, ids, "t-SNE", perplexity=15, seed=0)
    np.testing.assert_array_equal(tsne.coords, again.coords)


def test_tsne_map_lies_along_x_and_pca_reports_variance():
    x, _ = planted_clusters(groups=3, per_group=30)
    tsne = word_map(x, np.arange(len(x)), "t-SNE")
    assert tsne.coords.shape == (90, 2) and tsne.explained is None and tsne.perplexity == pytest.approx(89 / 3)
    assert np.ptp(tsne.coords[:, 0]) >= np.ptp(tsne.coords[:, 1])  # long side along the screen's width
    pca = word_map(x, np.arange(len(x)), "PCA")
    assert pca.perplexity is None and 0 < pca.explained.sum() <= 1
    with pytest.raises(ValueError):
        word_map(x, np.arange(10), "UMAP")


def test_perplexity_is_capped_below_the_number_of_words():
    x, _ = planted_clusters(groups=2, per_group=5)
    small = word_map(x, np.arange(10), "t-SNE", perplexity=50)
    assert small.perplexity == 3.0 and np.isfinite(small.coords).all()


def test_neighbours_kept_is_one_for_an_identity_map_and_low_for_a_random_one():
    rng = np.random.default_rng(1)
    angles = rng.uniform(0, 2 * np.pi, 300)
    circle = np.column_stack([np.cos(angles), np.sin(angles)])  # unit rows: cosine order = distance order
    assert neighbours_kept(circle, circle).min() == 1.0
    wide = rng.normal(size=(300, 16))
    assert neighbours_kept(wide, rng.normal(size=(300, 2))).mean() < 0.1  # chance: 10/299


def overlapping_pairs(boxes: np.ndarray) -> int:
    left, bottom, right, top = boxes.T
    apart = ((right[:, None] <= left[None]) | (right[None] <= left[:, None])
             | (top[:, None] <= bottom[None]) | (top[None] <= bottom[:, None]))
    np.fill_diagonal(apart, True)
    return int((~apart).sum() // 2)


@pytest.mark.parametrize("seed", range(3))
def test_placed_labels_never_overlap_and_stay_inside(seed):
    rng = np.random.default_rng(seed)
    anchors = rng.uniform(0, 400, size=(500, 2))  # crowded: most labels cannot fit
    sizes = np.array([label_size("w" * n) for n in rng.integers(1, 15, 500)])
    placed = place_labels(anchors, sizes, range(500), bounds=(400, 400))
    boxes = np.array([label_box(anchors[i], sizes[i], spot) for i, spot in placed.items()])
    assert 20 < len(placed) < 500 and 0 in placed  # the first wanted always gets a spot
    assert overlapping_pairs(boxes) == 0
    assert boxes[:, :2].min() >= 0 and boxes[:, 2].max() <= 400 and boxes[:, 3].max() <= 400
    assert set(placed.values()) == set(SPOTS)  # crowding pushes labels to every side


def test_labels_are_all_placed_when_there_is_room_and_overlap_check_bites():
    anchors = np.array([[0.0, 0.0], [200.0, 0.0], [0.0, 200.0]])
    sizes = np.array([label_size("word")] * 3)
    assert place_labels(anchors, sizes, [2, 0, 1]) == {2: "top center", 0: "top center", 1: "top center"}
    crowded = place_labels(np.zeros((5, 2)), np.array([label_size("word")] * 5), range(5))
    assert crowded == {0: "top center", 1: "bottom center"}  # beside the point they would cover those two


def test_map_figure_draws_equal_axes_escaped_labels_and_the_highlight_first():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(300, 2)) * [3, 1]
    coords[[150, 3]] = [[-12, 0], [12, 0]]  # the highlighted two apart, at the map's ends
    words = ["<b>bold</b>"] + [f"w{i}" for i in range(299)]
    fig = word_map_figure(coords, words, np.linspace(0, 1, 300), highlight=[150, 3])
    markers, red, labels = fig.data
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    assert list(labels.text[:2]) == ["w149", "w2"]  # the highlighted word and its neighbour are labelled first
    assert "&lt;b&gt;bold&lt;/b&gt;" in markers.hovertext[0] and "<b>bold" not in markers.hovertext[0]
    assert len(red.x) == 2 and red.marker.size[0] > red.marker.size[1]
    placed = {int(np.flatnonzero((coords == [x, y]).all(axis=1))[0]): p
              for x, y, p in zip(labels.x, labels.y, labels.textposition)}
    size = plot_size(coords)
    anchors = to_pixels(coords, size)
    sizes = np.array([label_size(w) for w in words])
    assert overlapping_pairs(np.array([label_box(anchors[i], sizes[i], p) for i, p in placed.items()])) == 0
    assert fig.layout.height == int(size[1]) + 50 and size[1] < size[0]  # a wide map gets a short figure


def open_embeddings(**params) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    at.switch_page("views/embeddings.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_opens_on_a_demo_with_tsne_and_reopens_from_its_url():
    at = open_embeddings(run="demo:agreement-lstm")
    assert at.radio(key="method").value == "t-SNE" and len(at.get("plotly_chart")) == 1
    kept = at.metric[0]
    assert kept.label == "Neighbours kept" and int(kept.value.rstrip("%")) > 50 and "vs PCA" in kept.delta
    assert any("t-SNE (scikit-learn" in c.value for c in at.caption)

    at = open_embeddings(run="demo:agreement-lstm", vectors="output", method="PCA", words="50", perplexity="10",
                         word="cat", among="100")
    assert at.selectbox(key="pick_run").value == "demo:agreement-lstm"
    assert (at.radio(key="vectors").value, at.radio(key="method").value) == ("output", "PCA")
    assert (at.slider(key="words").value, at.slider(key="perplexity").value) == (50, 10)
    assert at.text_input(key="word").value == "cat" and at.select_slider(key="among").value == 100
    assert at.dataframe[-1].value["frequency rank"].max() < 100
    assert any("PCA of the 50 most frequent" in c.value for c in at.caption)
