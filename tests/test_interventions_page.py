"""Issue 17, part 2: the Interventions page. On the demo LSTM, closing every forget gate costs perplexity and far
agreement; every preset runs; a link reopens the same experiment; the FFNN is not offered. The measurements it draws
take the interventions inside them (sensitivity, the error signal through time, surprisal)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import appstate.interventions as page_state
from lmcore.corpus.loading import load_corpus
from lmcore.inspect import interventions as iv
from lmcore.inspect.gradients import loss_gradient_decay
from lmcore.inspect.memory import ProbeItem
from lmcore.inspect.sensitivity import input_sensitivity
from lmcore.inspect.trace import trace
from lmcore.runs.catalog import inspectable_runs
from lmcore.runs.store import RunStore
from lmcore.training.checkpoints import load_checkpoint

from .conftest import REPO

TIMEOUT = 180
PAGE = "views/interventions.py"
ROSES = "<eos> the roses in the vase by the door to the kitchen are red ."


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One data folder for the module, and fewer probe sentences (400 of 1,600: the ablation ranking in seconds)."""
    mp = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("interventions") / "home"
    mp.setenv("LMCORE_HOME", str(folder))
    mp.setenv("LMCORE_START_PAGE", "corpus")
    mp.setattr(page_state, "PROBE_ITEMS", 160)  # enough for the effects below; the suite has 10 minutes
    yield folder
    mp.undo()


def open_page(**params) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    for name, value in params.items():
        at.query_params[name] = value
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def lstm_page(home):
    return open_page()


def numbers(at) -> dict[str, tuple[float, float]]:
    """The metrics' (before, after): perplexity, agreement near and far, from "… (before: 11.35)" and the value
    ("18.23", "37.6%", "11.38 ± 0.03")."""
    pairs = [(float(re.search(r"\(before: ([\d.]+)%?\)$", m.label).group(1)), float(m.value.split()[0].rstrip("%")))
             for m in at.metric]
    return dict(zip(("ppl", "near", "far"), pairs))


def test_closing_every_forget_gate_costs_perplexity_and_far_agreement(lstm_page):
    at = lstm_page
    assert at.selectbox(key="pick_iv_run").value == "demo:agreement-lstm"
    assert at.selectbox(key="iv_preset").value == "close every forget gate"
    assert "layer0.f" in at.info[0].value
    got = numbers(at)
    ppl_before, ppl_after = got["ppl"]
    far_before, far_after = got["far"]
    assert ppl_after > ppl_before * 1.2
    assert far_before > 90 and far_after < far_before - 20  # the memory is cut: agreement over a distance is lost
    assert len(at.get("plotly_chart")) == 4  # agreement, decay, Fig. 4.4 before and after
    assert len(at.get("page_link")) == 2


@pytest.mark.parametrize("run", ["demo:agreement-lstm", "demo:agreement-gru", "demo:agreement-elman"])
def test_every_preset_runs(home, run):
    at = open_page(iv_run=run)
    presets = at.selectbox(key="iv_preset").options
    assert (run.endswith("lstm") and len(presets) == 5) or (run.endswith("gru") and len(presets) == 4) \
        or (run.endswith("elman") and len(presets) == 2)
    for name in presets:
        if not run.endswith("lstm") and name.startswith("ablate the top"):
            continue  # the same code as the LSTM's, another ranking of seconds
        at.selectbox(key="iv_preset").set_value(name).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert at.metric and at.get("plotly_chart"), name
    if run.endswith("lstm"):  # the last preset: five random draws of two units, a control that costs little
        assert "more draws" in at.info[0].value
        ppl_before, ppl_after = numbers(at)["ppl"]
        assert abs(ppl_after - ppl_before) < 0.1 * ppl_before


def test_a_link_reopens_the_same_experiment(home):
    """Every field is in the URL: a link with them opens the page in the state the user clicked their way to."""
    clicked = open_page()
    clicked.selectbox(key="iv_preset").set_value("freeze the cell").run()
    clicked.number_input(key="iv_from").set_value(5).run()
    clicked.radio(key="iv_units").set_value(page_state.TYPED).run()
    clicked.text_input(key="iv_list").set_value("3, 17, 104").run()
    clicked.text_input(key="iv_text").set_value("the keys to the cabinet are on the table .").run()
    clicked.number_input(key="iv_src").set_value(3).run()
    clicked.selectbox(key="iv_unit").set_value(17).run()
    assert not clicked.exception, [e.value for e in clicked.exception]
    label = clicked.info[0].value
    assert "steps 5–" in label and "units 3, 17, 104" in label and "layer0.i" in label
    link = open_page(iv_run="demo:agreement-lstm", iv_preset="freeze the cell", iv_point="forget gate f",
                     iv_op="set to", iv_value="1.0", iv_from="5", iv_also="input gate i", iv_also_op="set to",
                     iv_also_value="0.0", iv_units=page_state.TYPED, iv_list="3, 17, 104",
                     iv_text="the keys to the cabinet are on the table .", iv_src="3", iv_unit="unit 17")
    keys = ("iv_preset", "iv_layer", "iv_point", "iv_op", "iv_value", "iv_from", "iv_also", "iv_also_op",
            "iv_also_value", "iv_units", "iv_k", "iv_list", "iv_text", "iv_src", "iv_unit")
    assert {k: link.session_state[k] for k in keys} == {k: clicked.session_state[k] for k in keys}
    assert link.info[0].value == label and numbers(link) == numbers(clicked)
    assert [c.proto.spec for c in link.get("plotly_chart")] == [c.proto.spec for c in clicked.get("plotly_chart")]


