"""Hidden states find something with their defaults: a threshold, span and features proposed from the data,
a colour scale matched to the activation's range, and every field of the page in the URL."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lmcore.corpus.loading import load_corpus
from lmcore.inspect.hidden import (
    PROPOSED_MATCHES,
    PROPOSED_PERCENTILE,
    clearest_feature,
    propose_span,
    propose_threshold,
    regex_feature,
    search_pattern,
    select_units,
    suggest_features,
    value_bounds,
)
from lmcore.inspect.trace import trace
from lmcore.nn.architectures import ModelConfig
from lmcore.runs import service
from lmcore.runs.catalog import DEMO_DIR
from lmcore.runs.store import RunStore
from lmcore.training.checkpoints import load_checkpoint
from lmcore.values import ordinal
from lmcore.viz.colour import colour_range
from lmcore.viz.hidden import SEQUENTIAL, brushed_span, heatmap_figure, unit_label

from .conftest import REPO, tiny_config

DEMOS = sorted(p.stem for p in DEMO_DIR.glob("*.pt"))


def validation_trace(path: Path, n: int = 200):
    """The trace of a checkpoint on the first n validation tokens of its corpus: the page's default text."""
    model, cfg, vocab, _ = load_checkpoint(path)
    corpus = load_corpus(cfg.corpus)
    tokens = corpus.vocab.decode(corpus.valid[:n])
    return cfg, tokens, trace(model, vocab.encode(tokens), vocab)


def finds_something(values: np.ndarray, first: int = 0, stop: int | None = None) -> tuple[int, int]:
    """(units, matches) of the pattern search with the page's defaults: proposed threshold, proposed span."""
    threshold = propose_threshold(values).value
    span = propose_span(values, threshold, first, stop)
    units = select_units(values, *span, threshold)
    return len(units), len(search_pattern(values, units, threshold, exclude=span))


# --- the proposals ------------------------------------------------------------------------------------------------
def test_proposed_threshold_is_the_stated_percentile():
    values = np.random.default_rng(0).normal(0.2, 0.5, (300, 64))
    proposed = propose_threshold(values, 80, name="c")
    assert proposed.value == pytest.approx(np.percentile(values, 80))
    assert (values >= proposed.value).mean() == pytest.approx(0.2, abs=0.001)  # one cell in five is on
    assert proposed.describe() == f"{proposed.value:.3g} = the 80th percentile of c over this text"
    assert propose_threshold(values).percentile == PROPOSED_PERCENTILE
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 95)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "95th"]
    with pytest.raises(ValueError, match="percentile"):
        propose_threshold(values, 100)


def test_proposed_span_switches_on_and_recurs():
    values = np.full((60, 8), -0.5)
    values[20:22, [1, 4]] = 0.9                # a pattern at 20..21 that recurs at 45..46
    values[45:47, [1, 4]] = 0.8
    values[5, 6] = 0.9                          # one unit on once, never again: no match
    threshold = 0.0
    span = propose_span(values, threshold)
    assert span == (20, 20) and list(select_units(values, *span, threshold)) == [1, 4]
    assert propose_span(values, threshold, first=30) == (45, 45)  # inside the window shown
    flat = np.zeros((10, 3))
    assert propose_span(flat, 1.0, first=2) == (2, 2)  # nothing switches on: the window's start


def test_default_features_mark_tokens_of_the_text():
    tokens = ('the list ( a , b ) is " quoted " . <eos> the 3 items , the end . <eos> '
              'x = ( y ) . <eos>').split()
    features = {f.name: f for f in suggest_features(tokens)}
    assert {"inside parentheses", "line ends", "commas", "full stops", 'the word "the"'} <= set(features)
    assert "digits" not in features and "capitalised words" not in features  # 1 and 0 tokens: too few
    for f in features.values():
        assert 2 <= f.marks <= 0.6 * len(tokens)  # 28 tokens: at least 2 (3 from 30 tokens on)
        np.testing.assert_array_equal(f.mask, regex_feature(tokens, f.pattern))  # as the page's regex runs it
    chars = list("print(x) if (a) else (b)\n")
    names = [f.name for f in suggest_features(chars, sep="")]
    assert names[0] == "inside parentheses" and "spaces" in names and "vowels" in names
    short = "the roses in the vase by the door to the kitchen are red . <eos>".split()
    assert [(f.name, f.marks) for f in suggest_features(short)][:2] == [('the word "the"', 4), ("line ends", 1)]


def test_the_default_feature_is_the_one_a_unit_follows():
    tokens = "a , b ( c d ) e , f . <eos> g ( h ) i , j k . <eos>".split() * 3
    features = suggest_features(tokens)
    names = [f.name for f in features]
    follows = names.index("commas")
    values = np.random.default_rng(4).normal(0, 0.1, (len(tokens), 6))
    values[:, 3] += features[follows].mask  # unit 3 fires at every comma
    assert names[0] != "commas" and clearest_feature(values, features) == follows
    assert clearest_feature(values, []) == 0


