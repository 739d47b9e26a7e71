"""Issue 20, the app layer (appstate.identity and the pages): who is at a browser, and what the pages let them do.

AppTest runs app.py as it runs in a browser, but it sends no cookies: each AppTest is a browser seen for the first
time, and the cookie itself is checked in chromium (tests/test_classroom_browser.py). Sign-in: AppTest cannot talk
to an identity provider, so the signed-in path is tested with AppTest's own stand-in for st.user (`at.user`, with
`is_logged_in`) and an [auth] section in `at.secrets`, which is what makes the app offer sign-in."""
from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

import appstate
from appstate import identity
from lmcore.classroom import hash_passphrase
from lmcore.runs import service, sweeps
from lmcore.runs.people import Person
from lmcore.runs.store import RunStore

from .conftest import REPO, tiny_config
from .test_run_notes import done_run

PASSPHRASE = "correct horse battery"
ADA = Person("anon:" + "a" * 32, "<b>Ada</b> *x*")  # a display name with markup: shown literally everywhere
BOB_ID = "anon:" + "b" * 32
AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s" * 32, "client_id": "id",
        "client_secret": "secret", "server_metadata_url": "https://accounts.example/.well-known/openid-configuration"}


@pytest.fixture
def classroom(lmcore_home):
    """A classroom server's data folder: a passphrase, prof@uni.edu an instructor, one run at a time."""
    lmcore_home.mkdir(parents=True, exist_ok=True)
    (lmcore_home / "lmcore.toml").write_text(
        f'[limits]\nmax_parallel_jobs = 1\nmax_active_runs_per_person = 2\n\n[classroom]\n'
        f'instructors = ["prof@uni.edu"]\ninstructor_passphrase_sha256 = "{hash_passphrase(PASSPHRASE)}"\n')
    return lmcore_home