def test_the_feedforward_model_is_not_offered(lstm_page):
    options = lstm_page.selectbox(key="pick_iv_run").options  # the runs' labels
    assert not [o for o in options if "FFNN" in o] and "demo · LSTM 1×128 · agreement" in options
    assert any("FFNN" in c.value and "not listed" in c.value for c in lstm_page.caption)


# --- the measurements with the interventions inside them --------------------------------------------------------
@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    ref = next(r for r in inspectable_runs(RunStore(tmp_path_factory.mktemp("store"))) if r.key == "demo:agreement-lstm")
    model, cfg, vocab, _ = load_checkpoint(ref.checkpoint)
    corpus = load_corpus(cfg.corpus)
    return model, vocab, vocab.encode(corpus.vocab.decode(corpus.valid[:3000]))


def test_nothing_edited_changes_nothing_and_a_closed_forget_gate_cuts_the_memory(lstm):
    model, vocab, valid = lstm
    ids = vocab.encode(ROSES.split())
    closed = [iv.Intervention("layer0.f", "set", 0.0)]
    edits_at = lambda ivs: (lambda offset: iv.make_edits(model, ivs, offset=offset))
    plain = input_sensitivity(model, ids, 2)
    assert np.allclose(input_sensitivity(model, ids, 2, edits=edits_at([])), plain)
    cut = input_sensitivity(model, ids, 2, edits=edits_at(closed))
    assert cut[2] > 0 and cut[8:].max() < 0.2 * plain[8:].max()  # "roses" is forgotten a few words later
    # surprisal without interventions is the trace's
    assert np.allclose(iv.surprisal(model, ids), trace(model, ids).surprisal, atol=1e-4)
    base = loss_gradient_decay(model, valid, K=30, positions=8)
    assert np.allclose(loss_gradient_decay(model, valid, K=30, positions=8, edits={}).mean, base.mean)
    after = loss_gradient_decay(model, valid, K=30, positions=8, edits=iv.make_edits(model, closed))
    assert after.mean[30] < 0.2 * base.mean[30]  # the cell's path back through time is gone
    frozen = [iv.Intervention("layer0.f", "set", 1.0, start=3), iv.Intervention("layer0.i", "set", 0.0, start=3)]
    kept = loss_gradient_decay(model, valid, K=30, positions=8, edits=iv.make_edits(model, frozen)).mean
    assert kept[30] > 0.5 * kept[10] > 0  # a frozen cell passes the error signal back undiminished


def test_the_number_units_correlate_with_the_subjects_number(lstm):
    model, vocab, _ = lstm
    assert iv.subject_is_plural(ProbeItem(("the", "roses"), "are", "is", 0))
    assert iv.subject_is_plural(ProbeItem(("the", "keys"), "look", "looks", 0))
    assert not iv.subject_is_plural(ProbeItem(("the", "key"), "looks", "look", 0))
    items = [ProbeItem(("the", noun, "in", "the", "vase", "by", "the", "door"), verb, other, 6)
             for noun, verb, other in [("roses", "are", "is"), ("rose", "is", "are")] * 20]
    table = iv.number_correlation(model, vocab, items)
    assert sorted(table["unit"]) == list(range(model.cfg.hidden))
    assert abs(table["r"].iloc[0]) > 0.99 and (np.diff(np.abs(table["r"])) <= 1e-12).all()


# --- the figures ----------------------------------------------------------------------------------------------------
def test_random_draws_are_a_mean_and_a_band_and_the_text_is_escaped():
    import pandas as pd

    from lmcore.viz.interventions import agreement_change_figure, surprisal_change_html
    table = lambda acc: pd.DataFrame({"model": "m", "distance": [0, 4, 8], "items": [5, 5, 5], "accuracy": acc})
    fig = agreement_change_figure(table([1.0, 0.9, 0.9]), [table([1.0, 0.5, 0.7]), table([1.0, 0.7, 0.9])])
    before, band, after = fig.data
    assert list(after.y) == [1.0, 0.6, 0.8] and "mean of 2 draws" in after.name
    assert max(band.y) == 1.0 and min(band.y) == 0.5 and "shaded: far, 4+" in fig.layout.xaxis.title.text
    page = surprisal_change_html(["are", "<b>x</b>"], np.array([1.0, 2.0]), np.array([4.0, 2.0]))
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert 'title="step 1 “are”: 1.00 → 4.00 bits (+3.00)"' in page and "rgb(178,24,43)" in page  # full red at +3
