"""Nothing lost (issue 14): a run folder is never handed out twice, even when the store's database is deleted
or emptied and ids would start again at 1."""
from __future__ import annotations

import os

from lmcore.runs.store import RunStore

from .conftest import tiny_config


def test_a_deleted_database_never_reuses_a_run_folder(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    first = store.create_run(tiny_config(grammar_file).to_dict())
    folder = store.run_dir(first)
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes(b"the old run's weights")
    store.path.unlink()  # the user deletes runs.sqlite (or it is lost); the run folders stay
    fresh = RunStore(lmcore_home)
    second = fresh.create_run(tiny_config(grammar_file).to_dict())
    assert second > first and not fresh.run_dir(second).exists()
    assert (folder / "best.pt").read_bytes() == b"the old run's weights"


def test_an_emptied_table_skips_past_the_highest_folder(lmcore_home, grammar_file):
    store = RunStore(lmcore_home)
    for run_id in (3, 12):
        store.run_dir(run_id).mkdir(parents=True)
    assert store.create_run(tiny_config(grammar_file).to_dict()) == 13
    assert store.create_run(tiny_config(grammar_file).to_dict()) == 14  # and on from there


def _trained(store: RunStore, cfg) -> int:
    """A run trained to its end in this process, as a job would (checkpoints and rows in the store)."""
    from lmcore.runs import jobs, service
    from lmcore.training.trainer import train
    run_id = store.create_run(cfg.to_dict(), status="running")
    service.record_result(store, run_id, train(cfg, store.run_dir(run_id), jobs.StoreHooks(store, run_id)))
    return run_id


def test_a_run_killed_in_its_final_test_evaluation_resumes_to_that_evaluation_only(lmcore_home, grammar_file):
    """It trained a whole extra epoch (step 735 instead of 630)."""
    from lmcore.runs import service
    store = RunStore(lmcore_home)
    run_id = _trained(store, tiny_config(grammar_file, "gru", max_steps=0, epochs=1))
    steps = store.get_run(run_id)["step"]
    store.update_run(run_id, status="interrupted", test_ppl=None)  # the kill came during the test evaluation
    cfg = service.resume(store, run_id).cfg
    assert cfg.train.epochs == 1
    [run] = service.wait_for(store, [run_id], timeout=120)
    assert run["status"] == "done" and run["step"] == steps and run["test_ppl"] is not None


def test_a_plain_resume_keeps_the_runs_own_step_bound(lmcore_home, grammar_file):
    """A --max-steps run resumed with a plain --resume trained all its epochs (its bound overwritten with 0)."""
    from lmcore.runs import service
    store = RunStore(lmcore_home)
    cfg = tiny_config(grammar_file, "lstm", max_steps=20, epochs=3)
    run_id = store.create_run(cfg.to_dict(), status="stopped")
    assert service.resume(store, run_id, start=False).cfg.train.max_steps == 20
    store.update_run(run_id, status="stopped")  # a bound given on resume still replaces it
    assert service.resume(store, run_id, max_steps=40, start=False).cfg.train.max_steps == 40


def test_a_restart_from_step_0_drops_the_old_curve(lmcore_home, grammar_file):
    """Without last.pt a resume starts at step 0; it kept the old metric rows (92 rows for 66 steps)."""
    from lmcore.runs import service
    store = RunStore(lmcore_home)
    run_id = store.create_run(tiny_config(grammar_file).to_dict(), status="interrupted")
    store.add_metrics(run_id, {"step": 10, "epoch": 0.5, "lr": 0.01, "train_loss": 3.0, "valid_loss": 3.0,
                               "valid_ppl": 20.0, "tokens_per_s": 1.0, "wall_time": 1.0})
    service.resume(store, run_id, start=False)
    assert store.metrics(run_id) == []


def test_a_reused_pid_does_not_keep_a_dead_run_running(lmcore_home, grammar_file):
    """The job died and a newer process took its pid: the row stayed `running` for ever, holding a slot."""
    import subprocess
    import time

    from lmcore.runs import service
    store = RunStore(lmcore_home)
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        dead = store.create_run(tiny_config(grammar_file).to_dict(), status="running")
        store.update_run(dead, pid=stranger.pid, started_at=time.time() - 600)  # the run began 10 min earlier
        alive = store.create_run(tiny_config(grammar_file).to_dict(), status="running")
        store.update_run(alive, pid=stranger.pid, started_at=time.time())  # the process is this run's own
        assert service.mark_interrupted(store) == [dead]
        assert store.get_run(alive)["status"] == "running"
    finally:
        stranger.kill()
        stranger.wait()


def test_a_failed_run_with_its_last_checkpoint_can_be_resumed(lmcore_home, grammar_file):
    """An error after the claim (a full disk while checkpointing, a device that is gone) left the run `failed`,
    and resume refused it for ever although last.pt was intact."""
    from lmcore.runs import service
    store = RunStore(lmcore_home)
    cfg = tiny_config(grammar_file, "gru", max_steps=0, epochs=1)
    run_id = _trained(store, cfg)
    store.update_run(run_id, status="failed", message="OSError: no space left on device")
    assert service.resumable(store, store.get_run(run_id))
    service.resume(store, run_id, epochs=2, start=False)
    assert store.get_run(run_id)["status"] == "queued"
    never_checkpointed = store.create_run(cfg.to_dict(), status="failed")
    assert not service.resumable(store, store.get_run(never_checkpointed))


def test_processes_started_together_never_exceed_the_training_slots(lmcore_home, grammar_file):
    """With max_parallel_jobs = 2, four `train` processes started together all ran at once in 2 of 5 trials:
    the slot check and the insert were two transactions. Eight processes race for the slots here."""
    import subprocess
    import time

    from .conftest import PYTHON, REPO, subprocess_env
    RunStore(lmcore_home)  # the data folder
    (lmcore_home / "lmcore.toml").write_text("[limits]\nmax_parallel_jobs = 2\n")
    race = (
        "import sys, time\n"
        "from lmcore.limits import LimitError\n"
        "from lmcore.runs import service\n"
        "from lmcore.runs.store import RunStore\n"
        "from tests.conftest import tiny_config\n"
        "store = RunStore(sys.argv[1]); cfg = tiny_config(sys.argv[2])\n"
        "time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # all start at the same instant\n"
        "try:\n"
        "    service.start_here(store, cfg); print('ran')\n"
        "except LimitError:\n"
        "    print('refused')\n")
    start = time.time() + 3.0
    procs = [subprocess.Popen([PYTHON, "-c", race, str(lmcore_home), str(grammar_file), str(start)], cwd=REPO,
                              env=subprocess_env(), stdout=subprocess.PIPE, text=True) for _ in range(8)]
    outcomes = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert sorted(outcomes) == ["ran"] * 2 + ["refused"] * 6, outcomes
    assert len(RunStore(lmcore_home).list_runs(("running",))) == 2


def test_one_corrupt_row_is_named_and_breaks_nothing_else(lmcore_home, grammar_file, capsys):
    """One row with corrupt config JSON broke `runs` for every run and crashed Compare and Hidden states."""
    import sqlite3

    from lmcore.cli.main import main

    from .test_pages import open_page
    store = RunStore(lmcore_home)
    good = _trained(store, tiny_config(grammar_file, "gru", max_steps=20))
    bad = store.create_run(tiny_config(grammar_file).to_dict(), status="done")
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET config = '{\"corpus\": [' WHERE id = ?", (bad,))
    assert [r["id"] for r in store.list_runs()] == [good]
    assert [i for i, _ in store.broken_runs()] == [bad]
    assert main(["--home", str(lmcore_home), "runs"]) == 0
    out, err = capsys.readouterr()
    assert f"{good:5d}" in out and "broken" in err and "not JSON" in err
    for page in ("views/train.py", "views/compare.py", "views/hidden.py"):
        at = open_page(page)  # asserts no exception
        if page == "views/train.py":
            assert any(f"#{bad} cannot be shown" in w.value for w in at.warning)


def test_cli_stop_and_delete(lmcore_home, grammar_file, capsys):
    """There was no CLI `stop` or `delete`; delete asks (or takes --yes) and removes the run's files and rows."""
    from lmcore.cli.main import main
    store = RunStore(lmcore_home)
    queued = store.create_run(tiny_config(grammar_file).to_dict(), status="queued")
    home = ["--home", str(lmcore_home)]
    assert main([*home, "stop", str(queued)]) == 0
    assert store.get_run(queued)["status"] == "stopped"
    running = store.create_run(tiny_config(grammar_file).to_dict(), status="running", pid=os.getpid())  # alive
    assert main([*home, "delete", str(running), "--yes"]) == 2  # training: stop it first
    assert "stop it first" in capsys.readouterr().err
    done = _trained(store, tiny_config(grammar_file, "gru", max_steps=10))
    folder = store.run_dir(done)
    assert any(folder.glob("*.pt"))
    assert main([*home, "delete", str(done)]) == 2  # not a terminal, no --yes: refused, nothing removed
    assert folder.is_dir() and "add --yes" in capsys.readouterr().err
    assert main([*home, "delete", str(done), "--yes"]) == 0
    assert not folder.exists() and store.get_run(done) is None and store.metrics(done) == []


def test_the_train_page_deletes_a_finished_run_after_asking(lmcore_home, grammar_file):
    from .test_state_lasts import reopen
    store = RunStore(lmcore_home)
    done = _trained(store, tiny_config(grammar_file, "gru", max_steps=10))
    at = reopen("views/train.py", {"show": str(done)})
    [confirm] = [b for b in at.button if b.label == "Delete for good"]  # inside the Delete popover
    assert store.get_run(done) is not None  # nothing removed before the confirmation
    confirm.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert store.get_run(done) is None and not store.run_dir(done).exists()


def test_only_the_run_service_changes_a_runs_status():
    """The checks, the slot claim and the row were assembled in four places, each with a different subset. Every
    module of the app is read here: none but lmcore/runs/service.py creates a run's row, claims a run or a slot,
    or writes a status (the store's own methods aside)."""
    import ast

    from .conftest import REPO
    sources = [p for p in REPO.glob("**/*.py") if p.parts[len(REPO.parts)] in ("lmcore", "views", "app.py",
                                                                              "appstate", "benchmarks")]
    allowed = {REPO / "lmcore/runs/service.py", REPO / "lmcore/runs/store.py"}
    offenders = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name = node.func.attr
            sets_status = name == "update_run" and any(k.arg == "status" for k in node.keywords)
            if (name in ("create_run", "claim", "_check_slot") or sets_status) and path not in allowed:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    assert len(sources) > 60 and offenders == []
