"""Issue 20, the library layer: every run has an owner; only the owner or an instructor may change it (refused
before the store is touched); lmcore.toml's [classroom] names the instructors; per-person limits; the queue
serves people in turn. A real SQLite store; no run trains (a recording executor stands in for job processes)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import tomllib

import pytest

from lmcore.classroom import Classroom, hash_passphrase, is_instructor_passphrase, load_classroom
from lmcore.cli.main import main
from lmcore.limits import LimitError, Limits, load_limits
from lmcore.runs import notes, service, sweeps
from lmcore.runs.fairshare import fair_order, ordinal, queue_position, training_counts
from lmcore.runs.people import NotYours, Person, can_change, machine_owner, mine, new_anonymous_id
from lmcore.runs.store import SCHEMA, RunStore
from tests.conftest import tiny_config

ALICE = Person("oidc:alice@uni.edu", "Alice")
BOB = Person("anon:bob-browser", "Bob")
TEACHER = Person("oidc:prof@uni.edu", "Prof", instructor=True)
ROOMY = Limits(max_active_runs_per_person=50, max_parallel_jobs=2)  # room for the fair-order tests' queues


@pytest.fixture
def store(lmcore_home) -> RunStore:
    return RunStore(lmcore_home)


def queued(store, grammar_file, person, n: int = 1, limits=ROOMY) -> list[int]:
    """n runs queued by the person through the run service, none started."""
    return service.queue(store, [tiny_config(grammar_file)] * n, limits, start=False, person=person)


def a_run(store, grammar_file, person=ALICE, status="done", **columns) -> int:
    [run_id] = queued(store, grammar_file, person)
    store.update_run(run_id, status=status, **columns)
    return run_id


class Recording:
    """An executor that starts nothing: it records the runs pump hands it (they stay `starting`, with this
    test's live pid, so they hold their slot)."""
    name = "local"

    def __init__(self):
        self.started: list[int] = []

    def start(self, store, run_id, threads, max_parallel, body=None):
        store.update_run(run_id, pid=os.getpid())
        self.started.append(run_id)

    def reap(self, store):
        return []


# --- who owns what ----------------------------------------------------------------------------------------------
def test_runs_and_sweeps_record_their_owner_and_the_machine_owner_by_default(store, grammar_file):
    [mine_id] = queued(store, grammar_file, ALICE)
    [machine_id] = queued(store, grammar_file, None)
    run = store.get_run(mine_id)
    assert (run.owner, run.owner_name, run["owner"]) == (ALICE.id, "Alice", ALICE.id)
    assert store.get_run(machine_id).owner == machine_owner().id and machine_owner().id.startswith("cli:")
    assert machine_owner().instructor
    spec = sweeps.SweepSpec(base=tiny_config(grammar_file), hidden=[8], seeds=[1])
    sweep = store.get_sweep(sweeps.submit_sweep(store, spec, start=False, limits=ROOMY, person=BOB))
    assert (sweep["owner"], sweep["owner_name"]) == (BOB.id, "Bob")
    assert {r.owner for r in sweeps.sweep_runs(store, sweep["id"])} == {BOB.id}
    assert [r.id for r in mine(store.list_runs(), ALICE)] == [mine_id]


def test_an_old_store_gains_owner_columns_in_place(lmcore_home, grammar_file):
    lmcore_home.mkdir(parents=True)
    with sqlite3.connect(lmcore_home / "runs.sqlite") as db:  # as written before runs had owners (or notes)
        db.executescript(SCHEMA)
        db.execute("INSERT INTO runs (name, created_at, updated_at, status, config, corpus_source, arch) "
                   "VALUES ('old', 1, 1, 'done', ?, 'x', 'lstm')", (json.dumps(tiny_config(grammar_file).to_dict()),))
        db.execute("INSERT INTO sweeps (name, created_at, updated_at, spec) VALUES ('old', 1, 1, '{}')")
    store = RunStore(lmcore_home)
    [old] = store.list_runs()
    assert (old.name, old.owner, old.owner_name) == ("old", "", "") and store.get_sweep(1)["owner"] == ""
    assert can_change(BOB, old) and notes.rename(store, old.id, "anyone may", person=BOB).display_name == "anyone may"


def test_anonymous_ids_are_unguessable_and_distinct():
    ids = {new_anonymous_id() for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("anon:") and len(i) == 5 + 32 for i in ids)


# --- only the owner or an instructor changes a run ----------------------------------------------------------------
ACTIONS = {  # action: (the run's status and columns, what is done to it)
    "stop": ({"status": "queued"}, lambda s, i, p: service.stop(s, i, person=p)),
    "resume": ({"status": "stopped"}, lambda s, i, p: service.resume(s, i, start=False, limits=ROOMY, person=p)),
    "delete": ({}, lambda s, i, p: service.delete(s, i, person=p)),
    "rename": ({}, lambda s, i, p: notes.rename(s, i, "mine now", person=p)),
    "note": ({}, lambda s, i, p: notes.set_note(s, i, "scribbled", person=p)),
    "set tags": ({}, lambda s, i, p: notes.set_tags(s, i, ["x"], person=p)),
    "add tags": ({}, lambda s, i, p: notes.add_tags(s, i, ["x"], person=p)),
    "remove tags": ({"tags": '["keep"]'}, lambda s, i, p: notes.remove_tags(s, i, ["keep"], person=p)),
    "keep": ({}, lambda s, i, p: notes.keep(s, i, name="n", note="t", person=p)),
    "archive": ({}, lambda s, i, p: notes.archive(s, i, person=p)),
    "unarchive": ({"archived": 1}, lambda s, i, p: notes.unarchive(s, i, person=p)),
}


def run_for(store, grammar_file, action: str, owner: Person) -> int:
    columns = dict(ACTIONS[action][0])
    run_id = a_run(store, grammar_file, owner, columns.pop("status", "done"), **columns)
    store.run_dir(run_id).mkdir(parents=True, exist_ok=True)
    return run_id


def row(store, run_id) -> dict:
    with sqlite3.connect(store.path) as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())


