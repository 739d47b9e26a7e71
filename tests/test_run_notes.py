"""Issue 18, part 2: runs as people keep them. A name of their own, a note and tags on every run, from the app and
the CLI, shown in every table and legend and kept in the store (an old store gains the columns in place); Compare
filtered by tag; archived runs hidden unless asked for."""
from __future__ import annotations

import json
import os
import sqlite3

import pytest
from streamlit.testing.v1 import AppTest

import appstate
from lmcore.cli.main import main
from lmcore.runs import notes, service
from lmcore.runs.catalog import DEMO_DIR, inspectable_runs, run_label
from lmcore.runs.history import history_table
from lmcore.runs.reports import compare_table
from lmcore.runs.store import RunStore

from .conftest import REPO, tiny_config
from .test_readable_figures import add_run

HTML_NAME = "<b>x</b> *y*"


def done_run(store: RunStore, grammar_file, arch: str = "lstm", best: float = 20.0) -> int:
    """A finished run with curves (as Compare draws them) and a checkpoint file (as the run choosers need)."""
    run_id = add_run(store, tiny_config(grammar_file, arch), "done", [40.0, 25.0, best], best, best + 1)
    store.set_checkpoint(run_id, "best", DEMO_DIR / "python-docs-lstm.pt", {"epoch": 1, "step": 30})
    return run_id


