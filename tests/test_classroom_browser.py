"""Issue 20 in a real browser: a classroom server (lmcore.toml with a per-person limit and an instructor
passphrase), two students and the instructor, each in a browser context of their own (a context is one browser:
its own cookies). Runs are written straight into the store with their owners, and the queue's one slot is held by
a run of this test's process, so nothing trains. Screenshots go to test-artifacts/."""
from __future__ import annotations

import os
import re

from lmcore.classroom import hash_passphrase
from lmcore.runs.store import RunStore

from .conftest import grammar_lines, tiny_config
from .test_browser import chromium, new_context, settle, streamlit_server

PASSPHRASE = "the class of 2026"
BOB = "<b>Bob</b>"  # a display name with markup: shown as typed, never as HTML


def identity_cookie(context) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "lmcore_id")


def open_train(page, url: str, shown: list[int]) -> None:
    page.goto(f"{url}/train?n=1&show={','.join(map(str, shown))}")  # one run in the form: "Train 1 model"
    page.get_by_role("button", name="Train 1 model").wait_for()
    page.get_by_text("Every run in this data folder").wait_for()


def sign_as(page, name: str) -> None:
    field = page.get_by_role("textbox", name="Your name")
    field.fill(name)
    field.press("Enter")
    page.get_by_test_id("stSidebar").get_by_text(f"You: {name} · student").wait_for()


def expect_buttons(page, name: str, count: int) -> None:
    """Waits for the page to show `count` such buttons: a rerun (after the passphrase, say) draws them a moment
    after the sidebar has changed, so counting at once can read the page before it."""
    from playwright.sync_api import expect  # imported where used, as test_browser does

    expect(page.get_by_role("button", name=name, exact=True)).to_have_count(count, timeout=30_000)


def train_one(page) -> None:
    page.get_by_role("button", name="Train 1 model").click()
    page.wait_for_timeout(300)
    settle(page, "classroom-queue")


def test_two_students_and_the_instructor(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "lmcore.toml").write_text(
        f'[limits]\nmax_parallel_jobs = 1\nmax_active_runs_per_person = 2\n\n'
        f'[classroom]\ninstructor_passphrase_sha256 = "{hash_passphrase(PASSPHRASE)}"\n')
    text = tmp_path / "class.txt"
    text.write_text("\n".join(grammar_lines(200)) + "\n")
    store = RunStore(home)
    store.create_run(tiny_config(text).to_dict(), status="running", pid=os.getpid(), owner="cli:teacher",
                     owner_name="the teacher")  # holds the one slot: what the students queue waits
    with streamlit_server(home, tmp_path / "streamlit.log", LMCORE_START_PAGE="corpus") as app, \
            chromium() as browser:
        url = app["url"]
        ada_context, bob_context, prof_context = (new_context(browser) for _ in range(3))
        ada, bob = ada_context.new_page(), bob_context.new_page()
        for page, name in ((ada, "Ada"), (bob, BOB)):
            open_train(page, url, [])
            sign_as(page, name)
        ada_id, bob_id = identity_cookie(ada_context), identity_cookie(bob_context)
        assert ada_id != bob_id and ada_id not in ada.url
        ada_run = store.create_run(tiny_config(text).to_dict(), status="done", owner=ada_id, owner_name="Ada")
        bob_run = store.create_run(tiny_config(text, "gru").to_dict(), status="done", owner=bob_id, owner_name=BOB)

        # each student sees both runs; Stop, Edit and Delete only on their own, the owner's name on the other
        for page, other in ((ada, f"{BOB}'s run"), (bob, "Ada's run")):
            open_train(page, url, [ada_run, bob_run])
            page.get_by_text(other, exact=True).wait_for()
            expect_buttons(page, "Delete", 1)
            expect_buttons(page, "Edit", 1)
            page.get_by_text(f"#{ada_run} tiny lstm", exact=True).wait_for()  # the run's line, bold
            page.get_by_text(f"#{bob_run} tiny gru", exact=True).wait_for()
        settle(bob, "classroom-student")

        # a per-person limit of 2: Ada's third run is refused, and Bob still queues his
        for _ in range(2):
            train_one(ada)
        train_one(ada)
        ada.get_by_text(re.compile("max_active_runs_per_person = 2")).wait_for()
        train_one(bob)
        bob.close()  # he is done: a closed tab stops its page's live refresh
        mine = {who: [r.id for r in store.list_runs() if r.owner == who and r.status == "queued"]
                for who in (ada_id, bob_id)}
        assert (len(mine[ada_id]), len(mine[bob_id])) == (2, 1), mine
        # where her runs wait, and why: the queue serves people in turn, so Bob's one run goes before her second
        ada.get_by_text(re.compile(rf"Your #{mine[ada_id][1]} .* is 3rd in line.*{BOB}'s later run goes first")).wait_for()

        # the same browser: a reload and a second tab are still Ada (her name, her buttons, her queue), after she
        # had typed another name and then hers again (the cookie had kept the other one)
        sign_as(ada, "Adda")
        sign_as(ada, "Ada")
        for _ in range(100):  # the page's script writes the cookie once its frame has loaded
            if next((c["value"] for c in ada_context.cookies() if c["name"] == "lmcore_name"), None) == "Ada":
                break
            ada.wait_for_timeout(100)
        ada.reload()
        ada.get_by_test_id("stSidebar").get_by_text("You: Ada · student").wait_for()
        second_tab = ada_context.new_page()
        open_train(second_tab, url, [ada_run, bob_run])
        second_tab.get_by_test_id("stSidebar").get_by_text("You: Ada · student").wait_for()
        second_tab.get_by_text(re.compile(r"Your #\d+ .* is 1st in line")).wait_for()
        expect_buttons(second_tab, "Delete", 1)
        assert identity_cookie(ada_context) == ada_id
        ada.close(), second_tab.close()

        # the instructor: the passphrase, then Delete on every run; deletes Bob's
        prof = prof_context.new_page()
        open_train(prof, url, [ada_run, bob_run])
        prof.get_by_text(f"{BOB}'s run", exact=True).wait_for()  # the runs are drawn: none has a Delete for her yet
        expect_buttons(prof, "Delete", 0)
        prof.get_by_test_id("stSidebar").get_by_text("Instructor", exact=True).click()
        passphrase = prof.get_by_role("textbox", name="Instructor passphrase")
        passphrase.fill(PASSPHRASE)
        passphrase.press("Enter")
        prof.get_by_test_id("stSidebar").get_by_text("You: anonymous · instructor").wait_for()
        expect_buttons(prof, "Delete", 2)
        prof.get_by_role("button", name="Delete", exact=True).nth(1).click()  # the runs in the URL's order
        prof.locator(f".st-key-delete{bob_run} button").click()
        prof.get_by_text(f"#{bob_run} tiny gru", exact=True).wait_for(state="detached")
        settle(prof, "classroom-instructor")
        assert store.get_run(bob_run) is None and store.get_run(ada_run) is not None