@pytest.mark.parametrize("action", list(ACTIONS))
def test_another_persons_action_is_refused_and_nothing_is_written(store, grammar_file, action):
    run_id = run_for(store, grammar_file, action, ALICE)
    before = row(store, run_id)
    with pytest.raises(NotYours) as refused:
        ACTIONS[action][1](store, run_id, BOB)
    message = str(refused.value)
    assert message.startswith(f"run {run_id} belongs to Alice; only its owner or an instructor can ")
    assert ALICE.id not in message and "alice@" not in message
    assert row(store, run_id) == before and store.run_dir(run_id).is_dir()


@pytest.mark.parametrize("actor", [ALICE, TEACHER], ids=["owner", "instructor"])
@pytest.mark.parametrize("action", list(ACTIONS))
def test_the_owner_and_an_instructor_may(store, grammar_file, action, actor):
    run_id = run_for(store, grammar_file, action, ALICE)
    before = row(store, run_id)
    ACTIONS[action][1](store, run_id, actor)
    after = store.get_run(run_id)
    assert after is None if action == "delete" else row(store, run_id) != before
    if after is not None:
        assert after.owner == ALICE.id  # acting on a run never takes it over


def test_without_a_person_every_run_is_changeable_as_before(store, grammar_file):
    run_id = a_run(store, grammar_file, ALICE)
    assert notes.rename(store, run_id, "laptop").display_name == "laptop"
    assert service.delete(store, run_id) is not None and store.get_run(run_id) is None


def test_another_persons_sweep_is_neither_stopped_nor_resumed(store, grammar_file):
    spec = sweeps.SweepSpec(base=tiny_config(grammar_file), hidden=[8], seeds=[1, 2])
    sweep_id = sweeps.submit_sweep(store, spec, start=False, limits=ROOMY, person=ALICE)
    with pytest.raises(NotYours, match=f"sweep {sweep_id} belongs to Alice; only its owner or an instructor can stop"):
        sweeps.stop_sweep(store, sweep_id, person=BOB)
    assert {r.status for r in sweeps.sweep_runs(store, sweep_id)} == {"queued"}
    with pytest.raises(NotYours):
        sweeps.resume_sweep(store, sweep_id, person=BOB)
    assert len(sweeps.stop_sweep(store, sweep_id, person=TEACHER)) == 2