def open_app(page: str | None = None, person_id: str | None = None, **params) -> AppTest:
    """app.py in a new session (a browser seen for the first time, or, given person_id, one whose cookie names it)."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    if person_id:
        at.session_state[identity.ID_KEY] = person_id
    at.query_params.update(params)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def you(at: AppTest) -> str:
    return next(m.value for m in at.sidebar.markdown if m.value.startswith("**You:**"))


def owned(store: RunStore, run_id: int, person: Person) -> int:
    store.update_run(run_id, owner=person.id, owner_name=person.name)
    return run_id


def snapshot(store: RunStore) -> list:
    return [dict(r) for r in store.list_runs()] + store.list_sweeps()


# --- who ---------------------------------------------------------------------------------------------------------
def test_a_laptop_without_a_classroom_acts_as_the_machine_owner(lmcore_home):
    at = open_app()
    assert "this machine's owner" in you(at)
    assert not at.sidebar.text_input  # no name, no passphrase: there is no one else


def test_an_anonymous_browser_keeps_one_unguessable_identity_per_session(classroom):
    at = open_app()
    first = at.session_state[identity.ID_KEY]
    assert identity.ANONYMOUS_ID.fullmatch(first) and you(at) == "**You:** anonymous · student"
    at.switch_page("views/compare.py").run()
    at.run()
    assert at.session_state[identity.ID_KEY] == first and first not in str(at.query_params)
    assert open_app().session_state[identity.ID_KEY] != first  # another browser, another person
    assert at.session_state[identity.ID_KEY] == first


def test_a_display_name_is_kept_and_shown_literally(classroom):
    at = open_app()
    at.sidebar.text_input(key=identity.NAME_KEY).set_value(ADA.name).run()
    assert you(at) == f"**You:** {appstate.md(ADA.name)} · student"
    at.sidebar.text_input(key=identity.NAME_KEY).set_value("two\x00lines").run()  # refused, the old name kept
    assert "Name not changed" in at.sidebar.error[0].value and ADA.name in you(at).replace("\\", "")


def test_the_instructor_passphrase_unlocks_this_session_only_and_is_never_echoed(classroom):
    at = open_app()
    at.sidebar.text_input(key=identity.PASSPHRASE_KEY).set_value("not the passphrase").run()
    assert "not the instructor passphrase" in at.sidebar.error[0].value and "student" in you(at)
    assert at.session_state[identity.PASSPHRASE_KEY] == ""  # the field is emptied: nothing typed is kept
    at.sidebar.text_input(key=identity.PASSPHRASE_KEY).set_value(PASSPHRASE).run()
    assert "instructor" in you(at) and not at.sidebar.error
    shown = " ".join(str(e.value) for kind in ("markdown", "caption", "success", "error", "text_input")
                     for e in getattr(at.sidebar, kind))
    assert PASSPHRASE not in shown
    assert "student" in you(open_app())  # another session (tab) is not an instructor
    at.sidebar.button(key="me_leave").click().run()
    assert "student" in you(at)


@pytest.mark.parametrize("email, role", [("Prof@Uni.edu", "instructor"), ("ada@uni.edu", "student")])
def test_a_signed_in_person_is_named_by_their_email_and_lmcore_toml(classroom, email, role):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": True, "email": email, "name": "Pat <i>Doe</i>", "sub": "12345"}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert you(at) == f"**You:** {appstate.md('Pat <i>Doe</i>')} · {role}"
    assert [b.label for b in at.sidebar.button] == ["Sign out"] and not at.sidebar.text_input
    assert identity.ID_KEY not in at.session_state  # no anonymous identity, no cookie


def test_sign_in_is_offered_where_configured_and_anonymous_until_then(classroom):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception and at.sidebar.button(key="me_sign_in").label == "Sign in"
    assert "anonymous · student" in you(at) and at.sidebar.text_input(key=identity.NAME_KEY)


# --- what the pages let them do ------------------------------------------------------------------------------------
def test_another_persons_run_has_its_owners_name_instead_of_buttons(classroom, grammar_file):
    store = RunStore(classroom)
    theirs = owned(store, done_run(store, grammar_file), ADA)
    mine = owned(store, done_run(store, grammar_file, "gru"), Person(BOB_ID, "Bob"))
    at = open_app("views/train.py", BOB_ID, show=f"{theirs},{mine}")
    keys = {b.key for b in at.button}
    assert f"delete{mine}" in keys and f"train_archive{mine}" in keys
    assert not {f"delete{theirs}", f"stop{theirs}", f"resume{theirs}", f"train_archive{theirs}"} & keys
    assert not any(t.key == f"train_name{theirs}" for t in at.text_input)
    assert appstate.md(f"{ADA.name}'s run") in [c.value for c in at.caption]
    at.checkbox(key="train_mine").check().run()
    assert set(at.dataframe[0].value["run"]) == {mine}
    linked = open_app("views/train.py", BOB_ID, train_mine="true")  # Only mine, in the URL like the other filters
    assert linked.checkbox(key="train_mine").value and set(linked.dataframe[0].value["run"]) == {mine}


def test_a_request_on_another_persons_run_is_refused_on_the_page_and_changes_nothing(classroom, grammar_file):
    """A stale page or a crafted widget value reaches appstate even though the page drew no button: each action
    says NotYours's message with st.error and writes nothing."""
    store = RunStore(classroom)
    done = owned(store, done_run(store, grammar_file), ADA)
    running = store.create_run(tiny_config(grammar_file).to_dict(), status="running", pid=os.getpid(),
                               owner=ADA.id, owner_name=ADA.name)
    sweep = sweeps.submit_sweep(store, sweeps.SweepSpec(base=tiny_config(grammar_file), hidden=[8], seeds=[1]),
                                start=False, person=ADA)
    before = snapshot(store)

    def every_action(done: int, running: int, sweep: int):
        from appstate import sweeps as sweep_page
        from appstate import training
        from appstate.home import get_store
        store = get_store()
        training.stop_run(store.get_run(running))
        training.resume_run(store.get_run(done))
        training.delete_run(store.get_run(done))
        training.keep_run(store.get_run(done), "mine now", "", "")
        training.archive_run(store.get_run(done))
        sweep_page.stop_sweep(sweep)
        sweep_page.resume_sweep(sweep)

    at = AppTest.from_function(every_action, args=(done, running, sweep), default_timeout=60)
    at.session_state[identity.ID_KEY] = BOB_ID
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value.replace("\\", "") for e in at.error]
    assert len(errors) == 7 and all("belongs to <b>Ada</b> *x*; only its owner or an instructor" in e
                                    for e in errors), errors
    assert snapshot(store) == before


