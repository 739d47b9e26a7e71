"""Every page through streamlit's AppTest, driven from app.py's navigation as a user would."""
from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

from appstate.corpus import upload_label
from lmcore.runs import service
from lmcore.runs.store import RunStore

from .conftest import REPO, grammar_lines, tiny_config

TIMEOUT = 120


def open_page(page: str, at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload_corpus(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio[0].set_value("upload a .txt file").run()
    at.file_uploader[0].set_value((name, data, "text/plain")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(autouse=True)
def home(lmcore_home):
    return lmcore_home


def test_corpus_page_opens_on_the_builtin_default():
    at = open_page("views/corpus.py")
    assert at.title[0].value == "Corpus"
    assert "python-docs" in at.subheader[0].value
    assert len(at.get("vega_lite_chart")) == 1  # Zipf plot (Vega-Lite: the first page needs no Plotly)
    table = at.table[0].value
    assert list(table["split"]) == ["train", "valid", "test"] and table["tokens"].min() > 1000


def test_corpus_page_switches_builtin_and_tokenizer():
    at = open_page("views/corpus.py")
    at.selectbox[0].set_value("agreement").run()
    at.selectbox[1].set_value("char").run()
    assert not at.exception
    assert "agreement" in at.subheader[0].value and "char" in at.subheader[0].value
    vocab = next(m for m in at.metric if m.label == "Vocabulary")
    assert int(vocab.value.replace(",", "")) < 60  # characters, not words
    assert at.query_params["corpus"] == "builtin:agreement"


def test_upload_shows_stats_and_escapes_html():
    text = "\n".join(["<script>alert(1)</script> the roses are red .",
                      "<img src=x onerror=alert(1)> is here ."] + grammar_lines(200)) + "\n"
    at = upload_corpus(open_page("views/corpus.py"), "my notes.txt", text.encode())
    at.selectbox[0].set_value("word").run()  # whitespace split keeps each tag whole
    next(n for n in at.number_input if n.label == "Min count").set_value(1).run()  # each tag occurs once
    assert "my\\_notes.txt" in at.subheader[0].value  # markdown-escaped
    html_shown = " ".join(h.proto.body for h in at.get("html"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_shown and "<script>" not in html_shown
    assert "&lt;img" in html_shown and "<img" not in html_shown


@pytest.mark.parametrize("data, reason", [(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"),
                                          (b"   \n\n  ", "empty"),
                                          ("caf\u00e9 cr\u00e8me\n".encode("latin-1") * 5, "UTF-8")])
def test_upload_of_bad_bytes_gives_a_clear_error(data, reason):
    at = upload_corpus(open_page("views/corpus.py"), "bad.txt", data)
    assert at.error and reason in at.error[0].value


def test_train_page_trains_two_runs_in_processes_then_compare_shows_them(lmcore_home):
    at = open_page("views/corpus.py")
    upload_corpus(at, "grammar.txt", ("\n".join(grammar_lines(600)) + "\n").encode())
    open_page("views/train.py", at)
    at.slider[0].set_value(2).run()
    # Shrink both runs so they train in a second or two.
    for key in ("hid1", "hid2"):  # tied: the embedding follows the hidden size
        at.number_input(key=key).set_value(16)
    at.number_input(key="layers2").set_value(1)
    at.number_input[2].set_value(4)  # batch (shared settings: epochs, τ, batch, seed, budget)
    at.number_input[1].set_value(10)
    at.run()
    captions = " ".join(c.value for c in at.caption)
    assert "parameters" in captions
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    ids = [int(x) for x in at.query_params["show"].split(",")]
    assert len(ids) == 2
    store = RunStore(lmcore_home)
    finished = service.wait_for(store, ids, timeout=240)
    assert [r["status"] for r in finished] == ["done", "done"], [r["message"] for r in finished]
    assert all(r["pid"] and r["best_valid_ppl"] > 1 for r in finished)

    at.run()  # the live view now shows both runs finished, with their curves
    assert len(at.get("plotly_chart")) == 3  # validation perplexity, training loss, learning rate
    assert sum("done" in m.value for m in at.markdown) >= 2

    open_page("views/compare.py", at)
    table = at.dataframe[0].value
    assert set(ids) <= set(table["run"].dropna().astype(int))
    kn = table[table["status"] == "baseline"]
    assert len(kn) == 1 and kn["best valid ppl"].iloc[0] > 1
    assert len(at.get("plotly_chart")) == 1
    assert at.get("download_button")


def test_compare_page_without_runs_says_what_to_do():
    at = open_page("views/compare.py")
    assert "No trained runs yet" in at.info[0].value


def test_lecture_table_layout_from_runs(tmp_path):
    from lmcore.runs.reports import lecture_table
    from lmcore.training.config import ModelConfig, RunConfig
    from tests.conftest import stored_run
    lstm, elman = (RunConfig(model=ModelConfig(**m)) for m in (dict(arch="lstm", hidden=64, layers=2),
                                                               dict(arch="elman", activation="tanh", hidden=32, layers=1)))
    runs = [stored_run(tmp_path, lstm, params=1000, test_ppl=90.0, best_valid_ppl=95.0),
            stored_run(tmp_path, elman, params=500, test_ppl=None, best_valid_ppl=120.0)]
    table = lecture_table(runs)
    assert list(table.columns) == ["method", "units", "layers", "parameters", "perplexity", "split", "run"]
    assert table["method"].tolist() == ["LSTM (2 layers, 64 units)", "tanh-RNN (1 layer, 32 units)"]
    assert table["split"].tolist() == ["test", "valid"] and table["perplexity"].tolist() == [90.0, 120.0]


def test_the_train_page_refreshes_often_only_while_a_run_waits_or_trains(home, tmp_path, monkeypatch):
    """The Train page's live view reruns every LIVE_REFRESH_S while a run is queued or training, else every
    IDLE_REFRESH_S (an idle tab left open would otherwise cost the server a rerun every 1.5 s): the rate the page
    itself asks st.fragment for."""
    import streamlit

    from .conftest import tiny_config
    asked, real = [], streamlit.fragment

    def recording(func=None, *, run_every=None):
        if getattr(func, "__name__", "") == "live_view":
            asked.append(run_every)
        return real(func, run_every=run_every)

    monkeypatch.setattr(streamlit, "fragment", recording)
    text = tmp_path / "g.txt"
    text.write_text("\n".join(grammar_lines(100)) + "\n")
    store = RunStore(home)
    at = open_page("views/train.py")
    assert asked[-1] == 10.0  # an empty data folder
    run_id = store.create_run(tiny_config(text).to_dict(), status="done")
    at.run()
    assert asked[-1] == 10.0 and any("Every run in this data folder" in s.value for s in at.subheader)
    for status in ("queued", "starting", "running"):
        store.update_run(run_id, status=status, pid=os.getpid())  # a live process: not marked interrupted
        at.run()
        assert asked[-1] == 1.5, status
    store.update_run(run_id, status="stopped")
    at.run()
    assert not at.exception and asked[-1] == 10.0, asked


def test_streamlit_reads_the_apps_config_without_a_full_collection_after_every_run(monkeypatch):
    """.streamlit/config.toml turns off Streamlit's gc.collect(2) after every script run, which was most of the
    server's CPU while an open Train page followed a run; the option is read from the file as Streamlit parses it,
    so a misspelt key (which Streamlit would ignore) fails here."""
    from streamlit import config

    monkeypatch.chdir(REPO)
    config.get_config_options(force_reparse=True)
    try:
        assert config.get_option("runner.postScriptGC") is False
        assert config.get_option("server.address") == "localhost"  # the same file, read the same way
    finally:
        monkeypatch.undo()  # back to the earlier working directory, then its config again
        config.get_config_options(force_reparse=True)


def test_a_finished_run_trains_one_more_epoch_only_once_asked(lmcore_home, tmp_path):
    """Resume on a done run changes numbers every page compares: its button sits in a popover that says so; a
    stopped run resumes in one click, as before."""
    text = tmp_path / "g.txt"
    text.write_text("\n".join(grammar_lines(100)) + "\n")
    store = RunStore(lmcore_home)
    done = store.create_run(tiny_config(text).to_dict(), status="done")
    stopped = store.create_run(tiny_config(text).to_dict(), status="stopped")
    at = open_page("views/train.py")
    labels = {b.key: b.label for b in at.button}
    assert labels[f"resume{done}"] == "Train one more epoch" and labels[f"resume{stopped}"] == "Resume"

    def popover_holding(node, inside=False) -> bool | None:
        if getattr(node, "key", None) == f"resume{done}":
            return inside
        kids = getattr(node, "children", {})
        for child in (kids.values() if isinstance(kids, dict) else kids):
            found = popover_holding(child, inside or getattr(node, "type", None) == "popover")
            if found is not None:
                return found
        return None

    assert popover_holding(at._tree) is True
    assert any(f"#{done} has trained all its epochs" in c.value for c in at.caption)


def test_a_second_file_uploaded_in_a_row_is_the_one_shown(tmp_path):
    """After an upload the page had turned its choice into "a file uploaded before", taking the uploader off the
    page: a second file dropped into it was lost and the first one's statistics stayed."""
    at = upload_corpus(open_page("views/corpus.py"), "first.txt", ("\n".join(grammar_lines(200)) + "\n").encode())
    assert "first.txt" in at.subheader[0].value
    assert at.radio[0].value == "upload a .txt file" and len(at.file_uploader) == 1  # still there for the next file
    second = "\n".join(f"the zebra number {i} runs ." for i in range(200)) + "\n"
    at.file_uploader[0].set_value(("second.txt", second.encode(), "text/plain")).run()
    assert not at.exception and "second.txt" in at.subheader[0].value
    at.radio[0].set_value("a file uploaded before").run()  # both kept, the newest first
    assert [upload_label(o) for o in at.selectbox[0].options] == ["second.txt", "first.txt"]


def test_an_uploaded_files_cleaning_note_names_it_as_the_user_did(lmcore_home):
    """The reader names the path it read; on the page that was the server's (…/uploads/6eede229912c-notes.txt)."""
    lines = [f"the cat number {i} sat on the mat .{chr(7) if i % 50 == 0 else ''}" for i in range(300)]
    at = upload_corpus(open_page("views/corpus.py"), "my notes.txt", ("\n".join(lines) + "\n").encode())
    (note,) = [i.value.replace("\\", "") for i in at.info if "cleaned" in i.value]  # markdown's escapes off
    assert note.startswith("my_notes.txt: cleaned 6 control characters (6 bells)"), note
    assert str(lmcore_home) not in note and "uploads" not in note


def test_a_run_cut_short_by_its_max_steps_says_so_on_the_train_page(lmcore_home, tmp_path):
    """Its bar is full ("step 5/5 · done"), but it trained a fraction of its epochs: the page says which."""
    text = tmp_path / "g.txt"
    text.write_text("\n".join(grammar_lines(100)) + "\n")
    store = RunStore(lmcore_home)
    cut = store.create_run(tiny_config(text, epochs=8, max_steps=5).to_dict(), status="starting")
    assert service.run_job(store, cut, threads=1) == "done"
    at = open_page("views/train.py")
    said = [c.value.replace("\\", "") for c in at.caption if "max-steps" in c.value]  # markdown's escapes off
    assert len(said) == 1 and said[0].startswith(f"#{cut} ended at its max-steps, 5 steps: "), said
    assert said[0].endswith("of its 8 epochs")
