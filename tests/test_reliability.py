"""Training faults and a shared server: killed jobs found at the next start, divergence and resuming on the
Train page, the store under several writers, two sessions training at once, and the deployment's limits."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

from lmcore.cli.main import main
from lmcore.limits import LimitError, Limits, load_limits
from lmcore.runs import jobs, service
from lmcore.runs.store import RunStore
from lmcore.training.checkpoints import load_checkpoint
from lmcore.training.trainer import train
from tests.conftest import submit

from .conftest import REPO, dead_pid, grammar_lines, subprocess_env, tiny_config

pytestmark = pytest.mark.usefixtures("end_job_processes")  # see conftest.py


def _lost_run(store: RunStore, grammar_file) -> int:
    """A run the store believes is training, whose process was killed (SIGKILL leaves no word)."""
    run_id = store.create_run(tiny_config(grammar_file, "elman").to_dict(), status="running")
    store.update_run(run_id, pid=dead_pid(), started_at=time.time())
    return run_id


def _app(page: str, **query) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# --- killed jobs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["runs"], ["eval", "nope.pt"], ["sample", "nope.pt"],
                                  ["ngram", "--corpus", "nope.txt"], ["train", "--corpus", "nope.txt"],
                                  ["inspect", "trace", "--run", "nope.pt", "--text", "a b"]], ids=lambda a: a[0])
def test_every_cli_command_marks_killed_runs_interrupted(argv, lmcore_home, grammar_file, capsys):
    store = RunStore()
    run_id = _lost_run(store, grammar_file)
    main(["--home", str(lmcore_home), *argv])
    capsys.readouterr()
    run = store.get_run(run_id)
    assert run["status"] == "interrupted" and "killed" in run["message"]


def test_app_start_marks_killed_runs_interrupted(lmcore_home, grammar_file):
    store = RunStore()
    run_id = _lost_run(store, grammar_file)
    _app("views/compare.py")  # any page: the first one a session opens checks
    assert store.get_run(run_id)["status"] == "interrupted"


def test_a_fresh_data_folder_is_not_created_by_commands_that_need_none(tmp_path, capsys):
    home = tmp_path / "never"
    assert main(["--home", str(home), "eval", "nope.pt"]) == 2
    assert not home.exists()


# --- divergence and resuming on the Train page -----------------------------------------------------------

def _train_in_store(store: RunStore, cfg, **kwargs) -> int:
    run_id = store.create_run(cfg.to_dict(), status="running")
    result = train(cfg, store.run_dir(run_id), jobs.StoreHooks(store, run_id), **kwargs)
    service.record_result(store, run_id, result)
    return run_id


def test_diverged_run_keeps_its_last_good_checkpoint_and_the_train_page_says_so(lmcore_home, grammar_file):
    store = RunStore()
    cfg = tiny_config(grammar_file, "elman", optimizer="sgd", lr=1e6, clip=0.0, max_steps=50, eval_every=1)
    cfg.model.activation = "relu"
    run_id = _train_in_store(store, cfg)
    run = store.get_run(run_id)
    assert run["status"] == "diverged" and "last good checkpoint is kept" in run["message"]
    for kind, row in store.checkpoints(run_id).items():
        model = load_checkpoint(row["path"])[0]
        assert all(torch.isfinite(t).all() for t in model.state_dict().values()), kind
    at = _app("views/train.py", show=str(run_id))
    warnings = [w.value.replace("\\", "") for w in at.warning]
    assert any(w.startswith(f"#{run_id}: blew up") and "lower learning rate" in w for w in warnings), warnings
    assert not [b for b in at.button if b.label == "Resume"]  # a diverged run is retrained, not resumed


def test_resume_button_carries_a_stopped_run_to_its_end(lmcore_home, grammar_file):
    store = RunStore()
    cfg = tiny_config(grammar_file, "gru", max_steps=0, epochs=1, eval_every=20)
    run_id = store.create_run(cfg.to_dict(), status="running")

    class StopAt40(jobs.StoreHooks):  # the Stop button, pressed at step 40
        def should_stop(self):
            return self.steps >= 40

        def on_step(self, step, total_steps, epoch, loss):
            self.steps = step
            super().on_step(step, total_steps, epoch, loss)

    hooks = StopAt40(store, run_id)
    hooks.steps = 0
    service.record_result(store, run_id, train(cfg, store.run_dir(run_id), hooks))
    assert store.get_run(run_id)["status"] == "stopped" and store.get_run(run_id)["step"] == 40

    at = _app("views/train.py", show=str(run_id))
    [resume] = [b for b in at.button if b.label == "Resume"]
    resume.click().run()
    assert not at.exception and not at.error
    assert store.get_run(run_id)["status"] in ("queued", "starting", "running", "done")
    [run] = service.wait_for(store, [run_id], timeout=120)
    assert run["status"] == "done", run["message"]
    assert run["step"] == run["total_steps"] > 40  # to the end of its one planned epoch
    steps = [m["step"] for m in store.metrics(run_id)]
    assert steps == sorted(set(steps)) and steps[-1] == run["step"]


# --- the store under load --------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from lmcore.runs.store import RunStore
    store = RunStore(sys.argv[1])
    run_id = store.create_run({"name": "w" + sys.argv[2], "corpus": {"source": "x"}, "model": {"arch": "lstm"},
                               "train": {}}, status="running")
    for step in range(1, 201):
        store.add_metrics(run_id, {"step": step, "epoch": step / 200, "valid_ppl": 100.0 / step})
        store.update_run(run_id, step=step)
        store.set_checkpoint(run_id, "last", "/x/last.pt", {"step": step})
    store.update_run(run_id, status="done")
""")