def test_the_same_grid_is_a_duplicate_only_among_ones_own_sweeps(store, grammar_file):
    spec = sweeps.SweepSpec(base=tiny_config(grammar_file), hidden=[8], seeds=[1])
    sweeps.submit_sweep(store, spec, start=False, limits=ROOMY, person=ALICE)
    sweeps.submit_sweep(store, spec, start=False, limits=ROOMY, person=BOB)  # the class runs the same exercise
    with pytest.raises(sweeps.DuplicateSweepError):
        sweeps.submit_sweep(store, spec, start=False, limits=ROOMY, person=ALICE)


# --- lmcore.toml: [classroom] and the per-person limits ---------------------------------------------------------
def write_toml(home, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "lmcore.toml").write_text(text)


def test_classroom_table_and_per_person_limits_are_read(lmcore_home):
    secret = hash_passphrase("correct horse battery")
    write_toml(lmcore_home, f'[classroom]\ninstructors = ["Prof@Uni.edu", "sub-123"]\n'
                            f'instructor_passphrase_sha256 = "{secret}"\n'
                            "[limits]\nmax_params = 5000\nmax_active_runs_per_person = 2\nmax_epochs_per_person = 3\n")
    classroom, limits = load_classroom(lmcore_home), load_limits(lmcore_home)
    assert classroom.instructors == ("prof@uni.edu", "sub-123") and classroom.names_instructor(" PROF@uni.edu")
    assert not classroom.names_instructor("alice@uni.edu") and not classroom.names_instructor("")
    assert is_instructor_passphrase("correct horse battery", classroom)
    assert not is_instructor_passphrase("correct horse batter", classroom)
    assert (limits.max_active_runs_per_person, limits.max_epochs_per_person, limits.max_params_per_person) == (2, 3, 5000)
    assert (Limits().max_params_per_person, Limits().max_epochs_per_person) == (Limits().max_params, Limits().max_epochs)
    assert load_classroom(lmcore_home / "elsewhere") == Classroom()  # no lmcore.toml: no instructors


@pytest.mark.parametrize("text, words", [
    ("[classroom]\nteachers = []\n", "unknown setting(s) teachers"),
    ("[classroom]\ninstructors = \"prof@uni.edu\"\n", "instructors = "),
    ("[classroom]\ninstructors = [\"\"]\n", "instructors = "),
    ("[classroom]\ninstructors = [3]\n", "instructors = "),
    ("[classroom]\ninstructor_passphrase_sha256 = 12\n", "instructor_passphrase_sha256 = 12"),
    ("[classroom]\ninstructor_passphrase_sha256 = \"hunter2\"\n", "64 hex digits"),
    ("classroom = 1\n", "unknown setting(s) classroom"),
    ("[teachers]\nx = 1\n", "unknown setting(s) teachers"),
])
def test_a_bad_classroom_table_is_refused_naming_the_key(lmcore_home, text, words):
    write_toml(lmcore_home, text)
    with pytest.raises(LimitError) as err:
        load_classroom(lmcore_home)
    assert words in str(err.value) and "lmcore.toml" in str(err.value)


@pytest.mark.parametrize("key, value", [("max_active_runs_per_person", "0"), ("max_params_per_person", "1.5"),
                                        ("max_epochs_per_person", "true"), ("max_runs_per_person", "3")])
def test_a_bad_per_person_limit_is_refused_naming_the_key(lmcore_home, key, value):
    write_toml(lmcore_home, f"[limits]\n{key} = {value}\n")
    with pytest.raises(LimitError, match=key):
        load_limits(lmcore_home)


