"""Hidden states: unit ordering, the regex feature, pattern search, the figures, and the page."""
from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lmcore.inspect.hidden import (MAX_PATTERN, WORD_FEATURES, correlation, matches_table, order_units,
                                   regex_feature, search_pattern, select_units, token_text)
from lmcore.viz.hidden import WINDOW, coloured_text_html, heatmap_figure

from .conftest import REPO

# 6 tokens × 4 units: u0 constant, u1 swings widely, u2 follows the feature (high mean), u3 is its opposite.
FEATURE = np.array([0, 1, 1, 0, 1, 0])
M = np.array([[0.1, -0.9, 0.5, 0.3],
              [0.1, 0.9, 0.9, -0.5],
              [0.1, -0.8, 0.9, -0.5],
              [0.1, 0.8, 0.5, 0.3],
              [0.1, -0.9, 0.9, -0.5],
              [0.1, 0.9, 0.5, 0.3]])


def test_order_by_variance_mean_and_correlation():
    order, scores = order_units(M, "variance")
    assert list(order) == [1, 3, 2, 0] and np.all(np.diff(scores) <= 0)
    order, scores = order_units(M, "mean")
    assert list(order) == [2, 0, 1, 3] and np.isclose(scores[0], 0.7)
    order, scores = order_units(M, "correlation", FEATURE)
    assert set(order[:2]) == {2, 3} and order[-1] == 0     # |r| first: u2 (r = +1) and u3 (r = -1)
    r = correlation(M, FEATURE)
    assert np.isclose(r[2], 1) and np.isclose(r[3], -1) and r[0] == 0  # a constant unit has r = 0, not NaN
    assert list(order_units(M, "unit")[0]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="feature"):
        order_units(M, "correlation")


def test_regex_feature_marks_tokens_inside_quotes_and_parentheses():
    tokens = 'he said " hello there " ( and , then ) . <eos> so'.split()
    quotes = regex_feature(tokens, WORD_FEATURES["inside quotes"])
    assert [t for t, f in zip(tokens, quotes) if f] == ["hello", "there"]
    parens = regex_feature(tokens, WORD_FEATURES["inside parentheses"])
    assert [t for t, f in zip(tokens, parens) if f] == ["and", ",", "then"]
    comma = regex_feature(tokens, WORD_FEATURES["after a comma"])
    assert [t for t, f in zip(tokens, comma) if f] == ["then"]
    whole = regex_feature(tokens, r"said \S+")  # no group: the whole match, over two tokens
    assert list(np.flatnonzero(whole)) == [1, 2]
    text, starts, ends = token_text(tokens)
    assert text.startswith('he said "') and "\n" in text and text[starts[-1]:ends[-1]] == "so"


def test_regex_feature_on_characters_joined_without_spaces():
    tokens = list('a "bc" d')
    assert "".join(t for t, f in zip(tokens, regex_feature(tokens, r'"(\w+)"', sep="")) if f) == "bc"


@pytest.mark.parametrize("pattern, message", [("(unclosed", "not a valid regular expression"),
                                              ("[a-", "not a valid regular expression"),
                                              ("", "empty"),
                                              ("a" * (MAX_PATTERN + 1), "at most 200")])
def test_bad_regex_raises_a_clear_value_error(pattern, message):
    with pytest.raises(ValueError, match=message):
        regex_feature(["a", "b"], pattern)


def test_backtracking_regex_is_stopped_and_long_text_refused():
    with pytest.raises(ValueError, match="longer than"):
        regex_feature(["a" * 40 + "!"], r"(a+)+$", timeout=0.5)
    with pytest.raises(ValueError, match="characters"):
        regex_feature(["word"] * 30_000, "w")


def planted(seed=0):
    """40 positions × 12 units of noise below 0.3; units 2, 5, 7 on at 10..13 and at 30..33."""
    values = np.random.default_rng(seed).uniform(-1, 0.25, (40, 12))
    values[10:14, [2, 5, 7]] = 0.9
    values[30:34, [2, 5, 7]] = 0.8
    values[20:22, [2, 5]] = 0.8  # a partial echo: two of the three units
    return values


def test_pattern_search_finds_the_planted_pattern_first():
    values = planted()
    units = select_units(values, 10, 13, 0.3)
    assert list(units) == [2, 5, 7]
    matches = search_pattern(values, units, 0.3, exclude=(10, 13))
    assert (matches[0].start, matches[0].end, matches[0].fraction) == (30, 33, 1.0)
    assert all(not (m.start <= 13 and m.end >= 10) for m in matches)  # the selection itself is left out
    relaxed = search_pattern(values, units, 0.3, min_fraction=0.6, exclude=(10, 13))
    assert relaxed[0].start == 30 and any(m.start == 20 and np.isclose(m.fraction, 2 / 3) for m in relaxed)
    table = matches_table(matches, [f"w{i}" for i in range(40)])
    assert table["text"].iloc[0] == "w30 w31 w32 w33" and "[w30" in table["in context"].iloc[0]