def test_pages_read_while_several_jobs_write(lmcore_home):
    store = RunStore()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(lmcore_home), str(i)], cwd=REPO,
                                env=subprocess_env(lmcore_home), stderr=subprocess.PIPE, text=True) for i in range(4)]
    reads = 0
    while any(w.poll() is None for w in writers):
        runs = store.list_runs()
        store.metrics([r["id"] for r in runs])
        for r in runs:
            store.checkpoints(r["id"])
        reads += 1
    for w in writers:
        assert w.wait() == 0, w.stderr.read()  # no "database is locked" anywhere
    assert reads > 5
    runs = store.list_runs()
    assert len(runs) == 4 and all(r["status"] == "done" and r["step"] == 200 for r in runs)
    for r in runs:
        assert [m["step"] for m in store.metrics(r["id"])] == list(range(1, 201))
    with store._connect() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000


# --- two sessions ------------------------------------------------------------------------------------------

def _session_with_one_tiny_run(name: str) -> AppTest:
    at = _app("views/corpus.py")
    at.radio[0].set_value("upload a .txt file").run()
    at.file_uploader[0].set_value((name, ("\n".join(grammar_lines(600)) + "\n").encode(), "text/plain")).run()
    at.switch_page("views/train.py").run()
    at.slider[0].set_value(1).run()
    at.number_input(key="hid1").set_value(16)
    at.number_input[0].set_value(8)  # epochs: long enough to be seen running
    at.run()
    return at


def test_two_sessions_training_at_once_each_see_their_own_runs_progress(lmcore_home):
    a, b = _session_with_one_tiny_run("alice.txt"), _session_with_one_tiny_run("bob.txt")
    a.button[0].click().run()
    b.button[0].click().run()
    assert not a.exception and not b.exception
    [ra], [rb] = (int(x) for x in a.query_params["show"]), (int(x) for x in b.query_params["show"])
    assert ra != rb
    store = RunStore()
    seen = {ra: set(), rb: set()}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for at, mine, theirs in ((a, ra, rb), (b, rb, ra)):
            at.run()
            assert not at.exception
            shown = " ".join(m.value for m in at.markdown)
            assert f"#{mine} " in shown and f"#{theirs} " not in shown  # each session sees its own run
            seen[mine].add(store.get_run(mine)["step"])
        if all(store.get_run(i)["status"] == "done" for i in (ra, rb)):
            break
        time.sleep(0.3)
    for at in (a, b):
        at.run()
        assert "`done`" in " ".join(m.value for m in at.markdown)
        assert len(at.get("plotly_chart")) == 3  # ppl, training loss, lr
    assert all(len(steps) >= 2 for steps in seen.values()), seen  # progress seen between start and end
    assert all(store.get_run(i)["status"] == "done" for i in (ra, rb))
    # both really trained at the same time
    runs = [store.get_run(i) for i in (ra, rb)]
    assert runs[0]["started_at"] < runs[1]["finished_at"] and runs[1]["started_at"] < runs[0]["finished_at"]


