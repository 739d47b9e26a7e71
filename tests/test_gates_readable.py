"""Graves' figures at a readable size (issue 13, item 4): the layout facts that make Fig. 4.4, Fig. 4.1 and the
state over time legible at a 1440 px wide window; and the Gates, Gradients and BPTT pages reopened from a URL
(item 1) show the state it names."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lmcore.viz.gates import (AXIS_PX, CHAR_PX, DX, FIGURE_PX, FONT_PX, GLYPH_PX, NODE_PX, TOKEN_PX, fig44_figure,
                              glyph_layout, state_over_time_figure, token_label, token_spacing_px, token_ticks,
                              tokens_that_fit)
from lmcore.viz.gradients import ROW_AXIS_PX, fig41_figure

from .conftest import REPO, figure_values
from .test_pages import open_page

WORDS = "the roses in the vase by the door to the kitchen are red . internationalisation".split()


def long_text(n: int = 200) -> list[str]:
    return [WORDS[i % len(WORDS)] for i in range(n)]


def visible(ticktext: str) -> str:
    """What a tick label shows on its first line (the token), entities read as one character."""
    first = ticktext.split("<br>")[0]
    return re.sub(r"&[a-z]+;", "x", first)


def lstm_window(tokens: list[str], start: int, stop: int, source: int):
    rng = np.random.default_rng(0)
    gates = {g: rng.uniform(size=stop - start) for g in "ifo"}
    glyphs = glyph_layout(gates, "lstm", start=start)
    shade = np.linspace(1, 0, stop - start)
    return fig44_figure(tokens[start:stop], shade, glyphs, start, source, "lstm", "LSTM", thresholds=(0.1, 0.9))


# --- layout ---------------------------------------------------------------------------------------------------
def test_the_largest_window_leaves_room_for_node_glyph_and_label():
    fit = tokens_that_fit()
    assert 12 <= fit <= 20  # a sentence of the lecture's length fits whole at 1440 px
    spacing = token_spacing_px(fit)
    assert spacing >= TOKEN_PX >= GLYPH_PX >= 14 and FONT_PX >= 12
    # the forget gate sits DX of a spacing left of its node: clear of its own node and of the previous one
    assert DX * spacing - NODE_PX / 2 >= GLYPH_PX / 2
    assert (1 - DX) * spacing - NODE_PX / 2 >= GLYPH_PX / 2
    assert token_spacing_px(fit + 1) < TOKEN_PX  # one more token would not fit: the window is the largest


def test_fig44_of_a_long_text_shows_a_window_with_horizontal_labels_that_do_not_overlap():
    tokens = long_text()
    fit = tokens_that_fit()
    fig = lstm_window(tokens, 120, 120 + fit, source=118)
    axis = fig.layout.xaxis
    assert list(axis.tickvals) == list(range(120, 120 + fit)) and len(fig.data[0].x) == fit  # the window, not 200
    assert axis.tickangle == 0 and axis.range[1] - axis.range[0] == pytest.approx(fit)
    spacing = token_spacing_px(fit)
    for text in axis.ticktext:
        assert len(visible(text)) * CHAR_PX <= spacing - 6  # a gap between neighbouring labels
    assert any(visible(t).endswith("…") for t in axis.ticktext)  # "internationalisation" is cut, not shrunk
    glyph_traces = [t for t in fig.data if t.mode == "text"]
    assert len(glyph_traces) == 3 and all(t.textfont.size >= 14 for t in glyph_traces)
    assert fig.data[0].marker.size >= NODE_PX and axis.tickfont.size >= 12 and fig.layout.font.size >= 12
    assert fig.layout.margin.l == AXIS_PX
    assert "the source step 118 is left of this window" in fig.layout.title.subtitle.text
    assert "open (&gt; 0.9)" in fig.layout.title.subtitle.text
    assert [n.split()[0] for n in fig.layout.yaxis.ticktext] == ["input", "forget", "output"]  # rows named


def test_token_labels_show_whitespace_cut_long_tokens_and_escape():
    assert token_label(" ", 5) == "␣" and token_label("\n", 5) == "↵"
    assert token_label("internationalisation", 7) == "interna…"[:6] + "…"
    assert token_label("<b>", 9) == "&lt;b&gt;"
    steps, texts = token_ticks(["a", "b"], [7, 8])
    assert steps == [7, 8] and texts[0].startswith("a<br>") and ">7<" in texts[0]  # the step number under it


def test_state_over_time_of_a_long_text_labels_as_many_steps_as_fit_horizontally():
    tokens = long_text()
    values = np.random.default_rng(1).normal(size=(len(tokens), 5))
    fig = state_over_time_figure(values, tokens, window=(40, 54))
    axis = fig.layout.xaxis
    assert axis.tickangle == 0 and 1 < len(axis.tickvals) <= tokens_that_fit(FIGURE_PX, 70)
    gap = axis.tickvals[1] - axis.tickvals[0]
    assert token_spacing_px(len(tokens), FIGURE_PX, 70) * gap >= TOKEN_PX
    [window] = fig.layout.shapes
    assert (window.x0, window.x1) == (39.5, 53.5)


def test_fig41_draws_a_window_shaded_against_the_whole_text():
    tokens = long_text(40)
    hidden = np.exp(-np.arange(40) / 5.0)  # the first input fades
    output = hidden.copy()
    fit = tokens_that_fit(FIGURE_PX, ROW_AXIS_PX)
    fig = fig41_figure(tokens, hidden, output, title="RNN", start=10, stop=10 + fit)
    nodes = [t for t in fig.data if t.mode == "markers"]
    assert [len(t.x) for t in nodes] == [fit] * 3 and list(nodes[1].x) == list(range(10, 10 + fit))
    assert fig.layout.xaxis.tickangle == 0 and len(fig.layout.xaxis.ticktext) == fit
    assert token_spacing_px(fit, FIGURE_PX, ROW_AXIS_PX) >= TOKEN_PX
    assert nodes[1].marker.size >= NODE_PX
    assert nodes[1].customdata.max() == pytest.approx(np.exp(-2.0))  # normalised by step 0, not the window's max
    assert "left of this window" in fig.layout.title.text


# --- the pages, reopened from a URL -----------------------------------------------------------------------
def open_with(page: str, **params) -> AppTest:
    """The page as a link with these URL parameters opens it."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    at.query_params.update(params)
    return open_page(page, at.run())


def specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def fig44_specs(at: AppTest) -> list[dict]:
    return [s for s in specs(at) if "∂h_t/∂x_" in s["layout"]["title"]["text"]]


def in_columns(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for col in at.columns for c in col.get("plotly_chart")]


def test_gates_page_from_a_url_shows_its_source_window_unit_and_thresholds(lmcore_home):
    at = open_with("views/gates.py", src="3", win="12", g_unit="unit 5", thr=["0.2", "0.8"])
    assert at.slider(key="src").value == 3 and at.number_input(key="win").value == 12
    assert at.selectbox(key="g_unit").value == 5 and at.slider(key="thr").value == (0.2, 0.8)
    figures = fig44_specs(at)
    assert [f["layout"]["title"]["text"].split(",")[0] for f in figures] == ["σ-RNN", "LSTM", "GRU"]
    assert all("unit 5: ‖∂h_t/∂x_3‖" in f["layout"]["title"]["text"] for f in figures)
    for f in figures:  # one model per row, the same 12 steps one above the other
        assert len(f["layout"]["xaxis"]["tickvals"]) == 12 and f["layout"]["xaxis"]["tickangle"] == 0
    assert not any("∂h_t/∂x_" in s["layout"]["title"]["text"] for s in in_columns(at))  # full width, not columns
    assert "open (&gt; 0.8)" in figures[1]["layout"]["title"]["subtitle"]["text"]
    links = [p.proto for p in at.get("page_link")]
    assert any("gradients" in link.page and "decay_runs" in link.query_string for link in links)


def test_gates_page_from_a_url_on_a_long_text_windows_around_the_source(lmcore_home):
    at = open_with("views/gates.py", text_source="from the validation split", src="150")
    fit = tokens_that_fit()
    assert at.slider(key="src").value == 150
    start = at.slider(key="at").value
    assert start <= 150 < start + fit
    for f in fig44_specs(at):
        assert f["layout"]["xaxis"]["tickvals"] == list(range(start, start + fit))
    at.slider(key="at").set_value(170).run()  # move the window past the source: the figures follow it
    assert not at.exception
    assert all(f["layout"]["xaxis"]["tickvals"][0] == 170 for f in fig44_specs(at))
    assert at.slider(key="src").value == 150


def test_gradients_page_from_a_url_shows_its_k_positions_and_fig41_window(lmcore_home):
    text = " ".join(long_text(30))
    at = open_with("views/gradients.py", k="12", pos="4", fig41_text=text, fig41_at="5")
    assert at.slider(key="k").value == 12 and at.slider(key="pos").value == 4
    assert at.text_input(key="fig41_text").value == text and at.slider(key="fig41_at").value == 5
    decay = [s for s in specs(at) if s["layout"].get("xaxis", {}).get("title", {}).get("text", "").startswith("k ")]
    assert decay and all(figure_values(t["x"]).max() == 12 for s in decay for t in s["data"] if t.get("mode") == "lines")
    fig41 = [s for s in specs(at) if s["layout"].get("yaxis", {}).get("ticktext") == ["inputs x", "hidden h",
                                                                                       "outputs y"]]
    assert len(fig41) == 3 and all(f["layout"]["xaxis"]["tickvals"][0] == 5 for f in fig41)
    assert not any(s in fig41 for s in in_columns(at))  # one model per row
    assert any("bptt" in p.proto.page for p in at.get("page_link"))


def test_bptt_page_from_a_url_shows_its_settings(lmcore_home):
    at = open_with("views/bptt.py", hidden="4", tau="3", t="5", seed="7", guo="true")
    assert at.slider(key="hidden").value == 4 and at.slider(key="tau").value == 3 and at.slider(key="t").value == 5
    assert at.number_input(key="seed").value == 7 and at.checkbox(key="guo").value
    assert at.warning  # Guo's f′(g) no longer matches autograd
    assert any("Walking back from y(5)" in m.value for m in at.markdown)
    assert any("gradients" in p.proto.page for p in at.get("page_link"))