def test_pattern_units_must_be_off_just_before_the_span():
    values = planted()
    values[9, 5] = 0.9  # unit 5 was already on: it does not switch on at the span
    assert list(select_units(values, 10, 13, 0.3)) == [2, 7]
    with pytest.raises(ValueError, match="span"):
        select_units(values, 38, 45, 0.3)


def test_coloured_text_escapes_tokens_and_shows_values_on_hover():
    tokens = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", 'say "hi"', "<eos>"]
    out = coloured_text_html(tokens, np.array([0.5, -1.0, 0.0, 0.25]), "h[3]")
    assert "<script" not in out and "<img" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out and "&lt;img src=x onerror=alert(1)&gt;" in out
    assert 'title="1 &lt;img src=x onerror=alert(1)&gt;: h[3] = -1.000"' in out
    assert "&quot;hi&quot;" in out and "rgb(33,102,172)" in out  # the most negative value is full blue


def test_a_quantity_never_negative_is_coloured_from_0_to_its_largest_value():
    """The Gradients page's saliency, ‖∂ log p/∂x‖: its legend had read "-3.61 0 3.61", half of it for nothing."""
    out = coloured_text_html(["a", "b", "c"], np.array([0.0, 1.0, 4.0]), "‖∂ log p/∂x‖")
    legend = out.split("</div>")[0]
    assert "&nbsp;0&nbsp;" in legend and "&nbsp;4&nbsp;" in legend and "-4" not in legend
    assert "rgb(33,102,172)" not in out  # no blue: the scale starts white at 0


def test_heatmap_of_2000_tokens_carries_only_the_window():
    values = np.random.default_rng(1).uniform(-1, 1, (2000, 256))
    tokens = [f"t{i}" for i in range(2000)]
    fig = heatmap_figure(values, tokens, np.arange(256)[::-1], start=900)
    (heat,) = fig.data
    assert np.asarray(heat.z).shape == (256, WINDOW) and len(heat.x) == WINDOW
    assert heat.x[0] == "900 t900" and heat.y[0] == "u255"
    np.testing.assert_allclose(np.asarray(heat.z)[0, 0], values[900, 255])
    assert f"900–{899 + WINDOW} of 2000" in fig.layout.title.text and "slide the window" in fig.layout.title.text
    last = heatmap_figure(values, tokens, start=5000)  # the window stays inside the text
    assert last.data[0].x[-1] == "1999 t1999"
    with_feature = heatmap_figure(values[:50], tokens[:50], feature=np.arange(50) % 2, highlight=(3, 6))
    assert len(with_feature.data) == 2 and "all 50 tokens" in with_feature.layout.title.text


def open_hidden(at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("views/hidden.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_hidden_page_on_a_demo_run(lmcore_home):
    at = open_hidden()
    at.selectbox(key="pick_run").set_value("demo:python-docs-lstm").run()
    at.number_input(key="hidden_text_len").set_value(600).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 1 and at.slider(key="window")  # 600 tokens: a window slider
    at.radio(key="quantity").set_value("c").run()
    at.selectbox(key="sort").set_value("correlation").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "The feature marks" in " ".join(c.value for c in at.caption)
    at.selectbox(key="feature").set_value("my own").run()
    at.text_input(key="pattern").set_value("(unclosed").run()
    assert at.error and "not a valid regular expression" in at.error[0].value
    at.text_input(key="pattern").set_value(r"\b(the)\b").run()
    assert not at.error and len(at.get("plotly_chart")) == 1
    at.number_input(key="hidden_text_len").set_value(200).run()
    at.radio(key="quantity").set_value("h").run()
    at.number_input(key="threshold").set_value(0.3).run()
    at.slider(key="span").set_value((5, 5)).run()  # "false" in "... truth values false and true"
    assert not at.exception, [e.value for e in at.exception]
    matches = at.dataframe[0].value
    assert len(matches) and list(matches["rank"])[:1] == [1]
    assert any("Span 5–5" in m.value and "false" in m.value for m in at.markdown)


def test_hidden_page_escapes_typed_text(lmcore_home):
    at = open_hidden()
    at.radio(key="hidden_text_source").set_value("type my own").run()
    at.text_area(key="hidden_text_typed").set_value(
        "he wrote <script>alert(1)</script> and <img src=x onerror=alert(1)> here , then ( left ) .").run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 1
    body = " ".join(h.proto.body for h in at.get("html"))
    assert "&lt;" in body and "<script" not in body and "<img" not in body and "wrote" in body