# --- the deployment's limits ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("[limits\n", "is not valid TOML"),
    ("[limits]\nmax_param = 5\n", "unknown setting(s) max_param"),
    ("[limit]\nmax_params = 5\n", "unknown setting(s) limit"),
    ("[limits]\nmax_epochs = 'ten'\n", "max_epochs = 'ten' must be a whole number"),
    ("[limits]\nmax_upload_mb = -1\n", "max_upload_mb = -1 must be a number above 0"),
    ("[limits]\nmax_parallel_jobs = true\n", "max_parallel_jobs = True must be"),
])
def test_a_bad_limits_file_is_a_clear_error_everywhere(text, message, lmcore_home, capsys):
    lmcore_home.mkdir(parents=True)
    (lmcore_home / "lmcore.toml").write_text(text)
    with pytest.raises(LimitError) as err:
        load_limits()
    assert str(err.value).startswith(str(lmcore_home / "lmcore.toml")) and message in str(err.value)
    assert main(["train", "--corpus", "builtin:agreement", "--max-steps", "1"]) == 2
    assert message in capsys.readouterr().err
    at = _app("views/corpus.py")
    at.switch_page("views/train.py").run()
    assert not at.exception and "limits file is not usable" in at.error[0].value


def test_limits_file_from_lmcore_config_and_defaults(tmp_path, monkeypatch, lmcore_home):
    assert load_limits() == Limits()
    default = Limits()
    assert default.max_parallel_jobs >= 1 and default.max_params == 10_000_000 and default.max_epochs == 50
    config = tmp_path / "server.toml"
    config.write_text("[limits]\nmax_parallel_jobs = 1\nmax_queued_runs = 1\nmax_params = 5_000\n"
                      "max_epochs = 3\nmax_upload_mb = 0.5\n")
    monkeypatch.setenv("LMCORE_CONFIG", str(config))
    limits = load_limits()
    assert (limits.max_parallel_jobs, limits.max_queued_runs, limits.max_params, limits.max_epochs,
            limits.max_upload_bytes) == (1, 1, 5_000, 3, 2**19)
    monkeypatch.setenv("LMCORE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(LimitError, match="no such limits file"):
        load_limits()


def test_submit_enforces_parallel_queue_params_and_epochs(lmcore_home, grammar_file):
    store = RunStore()
    (lmcore_home / "lmcore.toml").write_text("[limits]\nmax_parallel_jobs = 1\nmax_queued_runs = 1\n"
                                            "max_params = 5_000\nmax_epochs = 3\n")
    cfg = tiny_config(grammar_file, "elman", max_steps=15)
    with pytest.raises(LimitError, match=r"4 epochs is over this server's limit of 3 \(max_epochs in .*lmcore\.toml\)"):
        submit_cfg = tiny_config(grammar_file, "elman", epochs=4)
        submit(store, submit_cfg)
    big = tiny_config(grammar_file, "lstm")
    big.model.hidden, big.model.vocab_size = 64, 21
    with pytest.raises(LimitError, match=r"has 22,693 parameters, over this server's limit of 5,000"):
        submit(store, big)
    first = submit(store, cfg)                 # starts: the one slot
    second = submit(store, cfg)                # waits: max_parallel_jobs = 1
    assert store.get_run(second)["status"] == "queued"
    with pytest.raises(LimitError, match=r"1 runs are already waiting for a slot and another run does not fit "
                                         r"\(max_queued_runs"):
        submit(store, cfg)
    with pytest.raises(LimitError, match=r"max_parallel_jobs = 1"):
        service.start_here(store, cfg)             # the CLI's foreground training waits its turn too
    runs = service.wait_for(store, [first, second], timeout=120)
    assert [r["status"] for r in runs] == ["done", "done"]
    assert runs[1]["started_at"] >= runs[0]["finished_at"] - 1.0  # one after the other
    # vocab_size 0: the service reads the corpus to count the parameters before anything is queued
    sneaky = tiny_config(grammar_file, "lstm")
    sneaky.model.hidden = 64
    with pytest.raises(LimitError, match="over this server's limit of 5,000"):
        submit(store, sneaky)
    # and a job checks again: the limit may have been lowered while the run waited in the queue
    (lmcore_home / "lmcore.toml").write_text("[limits]\nmax_params = 50_000\n")
    queued = submit(store, sneaky, start=False)
    (lmcore_home / "lmcore.toml").write_text("[limits]\nmax_params = 5_000\n")
    [run] = service.wait_for(store, [queued], timeout=60)
    assert run["status"] == "failed" and "over this server's limit of 5,000" in run["message"]
