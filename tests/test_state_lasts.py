"""State that survives a reload (issue 13, items 1-2): the corpus and the Train form come back from the URL, a
new tab finds the data folder's last corpus, and Train lists every run of the data folder."""
from __future__ import annotations

import math

import pytest
from streamlit.testing.v1 import AppTest

from lmcore.runs.history import history_table
from lmcore.runs.store import RunStore

from .conftest import REPO, grammar_lines, tiny_config
from .test_pages import open_page, upload_corpus

GRAMMAR = ("\n".join(grammar_lines(600)) + "\n").encode()


@pytest.fixture(autouse=True)
def home(lmcore_home):
    return lmcore_home


def reopen(page: str, params: dict[str, str]) -> AppTest:
    """A reload, or a link opened in a new tab: a fresh session with only the URL's parameters."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(page)
    for key, value in params.items():  # switch_page starts the page without the query string
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def train_caption(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("Training on")).replace("\\", "")


def test_a_reload_of_train_keeps_the_uploaded_corpus_and_the_form():
    at = upload_corpus(open_page("views/corpus.py"), "my grammar.txt", GRAMMAR)
    corpus_url = {k: at.query_params[k] for k in ("corpus", "tokenizer", "lowercase", "min_count")}
    assert corpus_url["corpus"].startswith("upload:") and "/" not in corpus_url["corpus"]  # no server path
    at = reopen("views/train.py", corpus_url | {"n": "2", "hid2": "64", "preset2": "GRU"})
    assert "my_grammar.txt" in train_caption(at)
    assert at.slider(key="n").value == 2
    assert at.selectbox(key="preset2").value == "GRU" and at.number_input(key="hid2").value == 64
    assert "1×64 units" in " ".join(c.value for c in at.caption)  # the run that would train has that size


def test_a_new_tab_without_parameters_takes_the_last_chosen_corpus():
    upload_corpus(open_page("views/corpus.py"), "grammar.txt", GRAMMAR)
    at = reopen("views/train.py", {})
    assert "grammar.txt" in train_caption(at)
    fresh_default = reopen("views/corpus.py", {"corpus": "builtin:agreement"})  # a link names its own corpus
    assert "agreement" in fresh_default.subheader[0].value


def test_a_link_to_an_upload_not_kept_here_says_so_and_falls_back():
    at = reopen("views/train.py", {"corpus": "upload:0123456789ab-gone.txt"})
    assert any("not kept in this data folder" in w.value for w in at.warning)
    assert "python-docs" in train_caption(at)


def test_the_corpus_page_offers_files_uploaded_before():
    upload_corpus(open_page("views/corpus.py"), "first.txt", GRAMMAR)
    at = reopen("views/corpus.py", {"corpus": "builtin:python-docs"})
    at.radio[0].set_value("a file uploaded before").run()
    assert not at.exception
    assert "first.txt" in at.subheader[0].value.replace("\\", "")


def test_another_preset_resets_the_run_fields_and_a_new_corpus_moves_untouched_ones():
    at = open_page("views/train.py")
    at.number_input(key="hid1").set_value(16).run()
    at.selectbox(key="preset1").set_value("GRU").run()
    assert at.number_input(key="hid1").value == 200  # the GRU preset's size, not the 16 typed for the old one
    epochs = at.number_input(key="epochs")
    assert epochs.value == 16  # python-docs' recipe
    at.number_input(key="batch").set_value(7).run()
    at.switch_page("views/corpus.py").run()
    at.selectbox[0].set_value("agreement").run()
    at.switch_page("views/train.py").run()
    assert at.number_input(key="epochs").value == 12  # the agreement recipe's, as it was never edited
    assert at.number_input(key="batch").value == 7  # edited by the user: kept


def test_train_lists_every_run_of_the_data_folder_whoever_started_it(grammar_file):
    store = RunStore()
    done = store.create_run(tiny_config(grammar_file, "lstm").to_dict(), status="done")
    store.update_run(done, step=50, total_steps=50, best_valid_ppl=41.5, test_ppl=float("inf"))
    stopped = store.create_run(tiny_config(grammar_file, "gru").to_dict(), status="stopped")
    store.update_run(stopped, step=10, total_steps=40)
    at = reopen("views/train.py", {})
    assert not any("No runs" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert list(table["run"]) == [stopped, done]  # newest first
    assert list(table["status"]) == ["stopped", "done"]
    assert table["progress"].tolist() == [0.25, 1.0]
    assert table["best valid ppl"].iloc[1] == 41.5 and math.isnan(table["test ppl"].iloc[1])  # inf is not shown


def test_history_table_reads_the_store_rows(grammar_file):
    store = RunStore()
    run = store.create_run(tiny_config(grammar_file, "elman").to_dict(), status="running")
    store.update_run(run, step=30, total_steps=120, started_at=1000.0)
    [row] = history_table(store.list_runs(), now=1000.0 + 125).to_dict("records")
    assert row["progress"] == 0.25 and row["started"] == "2 min ago" and row["status"] == "running"
    assert row["corpus"].startswith(grammar_file.name.split("-", 1)[-1]) and math.isnan(row["best valid ppl"])