def test_passphrase_hashes_plain_salted_and_none():
    plain = hashlib.sha256(b"correct horse battery").hexdigest()
    for stored in (plain, plain.upper(), hash_passphrase("correct horse battery", salt="s4lt")):
        assert is_instructor_passphrase("correct horse battery", Classroom(passphrase_sha256=stored))
        assert not is_instructor_passphrase("Correct horse battery", Classroom(passphrase_sha256=stored))
    assert hash_passphrase("same words here") != hash_passphrase("same words here")  # a random salt each time
    assert not is_instructor_passphrase("", Classroom()) and not is_instructor_passphrase("x", Classroom())
    assert not is_instructor_passphrase("\ud800", Classroom(passphrase_sha256=plain))
    with pytest.raises(ValueError, match="at least 8 characters"):
        hash_passphrase("short")


# --- per-person limits ------------------------------------------------------------------------------------------
def test_a_students_fifth_run_is_refused_while_another_student_still_queues(store, grammar_file, lmcore_home):
    write_toml(lmcore_home, "[limits]\nmax_active_runs_per_person = 4\nmax_parallel_jobs = 2\n")
    queued(store, grammar_file, ALICE, 3, limits=None)
    store.update_run(queued(store, grammar_file, ALICE, limits=None)[0], status="running", pid=os.getpid())
    with pytest.raises(LimitError) as refused:
        queued(store, grammar_file, ALICE, limits=None)
    assert "you have 4 runs queued or training" in str(refused.value)
    assert "max_active_runs_per_person = 4, set in this server's lmcore.toml" in str(refused.value)
    assert str(lmcore_home) not in str(refused.value)  # a student reads it: no server path
    assert len(store.list_runs()) == 4  # nothing written
    with pytest.raises(LimitError) as too_many:  # a batch bigger than the limit: waiting would not help
        queued(store, grammar_file, BOB, 5, limits=None)
    assert "5 runs at once are more than this server lets one person" in str(too_many.value)
    assert "start 4 or fewer at a time" in str(too_many.value) and "wait" not in str(too_many.value)
    assert len(queued(store, grammar_file, BOB, limits=None)) == 1
    assert len(queued(store, grammar_file, TEACHER, 5, limits=None)) == 5  # instructors: the server's limits only
    store.update_run(mine(store.list_runs(), ALICE)[0].id, status="done")
    assert len(queued(store, grammar_file, ALICE, limits=None)) == 1  # one ended: room again


def test_per_person_parameters_and_epochs_bind_students_only(store, grammar_file, lmcore_home):
    write_toml(lmcore_home, "[limits]\nmax_epochs_per_person = 2\nmax_params_per_person = 1000\n")
    long = tiny_config(grammar_file, epochs=3)
    with pytest.raises(LimitError, match=r"3 epochs is over this server's per-person limit of 2 "
                                         r"\(max_epochs_per_person in .*lmcore\.toml\)"):
        service.queue(store, [long], start=False, person=ALICE)
    with pytest.raises(LimitError, match=r"over this server's per-person limit of 1,000 \(max_params_per_person"):
        service.queue(store, [tiny_config(grammar_file)], start=False, person=ALICE)
    assert store.list_runs() == []
    assert len(service.queue(store, [long], start=False, person=TEACHER)) == 1
    assert len(service.queue(store, [long], start=False)) == 1  # no person named: the global limits only


# --- the queue serves people in turn ------------------------------------------------------------------------------
def test_pump_serves_a_second_person_before_the_first_ones_sweep(store, grammar_file):
    alice = queued(store, grammar_file, ALICE, 6)
    [bob] = queued(store, grammar_file, BOB)
    executor = Recording()
    assert service.pump(store, max_parallel=2, executor=executor) == [alice[0], bob]
    assert service.pump(store, max_parallel=2, executor=executor) == []  # both slots held
    store.update_run(alice[0], status="done")
    assert service.pump(store, max_parallel=2, executor=executor) == [alice[1]]
    assert executor.started == [alice[0], bob, alice[1]]


def test_fair_order_takes_people_in_turn_and_the_first_queued_between_equals(store, grammar_file):
    alice, bob = queued(store, grammar_file, ALICE, 3), queued(store, grammar_file, BOB, 2)
    [carol] = queued(store, grammar_file, Person("anon:carol", "Carol"))
    runs = store.list_runs(("queued",))
    assert [r.id for r in fair_order(runs, training_counts([]))] == [alice[0], bob[0], carol, alice[1], bob[1],
                                                                      alice[2]]
    store.update_run(alice[0], status="running")
    store.update_run(alice[1], status="starting")
    counts = training_counts(store.list_runs())
    assert counts == {ALICE.id: 2}
    order = fair_order(store.list_runs(("queued",)), counts)
    assert [r.id for r in order] == [bob[0], carol, bob[1], alice[2]]


