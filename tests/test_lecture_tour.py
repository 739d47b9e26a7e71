"""Issue 16: the Lecture page. It is the start page of a new data folder; every step has its chart; what it says
about each figure holds on the demo runs it draws; each "try it" link opens its page in exactly the stated state."""
from __future__ import annotations

import json
import math
import re
from urllib.parse import parse_qsl

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lmcore.lecture.tour import STEPS, holding_unit

from .conftest import REPO, figure_values

TIMEOUT = 300


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """The tour as a new data folder opens it: the app's own start page, no LMCORE_START_PAGE."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LMCORE_HOME", str(tmp_path_factory.mktemp("tour") / "home"))
    mp.delenv("LMCORE_START_PAGE", raising=False)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    mp.undo()
    assert not at.exception, [e.value for e in at.exception]
    return at


def text_of(at) -> str:
    return "\n".join(m.value for m in at.markdown).replace("\\", "")


def test_a_new_data_folder_opens_on_ten_steps_each_with_a_chart_and_a_link(tour):
    assert tour.title[0].value == "The lecture, on trained models"
    assert [h.value for h in tour.header] == [s.title for s in STEPS]
    assert len(tour.get("plotly_chart")) == len(STEPS) == 10
    assert len(tour.get("page_link")) == 10
    assert "shipped with the app" in tour.info[0].value  # no run of the user's yet: the demos, and it says so
    checks = [e for e in tour.expander if e.label.startswith("Self-check: ")]
    assert len(checks) >= 6  # self-check questions, their answers hidden until clicked


def test_what_the_tour_says_holds_on_the_demo_runs(tour):
    """The lecture's claims, as the page computes them from the figures of the demo runs."""
    text = text_of(tour)
    near, far = map(int, re.search(r"3-gram is right (\d+)% .*? apart, (\d+)%", text).groups())
    assert near >= 65 and far <= 55  # the Markov window: right near, a coin toss beyond
    assert "stays exactly there with 50 (flat beyond its window)" in text  # the FFNN's context use
    assert re.search(r"Right both times, so using the subject: [^.]*LSTM", text)
    assert re.search(r"outside the window: Kneser–Ney 3-gram, FFNN n=5", text)  # the same margin for roses and rose
    ratio = float(re.search(r"([\d,]+)× larger in the LSTM", text).group(1).replace(",", ""))
    assert ratio >= 10  # the error signal 20 steps back: the LSTM keeps it
    assert re.search(r"At “in” \(2\).* its forget gate is open", text)  # the cell holds between the nouns
    order = re.search(r"Best to worst: (.*)\.", text).group(1)
    names = [part.rsplit(" ", 1)[0] for part in order.split(", ")]
    assert names.index("Kneser–Ney 3-gram") == 4 and names.index("FFNN n=5") == 3  # both windows last
    assert set(names[:2]) == {"LSTM", "GRU"}
    assert "within 1%" in text or "within" in re.search(r"Same hidden size: .*", text).group(0)


def test_the_chain_rules_bars_all_show_with_labels_that_tell_them_apart(tour):
    """Step 1's bars on their log axis: the least expected word's bar too (a fixed axis from 10^-3.3 had hidden a
    P = 0.0003), and two bars of different heights never share a label (0.012 and 0.0085 both read "0.01")."""
    figure = json.loads(tour.get("plotly_chart")[0].proto.spec)
    bars, axis = figure["data"][0], figure["layout"]["yaxis"]
    p_words = figure_values(bars["y"])
    assert axis["type"] == "log" and math.log10(p_words.min()) > axis["range"][0] + 0.2
    by_label = {}
    for label, p in zip(bars["text"], p_words):
        by_label.setdefault(label, []).append(p)
    assert all(max(ps) / min(ps) < 1.1 for ps in by_label.values()), by_label


def test_each_model_of_the_tour_has_the_colour_its_demo_has_on_every_other_page():
    from appstate.lecture import SLOT_COLOURS
    from lmcore.viz.style import run_colour
    for slot, place in SLOT_COLOURS.items():
        assert run_colour(place) == run_colour(f"demo:agreement-{'elman' if slot == 'rnn' else slot}"), slot
    assert len({run_colour(place) for place in SLOT_COLOURS.values()}) == len(SLOT_COLOURS)