def test_the_train_page_says_where_your_queued_runs_wait_and_why(classroom, grammar_file):
    store = RunStore(classroom)
    store.create_run(tiny_config(grammar_file).to_dict(), status="running", pid=os.getpid(),  # the one slot
                     owner=ADA.id, owner_name=ADA.name)
    bob = Person(BOB_ID, "Bob")
    waiting = service.queue(store, [tiny_config(grammar_file)] * 2, start=False, person=bob)
    at = open_app("views/train.py", BOB_ID)
    said = [c.value.replace("\\", "") for c in at.caption if "in line" in c.value]  # as rendered
    assert len(said) == 2 and f"#{waiting[0]} " in said[0] and "1st in line: 1 of 1 slots busy" in said[0], said
    assert "2nd in line" in said[1] and "your own 1 earlier run goes first" in said[1]
    assert not [c for c in open_app("views/train.py").caption if "in line" in c.value]  # not for someone else


def test_owners_reach_a_csv_only_when_an_instructor_asks_and_only_by_display_name(classroom, grammar_file):
    store = RunStore(classroom)
    run_id = owned(store, done_run(store, grammar_file), ADA)

    def tables(run_id: int):
        import pandas as pd
        import streamlit as st

        from appstate import identity
        from appstate.home import get_store
        runs = [get_store().get_run(run_id)]
        table = pd.DataFrame({"run": [run_id, None], "ppl": [20.0, 30.0]})  # a run and the n-gram's row
        st.session_state["owners"] = identity.with_owners(table, runs, True).to_dict("list")

    student = AppTest.from_function(tables, args=(run_id,), default_timeout=60)
    student.session_state[identity.ID_KEY] = BOB_ID
    student.run()
    assert "owner" not in student.session_state["owners"]  # a student's tick (a crafted one) adds nothing
    at = open_app("views/compare.py", BOB_ID)
    assert not [c for c in at.checkbox if c.key == "cmp_owners"]  # nor is it offered
    at.sidebar.text_input(key=identity.PASSPHRASE_KEY).set_value(PASSPHRASE).run()
    assert at.checkbox(key="cmp_owners").value is False  # offered, off until ticked
    teacher = AppTest.from_function(tables, args=(run_id,), default_timeout=60)
    teacher.session_state[identity.ID_KEY] = BOB_ID
    teacher.session_state[identity.INSTRUCTOR_KEY] = True
    teacher.run()
    assert teacher.session_state["owners"]["owner"] == [ADA.name, ""]  # the name, never ADA.id


def test_a_students_upload_stays_theirs_and_a_classmates_bare_url_opens_on_their_own_corpus(classroom):
    """Bob's upload had become every new tab's corpus (one last-corpus file for the data folder) and was listed
    to the whole class under "a file uploaded before"."""
    bob = open_app("views/corpus.py", BOB_ID)
    bob.radio[0].set_value("upload a .txt file").run()
    diary = "\n".join(f"bob private diary line {i} : my pin is 4417 ." for i in range(60)) + "\n"
    bob.file_uploader[0].set_value(("diary.txt", diary.encode(), "text/plain")).run()
    assert not bob.exception and "diary.txt" in bob.subheader[0].value
    ada = open_app("views/corpus.py", ADA.id)
    assert "python-docs" in ada.subheader[0].value  # her own (the default), not Bob's
    assert "a file uploaded before" not in ada.radio[0].options and "4417" not in " ".join(
        h.proto.body for h in ada.get("html"))
    again = open_app("views/corpus.py", BOB_ID)  # Bob's new tab: his corpus, and his upload offered again
    assert "diary.txt" in again.subheader[0].value and "a file uploaded before" in again.radio[0].options


def test_the_instructor_sees_whose_run_each_one_is_beside_its_buttons(classroom, grammar_file):
    """Their buttons had taken the place of the owner's name: every run looked alike, a student's to delete."""
    store = RunStore(classroom)
    theirs = owned(store, done_run(store, grammar_file), ADA)
    at = open_app("views/train.py", BOB_ID, show=f"{theirs}")
    at.sidebar.text_input(key=identity.PASSPHRASE_KEY).set_value(PASSPHRASE).run()
    assert "instructor" in you(at) and f"delete{theirs}" in {b.key for b in at.button}
    captions = [c.value for c in at.caption]
    assert appstate.md(f"{ADA.name}'s run") in captions
    assert "Everyone on this server sees a run's name, note and tags." in captions  # the Edit popover says so