@pytest.mark.parametrize("demo", DEMOS)
def test_defaults_find_units_matches_and_a_feature_on_every_demo(demo: str):
    cfg, tokens, tr = validation_trace(DEMO_DIR / f"{demo}.pt")
    for name in ("h", "c") if "c" in tr.layers[0] else ("h",):
        units, matches = finds_something(tr.quantity(name))
        assert units >= 4 and matches >= PROPOSED_MATCHES, (demo, name, units, matches)  # a pattern, not a chance
    features = suggest_features(tokens, "" if cfg.corpus.tokenizer == "char" else " ")
    assert features and features[0].marks > 0


@pytest.fixture
def sigmoid_run(lmcore_home: Path, grammar_file: Path) -> int:
    """A freshly trained tiny lecture RNN (σ Elman), recorded in a fresh store as a job would."""
    cfg = tiny_config(grammar_file, arch="elman", max_steps=40)
    cfg.model.activation, cfg.model.hidden, cfg.model.emb = "sigmoid", 32, 16
    store = RunStore(lmcore_home)
    run_id = store.create_run(cfg.to_dict(), status="starting")
    assert service.run_job(store, run_id, threads=1) == "done"
    return run_id


def test_defaults_find_something_on_a_freshly_trained_sigmoid_run(sigmoid_run: int, lmcore_home: Path):
    path = RunStore(lmcore_home).checkpoints(sigmoid_run)["last"]["path"]
    cfg, tokens, tr = validation_trace(Path(path))
    h = tr.quantity("h")
    assert h.min() >= 0 and h.max() <= 1
    units, matches = finds_something(h)
    assert units >= 1 and matches >= 1
    assert suggest_features(tokens)[0].marks > 0


# --- the colour scale and the labels ------------------------------------------------------------------------------
def test_colour_range_follows_the_activation():
    values = np.random.default_rng(1).normal(0, 2, (100, 16))
    sigmoid = colour_range(values, value_bounds(ModelConfig(arch="elman", activation="sigmoid"), "h"))
    assert (sigmoid.low, sigmoid.high, sigmoid.diverging) == (0.0, 1.0, False)
    tanh = colour_range(values, value_bounds(ModelConfig(arch="elman", activation="tanh"), "h"))
    assert (tanh.low, tanh.high, tanh.diverging) == (-1.0, 1.0, True)
    for arch in ("lstm", "gru"):
        assert value_bounds(ModelConfig(arch=arch), "h") == (-1.0, 1.0)
    assert value_bounds(ModelConfig(arch="lstm"), "f") == (0.0, 1.0)
    assert value_bounds(ModelConfig(arch="lstm", variant="noaf"), "h") == (None, None)  # h = o ⊙ c
    values[0, 0] = 1000.0  # one outlier must not wash out the rest
    cell = colour_range(values, value_bounds(ModelConfig(arch="lstm"), "c"), "c")
    robust = np.percentile(np.abs(values), 95)
    assert cell.diverging and cell.high == pytest.approx(robust) and cell.low == -cell.high and cell.high < 10
    relu = colour_range(np.abs(values), value_bounds(ModelConfig(arch="irnn"), "h"))
    assert relu.low == 0 and not relu.diverging and relu.high < 10


def test_heatmap_of_a_sigmoid_run_is_sequential_from_0_to_1():
    h = np.random.default_rng(2).uniform(0.3, 0.7, (40, 8))
    scale = colour_range(h, value_bounds(ModelConfig(arch="elman", activation="sigmoid"), "h"))
    heat = heatmap_figure(h, [f"t{i}" for i in range(40)], colour=scale).data[0]
    assert (heat.zmin, heat.zmax) == (0.0, 1.0) and heat.zmid is None
    assert heat.colorscale == heatmap_figure(h, ["t"] * 40, colour=scale).data[0].colorscale
    assert SEQUENTIAL != "RdBu_r"


def test_unit_labels_carry_significant_digits():
    assert unit_label(17, 0.031, "var") == "u17 · var 0.031"
    assert unit_label(17, 0.0012, "var") == "u17 · var 0.0012"   # never "var 0.00"
    assert unit_label(3, -0.456, "r") == "u3 · r -0.456" and unit_label(3, 0.5, "mean") == "u3 · mean +0.5"
    assert unit_label(3) == "u3"
    y = heatmap_figure(np.random.default_rng(3).normal(0, 0.01, (20, 4)), ["t"] * 20,
                       scores=np.array([3e-4, 2e-4, 1e-4, 5e-5]), score_name="var").data[0].y
    assert not any("0.00 " in label or label.endswith(" 0.00") for label in y)


def test_token_labels_show_quotes_as_typed_and_tags_as_text():
    x = heatmap_figure(np.zeros((3, 2)), ['"', "<b>", "<eos>"]).data[0].x
    assert list(x) == ['0 "', "1 &lt;b&gt;", "2 ↵"]  # plotly prints &quot; literally, but reads &lt; back as <