def test_queue_position_says_where_and_why(store, grammar_file):
    alice = queued(store, grammar_file, ALICE, 4)
    for run_id in alice[:2]:
        store.update_run(run_id, status="running", pid=os.getpid())
    [bob] = queued(store, grammar_file, BOB)
    assert queue_position(store, bob, ROOMY) == (1, (
        "1st in line: 2 of 2 slots busy; the queue takes people in turn: Alice queued earlier but has 2 training "
        "or ahead, you 0"))
    assert queue_position(store, alice[2], ROOMY) == (2, (
        "2nd in line: 2 of 2 slots busy; the queue takes people in turn: Bob's later run goes first, Bob having "
        "fewer training or ahead than you"))
    assert queue_position(store, alice[0], ROOMY) is None  # training, not waiting
    free = Limits(max_parallel_jobs=4)
    assert queue_position(store, bob, free) == (1, "1st in line: 2 of 4 slots busy; it starts at the queue's next turn")
    store.update_run(bob, status="stopped")
    assert queue_position(store, alice[3], ROOMY)[1].endswith("your own 1 earlier run goes first")
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]


# --- the CLI acts as the machine's owner --------------------------------------------------------------------------
def test_the_cli_acts_as_the_machine_owner_and_says_so_once(store, grammar_file, lmcore_home, capsys):
    run_id = a_run(store, grammar_file, ALICE)
    assert main(["--home", str(lmcore_home), "rename", str(run_id), "by the instructor"]) == 0
    out, err = capsys.readouterr()
    line = f"acting as the machine's owner ({machine_owner().id}): may change every run"
    assert out == f"run {run_id} is now named by the instructor\n" and err.count(line) == 1
    assert main(["--home", str(lmcore_home), "note", str(run_id)]) == 0  # reading changes nothing: no line
    assert "acting as" not in capsys.readouterr().err
    assert main(["--home", str(lmcore_home), "rename", "99", "x"]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # a refused command keeps its one error line


def test_cli_hash_passphrase_prints_a_line_lmcore_toml_takes(monkeypatch, capsys, lmcore_home):
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert main(["classroom", "hash-passphrase"]) == 0
    line = capsys.readouterr().out
    assert "correct horse" not in line
    write_toml(lmcore_home, "[classroom]\n" + line)
    assert tomllib.loads("[classroom]\n" + line)["classroom"]["instructor_passphrase_sha256"]
    assert is_instructor_passphrase("correct horse battery", load_classroom(lmcore_home))


def test_a_students_sweep_over_the_limit_is_refused_whole_and_the_other_still_gets_a_slot(store, grammar_file,
                                                                                          lmcore_home):
    """A sweep of 6 runs from a student held to 4 at once queues none of them; one of 4 fits, and the other
    student's run, queued after it, is served before the sweep's second run."""
    write_toml(lmcore_home, "[limits]\nmax_active_runs_per_person = 4\nmax_parallel_jobs = 2\n")
    big = sweeps.SweepSpec(base=tiny_config(grammar_file), hidden=[8, 9, 10], seeds=[1, 2])
    with pytest.raises(LimitError, match="max_active_runs_per_person = 4"):
        sweeps.submit_sweep(store, big, start=False, person=ALICE)
    assert store.list_runs() == [] and store.list_sweeps() == []  # refused before anything was written
    fits = sweeps.SweepSpec(base=tiny_config(grammar_file), hidden=[8, 9], seeds=[1, 2])
    sweep_id = sweeps.submit_sweep(store, fits, start=False, person=ALICE)
    alice = [r.id for r in store.list_runs() if r.sweep_id == sweep_id]
    [bob] = queued(store, grammar_file, BOB, limits=None)
    executor = Recording()
    assert service.pump(store, max_parallel=2, executor=executor) == [min(alice), bob]
