"""AppTest of the through-time pages (gradients, BPTT by hand, Markov vs memory) on the demo runs."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from .conftest import REPO


@pytest.fixture(autouse=True)
def home(lmcore_home):
    return lmcore_home


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_gradients_page_draws_decay_for_the_demo_runs_and_escapes_saliency_text():
    at = open_page("views/gradients.py")
    charts = at.get("plotly_chart")
    assert len(charts) == 5  # two decay figures, then Fig. 4.1 for the Elman RNN, the LSTM and the GRU
    assert at.multiselect[0].value and all(k.startswith("demo:agreement") for k in at.multiselect[0].value)
    at.text_input(key="saliency_text").set_value("the <script>alert(1)</script> roses are red .").run()
    assert not at.exception
    shown = " ".join(h.proto.body for h in at.get("html"))
    assert "&lt;" in shown and "<script>" not in shown  # the words tokenizer splits "<" off


def test_bptt_page_agrees_with_autograd_and_flags_guo():
    at = open_page("views/bptt.py")
    assert at.success and "agree" in at.success[0].value
    errors = at.dataframe[0].value
    assert errors.iloc[:, 1].max() < 1e-6
    at.checkbox[0].check().run()
    assert at.warning and at.dataframe[0].value.iloc[:, 1].max() > 1e-3


def test_memory_page_agreement_and_context_use():
    at = open_page("views/memory.py")
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    assert "words between" in table.columns and any("gram" in c for c in table.columns)
    at.radio[0].set_value("my own (prefix, correct, wrong, distance)").run()
    assert not at.exception and at.dataframe[0].value["words between"].tolist() == ["0", "3", "6", "9"]
    at.select_slider[1].set_value(2000).run()
    at.button[0].click().run()
    assert not at.exception and len(at.get("plotly_chart")) == 2
    context = at.dataframe[1].value
    assert context["context"].tolist()[-1] == "all"