def widget_value(at, name: str):
    """The value a page shows for one URL parameter: its widget's (a run chooser is pick_<name>), else None."""
    for key in (name, f"pick_{name}"):
        if key in at.session_state:
            value = at.session_state[key]
            return ",".join(value) if isinstance(value, list) else str(value)
    return None


@pytest.mark.parametrize("step", range(10))
def test_each_try_it_link_opens_its_page_in_the_stated_state(tour, step, lmcore_home):
    link = tour.get("page_link")[step].proto
    params = dict(parse_qsl(link.query_string))
    assert params, link.label
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    at.switch_page(f"views/{link.page}.py").run()
    assert not at.exception, (link.page, [e.value for e in at.exception])
    shown = {name: widget_value(at, name) for name in params}
    widgets = {name: value for name, value in shown.items() if value is not None}
    assert len(widgets) >= 2, (link.page, shown)  # the run(s), and the text, unit, k or preset
    for name, value in widgets.items():
        assert value == params[name], (link.page, name, value, params[name])
    for name in set(params) - set(widgets):  # flags such as mem_context=1: kept in the URL, so acted on
        assert at.query_params.get(name) == params[name], (link.page, name)
    if link.page == "memory" and params.get("mem_context") == "1":
        assert len(at.get("plotly_chart")) >= 2  # the context-use curves were drawn, as the step says


def test_the_drawn_unit_is_one_that_depends_on_the_source_and_holds_most():
    sens = np.array([1.0, 0.9, 0.2, 0.6])
    f = np.array([[0.5] * 4, [0.95, 0.2, 0.99, 0.95], [0.95, 0.95, 0.99, 0.95], [0.5] * 4])
    i = np.array([[0.5] * 4, [0.05, 0.5, 0.01, 0.05], [0.5, 0.05, 0.01, 0.05], [0.5] * 4])
    # unit 2 holds at every step but barely depends on the source; of units 0, 1, 3, unit 3 holds twice
    assert holding_unit(sens, f, i, source=0, verb=3) == 3


def test_the_users_own_agreement_run_replaces_its_demo_and_the_folder_then_starts_on_corpus(lmcore_home, capsys,
                                                                                            monkeypatch):
    """A finished LSTM of the user's on the agreement corpus (tiny, barely trained) takes the demo's place in every
    step that shows the LSTM, the page says it is theirs, its links name it; the claims are worked out from its own
    numbers, whatever they are. A data folder with runs starts on the Corpus page."""
    from lmcore.cli.main import main
    assert main(["train", "--corpus", "builtin:agreement", "--tokenizer", "words", "--arch", "lstm", "--layers", "1",
                 "--hidden", "16", "--emb", "16", "--max-steps", "10", "--seed", "3", "--json"]) == 0
    capsys.readouterr()
    monkeypatch.delenv("LMCORE_START_PAGE")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    assert at.title[0].value != "The lecture, on trained models"  # a folder with runs starts on Corpus
    at.switch_page("views/lecture.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "#1 LSTM 1×16 (done) (yours)" in at.info[0].value.replace("\\", "")
    assert "demo · GRU" in at.info[0].value  # the other slots keep their demos
    assert len(at.get("plotly_chart")) == 10
    assert "run=run%3A1" in at.get("page_link")[0].proto.query_string  # the chain rule's link opens the user's LSTM
    assert "Drawn: unit" in text_of(at) and "Best to worst:" in text_of(at)


def test_a_char_level_agreement_run_is_not_taken_for_the_tour(lmcore_home, capsys):
    """The roses sentence as characters has no word "are" to stop at: such a run stays on the other pages."""
    from lmcore.cli.main import main
    assert main(["train", "--corpus", "builtin:agreement", "--tokenizer", "char", "--arch", "lstm", "--layers", "1",
                 "--hidden", "8", "--emb", "8", "--max-steps", "3", "--json"]) == 0
    capsys.readouterr()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("views/lecture.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "(yours)" not in at.info[0].value and len(at.get("plotly_chart")) == 10