# --- the store --------------------------------------------------------------------------------------------------
def test_name_note_tags_and_archive_survive_reopening_the_store(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    run_id = done_run(store, grammar_file)
    assert run_label(store.get_run(run_id)) == f"#{run_id} tiny lstm"
    notes.rename(store, run_id, f"  {HTML_NAME} ")
    notes.set_note(store, run_id, "lr too high?\r\nTry 0.003 next.")
    notes.add_tags(store, run_id, ["Baseline", " seed   2 "])
    notes.add_tags(store, run_id, ["baseline", "lr"])  # already there: kept once
    notes.remove_tags(store, run_id, ["lr", "never-there"])
    notes.archive(store, run_id)

    run = RunStore(lmcore_home).get_run(run_id)  # a new store object: everything read back from the file
    assert run.display_name == HTML_NAME and run_label(run) == f"#{run_id} {HTML_NAME}"
    assert run.note == "lr too high?\nTry 0.003 next." and run.tags == ("baseline", "seed 2") and run.archived
    assert run.config["name"] == "tiny lstm" and run.cfg.label() == "tiny lstm"  # the config it started with
    assert run["tags"] == ("baseline", "seed 2")  # a Run reads as a mapping of its columns too

    notes.rename(store, run_id, "")  # back to its config's name
    notes.unarchive(store, run_id)
    run = store.get_run(run_id)
    assert run_label(run) == f"#{run_id} tiny lstm" and not run.archived and run.tags == ("baseline", "seed 2")


def test_an_old_store_gains_the_columns_in_place(tmp_path, grammar_file):
    """A data folder made before this issue: its runs table lacks the columns. Opening it adds them (ALTER TABLE),
    its rows keep every value and read as unnamed, untagged and not archived."""
    home = tmp_path / "old"
    (home / "runs").mkdir(parents=True)
    with sqlite3.connect(home / "runs.sqlite") as db:
        db.executescript("""
            CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, created_at REAL NOT NULL,
                updated_at REAL NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL, corpus_source TEXT NOT NULL,
                arch TEXT NOT NULL, device TEXT, params INTEGER, vocab INTEGER, pid INTEGER,
                stop_requested INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
                step INTEGER NOT NULL DEFAULT 0, total_steps INTEGER NOT NULL DEFAULT 0, best_valid_ppl REAL,
                test_ppl REAL, tokens_per_s REAL, wall_time REAL, started_at REAL, finished_at REAL,
                sweep_id INTEGER);
            CREATE TABLE metrics (run_id INTEGER NOT NULL, step INTEGER NOT NULL, epoch REAL NOT NULL, lr REAL,
                train_loss REAL, valid_loss REAL, valid_ppl REAL, tokens_per_s REAL, wall_time REAL);
            CREATE TABLE checkpoints (run_id INTEGER NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL, step INTEGER,
                epoch REAL, valid_ppl REAL, PRIMARY KEY (run_id, kind));""")
        cfg = tiny_config(grammar_file, "gru").to_dict()
        db.execute("INSERT INTO runs (name, created_at, updated_at, status, config, corpus_source, arch, "
                   "best_valid_ppl) VALUES (?, 1.0, 2.0, 'done', ?, ?, 'gru', 33.5)",
                   (cfg["name"], json.dumps(cfg), cfg["corpus"]["source"]))
    store = RunStore(home)
    with sqlite3.connect(store.path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    assert {"display_name", "note", "tags", "archived"} <= columns
    [run] = store.list_runs()
    assert (run.id, run.status, run.best_valid_ppl, run.updated_at) == (1, "done", 33.5, 2.0)
    assert (run.display_name, run.note, run.tags, run.archived) == ("", "", (), False)
    assert run_label(run) == "#1 tiny gru"
    notes.rename(store, 1, "kept")
    notes.add_tags(store, 1, ["old"])
    assert run_label(RunStore(home).get_run(1)) == "#1 kept"  # opening it again migrates nothing twice


def test_tags_damaged_by_hand_read_as_none(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    run_id = done_run(store, grammar_file)
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET tags = '{not json' WHERE id = ?", (run_id,))
    assert store.get_run(run_id).tags == ()
    assert notes.add_tags(store, run_id, ["fine"]).tags == ("fine",)


# --- the values ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("write, words", [
    (lambda s, i: notes.rename(s, i, "two\nlines"), "one line"),
    (lambda s, i: notes.rename(s, i, "x" * (notes.NAME_CHARS + 1)), f"at most {notes.NAME_CHARS}"),
    (lambda s, i: notes.rename(s, i, "bell\x07"), "control characters"),
    (lambda s, i: notes.rename(s, i, "\x1b[31mred"), "control characters"),
    (lambda s, i: notes.rename(s, i, 12), "must be text"),
    (lambda s, i: notes.set_note(s, i, "n" * (notes.NOTE_CHARS + 1)), "at most 2,000"),
    (lambda s, i: notes.add_tags(s, i, ["a,b"]), "comma"),
    (lambda s, i: notes.add_tags(s, i, ["   "]), "cannot be empty"),
    (lambda s, i: notes.add_tags(s, i, ["t" * (notes.TAG_CHARS + 1)]), f"at most {notes.TAG_CHARS}"),
    (lambda s, i: notes.set_tags(s, i, [f"t{k}" for k in range(notes.MAX_TAGS + 1)]), "at most 10 tags"),
    (lambda s, i: notes.set_tags(s, i, "baseline"), "not one string"),
    (lambda s, i: notes.rename(s, i + 99, "x"), "no run"),
    (lambda s, i: notes.archive(s, i + 99), "no run"),
])
def test_bad_values_are_refused_in_one_line_and_change_nothing(lmcore_home, grammar_file, write, words):
    store = RunStore(lmcore_home)
    run_id = done_run(store, grammar_file)
    notes.add_tags(store, run_id, [f"t{k}" for k in range(notes.MAX_TAGS - 1)])
    before = dict(store.get_run(run_id))
    with pytest.raises(ValueError, match=words) as refused:
        write(store, run_id)
    assert "\n" not in str(refused.value)
    assert dict(store.get_run(run_id)) == before


def test_adding_past_ten_tags_is_refused(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    run_id = done_run(store, grammar_file)
    notes.set_tags(store, run_id, [f"t{k}" for k in range(notes.MAX_TAGS)])
    with pytest.raises(ValueError, match="at most 10 tags, not 11"):
        notes.add_tags(store, run_id, ["one more"])
    assert len(store.get_run(run_id).tags) == notes.MAX_TAGS


@pytest.mark.parametrize("status", ["queued", "starting", "running"])
def test_a_run_in_training_is_not_archived(lmcore_home, grammar_file, status):
    """It would vanish from the Train page, the one place where it is stopped."""
    store = RunStore(lmcore_home)
    run_id = store.create_run(tiny_config(grammar_file).to_dict(), status=status, pid=os.getpid())
    with pytest.raises(ValueError, match=f"is {status}: .*stop it"):
        notes.archive(store, run_id)
    assert not store.get_run(run_id).archived


def test_resuming_an_archived_run_shows_it_again(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    run_id = store.create_run(tiny_config(grammar_file).to_dict(), status="stopped")
    notes.archive(store, run_id)
    service.resume(store, run_id, start=False)
    run = store.get_run(run_id)
    assert run.status == "queued" and not run.archived


# --- the lists ----------------------------------------------------------------------------------------------------
def test_archived_runs_leave_the_choosers_and_tables_unless_asked_for(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    kept, hidden = done_run(store, grammar_file), done_run(store, grammar_file, "gru")
    notes.rename(store, kept, HTML_NAME)
    notes.set_tags(store, kept, ["best"])
    notes.set_note(store, kept, "the one to show\nin class")
    notes.archive(store, hidden)
    refs = {r.key: r for r in inspectable_runs(store)}
    assert f"run:{hidden}" not in refs and refs[f"run:{kept}"].label == f"#{kept} {HTML_NAME} (done)"
    assert f"run:{hidden}" in {r.key for r in inspectable_runs(store, archived=True)}
    runs = store.list_runs()
    assert [r.id for r in notes.shown(runs)] == [kept] and len(notes.shown(runs, archived=True)) == 2
    assert [r.id for r in notes.tagged(runs, ["BEST"])] == [kept] and len(notes.tagged(runs, [])) == 2
    assert notes.all_tags(runs) == ["best"]
    row = compare_table(runs).set_index("run").loc[kept]
    assert (row["name"], row["tags"], row["note"]) == (HTML_NAME, "best", "the one to show\nin class")
    history = history_table(runs).set_index("run")
    assert history.loc[kept, "name"] == HTML_NAME and history.loc[hidden, "status"] == "done (archived)"
    assert notes.note_excerpt("the one to show\nin class") == "the one to show…"


# --- the CLI ------------------------------------------------------------------------------------------------------
def test_cli_rename_note_tag_archive_and_runs(lmcore_home, grammar_file, capsys):
    store = RunStore(lmcore_home)
    first, second = done_run(store, grammar_file), done_run(store, grammar_file, "gru")
    home = ["--home", str(lmcore_home)]

    def run(*args) -> tuple[int, str, str]:
        code = main([*home, *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err

    def listed(*args) -> list[int]:
        return [int(line.split()[0]) for line in run("runs", *args)[1].splitlines()]

    assert run("rename", first, HTML_NAME)[:2] == (0, f"run {first} is now named {HTML_NAME}\n")
    assert run("note", first, "first line of a long note about this run\nsecond line")[0] == 0
    assert run("note", first)[1] == "first line of a long note about this run\nsecond line\n"
    assert run("tag", first, "Baseline", "seed 2,lr")[1] == f"run {first}: tags baseline, lr, seed 2\n"
    assert run("tag", first, "lr", "--remove")[1] == f"run {first}: tags baseline, seed 2\n"
    assert run("tag", first)[1] == "baseline, seed 2\n"
    code, out, _ = run("runs")
    line = next(ln for ln in out.splitlines() if ln.strip().startswith(str(first)))
    assert code == 0 and HTML_NAME in line and "[baseline, seed 2]" in line and "“first line of a long note" in line
    assert run("archive", second)[:2] == (0, f"#{second} tiny gru: archived (python -m lmcore runs --all lists it)\n")
    assert listed() == [first] and listed("--all") == [first, second]
    assert listed("--all", "--tag", "Baseline") == [first]
    assert "no runs tagged nope" in run("runs", "--tag", "nope")[1]
    listed = [json.loads(ln) for ln in run("runs", "--all", "--json")[1].splitlines()]
    assert [(r["id"], r["name"], r["tags"], r["archived"]) for r in listed] == [
        (first, HTML_NAME, ["baseline", "seed 2"], False), (second, "tiny gru", [], True)]
    assert run("archive", second, "--undo")[0] == 0 and not store.get_run(second).archived
    assert run("rename", first, "--clear")[0] == 0 and store.get_run(first).display_name == ""
    assert run("note", first, "--clear")[0] == 0 and store.get_run(first).note == ""


@pytest.mark.parametrize("args, words", [
    (["rename", "99", "x"], "no run 99"),
    (["rename", "{run}"], "give the new name"),
    (["rename", "{run}", "a\nb"], "one line"),
    (["note", "{run}", "x" * 2001], "at most 2,000"),
    (["tag", "{run}", "t" * 33], "at most 32"),
    (["tag", "{run}", "--remove"], "name the tags"),
    (["tag", "{run}", ",".join(f"t{k}" for k in range(11))], "at most 10 tags"),
    (["archive", "{running}"], "is running"),
    (["runs", "--tag", " "], "cannot be empty"),
])
def test_cli_refuses_in_one_line_with_exit_2(lmcore_home, grammar_file, capsys, args, words):
    store = RunStore(lmcore_home)
    ids = {"run": done_run(store, grammar_file),
           "running": store.create_run(tiny_config(grammar_file).to_dict(), status="running", pid=os.getpid())}
    assert main(["--home", str(lmcore_home), *(a.format(**ids) for a in args)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err


# --- the app ------------------------------------------------------------------------------------------------------
def open_page(page: str, **params) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_rename_note_and_tag_on_the_train_page_then_see_them_in_compare(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    first, second = done_run(store, grammar_file), done_run(store, grammar_file, "gru", best=18.0)
    at = open_page("views/train.py", show=f"{first},{second}")
    at.text_input(key=f"train_name{first}").set_value(HTML_NAME)
    at.text_area(key=f"train_note{first}").set_value("<i>why</i> it **won**\nsecond line")
    at.text_input(key=f"train_tags{first}").set_value("Baseline, seed 2")
    [save] = [b for b in at.button if b.label == "Save" and b.form_id == f"train_keep{first}"]
    save.click().run()
    assert not at.exception, [e.value for e in at.exception]
    run = store.get_run(first)
    assert (run.display_name, run.note, run.tags) == (HTML_NAME, "<i>why</i> it **won**\nsecond line",
                                                      ("baseline", "seed 2"))
    # shown literally: escaped for markdown on the run's line, as typed in the chooser and the history table
    lines = [m.value for m in at.markdown]
    assert any(f"**#{first} {appstate.md(HTML_NAME)}**" in v for v in lines) and not any(HTML_NAME in v for v in lines)
    assert any(appstate.md("<i>why</i> it **won**…") in c.value and "seed 2" in c.value for c in at.caption)
    assert f"#{first} {HTML_NAME} (done)" in at.multiselect[0].options
    assert at.dataframe[0].value.set_index("run").loc[first, "name"] == HTML_NAME

    at = open_page("views/compare.py", compare=f"{first},{second}")
    table = at.dataframe[0].value.set_index("run")
    assert (table.loc[first, "name"], table.loc[first, "tags"]) == (HTML_NAME, "baseline, seed 2")
    assert table.loc[first, "note"].startswith("<i>why</i>")
    [plotted] = [m for m in at.multiselect if m.label == "Runs to plot"]
    assert f"#{first} {HTML_NAME}" in plotted.options
    legend = {t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    assert f"#{first} &lt;b&gt;x&lt;/b&gt; *y*" in legend  # Plotly would read <b> as bold
    labels = {r.key: r.label for r in inspectable_runs(store)}  # the choosers of the model pages
    assert labels[f"run:{first}"] == f"#{first} {HTML_NAME} (done)"


def test_compare_filters_by_tag_and_hides_archived_runs_unless_asked(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    lstm, gru, elman = (done_run(store, grammar_file, arch) for arch in ("lstm", "gru", "elman"))
    notes.set_tags(store, lstm, ["baseline"])
    notes.set_tags(store, gru, ["baseline", "big"])
    notes.archive(store, elman)
    at = open_page("views/compare.py")

    def shown_runs() -> set[int]:
        return set(at.dataframe[0].value["run"].dropna().astype(int))

    assert shown_runs() == {lstm, gru} and at.multiselect(key="cmp_tags").options == ["baseline", "big"]
    at.multiselect(key="cmp_tags").set_value(["big"]).run()
    assert shown_runs() == {gru}
    at.multiselect(key="cmp_tags").set_value([]).run()
    at.checkbox(key="cmp_archived").check().run()
    assert not at.exception and shown_runs() == {lstm, gru, elman}

    notes.archive(store, lstm)
    notes.archive(store, gru)
    at = open_page("views/compare.py")
    assert "archived" in at.info[0].value  # every run is archived: said so, not "no trained runs yet"


def test_archive_on_the_train_page(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    done = done_run(store, grammar_file)
    running = store.create_run(tiny_config(grammar_file, "gru").to_dict(), status="running", pid=os.getpid())
    at = open_page("views/train.py", show=f"{done},{running}")
    assert at.button(key=f"train_archive{running}").disabled  # training: stop it first
    at.button(key=f"train_archive{done}").click().run()
    assert not at.exception and store.get_run(done).archived
    assert all(f"#{done} " not in option for option in at.multiselect[0].options)
    assert done not in set(at.dataframe[0].value["run"])
    at.checkbox(key="train_archived").check().run()
    assert done in set(at.dataframe[0].value["run"])
    at.multiselect[0].set_value([done]).run()
    at.button(key=f"train_unarchive{done}").click().run()
    assert not at.exception and not store.get_run(done).archived