def test_a_brushed_box_maps_to_the_tokens_under_it():
    box = {"box": [{"xref": "x", "yref": "y", "x": [9.2, 12.8], "y": [3.0, 9.0]}], "lasso": [], "points": []}
    assert brushed_span(box, first=100, stop=180) == (110, 112)   # column centres 10, 11, 12 inside
    narrow = {"box": [{"x": [14.6, 14.9]}]}
    assert brushed_span(narrow, 0, 80) == (15, 15)                # narrower than a column: the one it is in
    assert brushed_span({"box": [{"x": [70.2, 95.0]}]}, 0, 80) == (71, 79)  # kept inside the window
    assert brushed_span({"box": [], "lasso": [], "points": []}, 0, 80) is None


# --- the page -----------------------------------------------------------------------------------------------------
def open_hidden(params: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    for key, value in (params or {}).items():
        at.query_params[key] = value
    at.switch_page("views/hidden.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def page_text(at: AppTest) -> str:
    return " ".join(e.value for kind in ("markdown", "caption", "info", "warning") for e in getattr(at, kind))


def assert_found_something(at: AppTest) -> None:
    text = page_text(at)
    assert not re.search(r"\b0 units|\bnone\b|no unit", text, re.IGNORECASE), text
    assert any("switch" in m.value and "on here" in m.value for m in at.markdown)
    matches = at.dataframe[0].value  # (the second table is the equations expander's)
    assert "Jaccard" in matches.columns and len(matches) >= 1


@pytest.mark.parametrize("demo", ["agreement-elman", "python-docs-lstm"])
def test_page_with_defaults_finds_units_and_matches(lmcore_home: Path, demo: str):
    at = open_hidden({"run": f"demo:{demo}"})
    assert_found_something(at)
    assert at.number_input(key="threshold").value is None  # the proposed threshold is in use
    assert f"the {ordinal(PROPOSED_PERCENTILE)} percentile of h over this text (in use)" in page_text(at)
    at.selectbox(key="sort").set_value("correlation").run()
    marks = next(c.value for c in at.caption if c.value.startswith("The feature marks"))
    assert int(marks.split()[3]) > 0
    top = next(c.value for c in at.caption if "row 1 of" in c.value)  # "u104 · r +0.959, row 1 of 128. …"
    assert abs(float(top.split(" r ")[1].split(",")[0])) > 0.5  # the default feature has a unit that follows it


def test_page_on_a_freshly_trained_sigmoid_run(sigmoid_run: int):
    at = open_hidden()
    assert at.selectbox(key="pick_run").value == f"run:{sigmoid_run}"
    assert_found_something(at)
    assert "h lies in [0, 1]" in page_text(at)  # the σ's range, not −1…1


def test_a_url_reopens_the_same_view(lmcore_home: Path):
    params = {"run": "demo:agreement-lstm", "hidden_text_len": "300", "window": "50", "quantity": "cell state c",
              "sort": "correlation with a feature", "feature": "full stops", "unit": "u40", "threshold": "0.5",
              "share": "0.8", "span": ["57", "58"]}
    at = open_hidden(params)
    assert at.selectbox(key="pick_run").value == "demo:agreement-lstm"
    assert at.number_input(key="hidden_text_len").value == 300 and at.slider(key="window").value == 50
    assert at.radio(key="quantity").value == "c" and at.selectbox(key="sort").value == "correlation"
    assert at.selectbox(key="feature").value == "full stops" and at.selectbox(key="unit").value == 40
    assert at.number_input(key="threshold").value == 0.5 and at.slider(key="share").value == 0.8
    assert at.slider(key="span").value == (57, 58)
    assert any("Span 57–58" in m.value for m in at.markdown)
    assert {k: v for k, v in at.query_params.items() if k in params} == params  # and the URL still says so


def test_span_follows_the_proposal_when_the_run_changes(lmcore_home: Path):
    at = open_hidden({"run": "demo:python-docs-lstm"})
    at.slider(key="span").set_value((30, 31)).run()
    assert any("Span 30–31" in m.value for m in at.markdown)
    at.selectbox(key="pick_run").set_value("demo:agreement-gru").run()
    assert at.slider(key="span").value != (30, 31)
    assert_found_something(at)


def test_values_that_barely_move_get_this_texts_colour_range():
    """A briefly trained σ-RNN: h near 0.5 everywhere looked one colour on the [0, 1] scale."""
    from lmcore.viz.colour import NARROW, colour_range, fills_range, text_colour_range
    rng = np.random.default_rng(0)
    values = 0.5 + 0.01 * rng.standard_normal((200, 16))
    activation = colour_range(values, (0.0, 1.0), "h")
    assert fills_range(values, activation) < NARROW
    stretched = text_colour_range(values, "h")
    assert 0.45 < stretched.low < 0.5 < stretched.high < 0.55 and not stretched.diverging
    assert fills_range(values, stretched) == pytest.approx(1.0)
