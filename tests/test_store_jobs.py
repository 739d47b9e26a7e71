"""The run store (SQLite) and the job launcher (one OS process per run, a self-draining queue)."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from lmcore.corpus.dataset import CorpusSpec
from lmcore.ngram import cached_baseline
from lmcore.runs import jobs, service
from lmcore.runs.jobs import pid_alive
from lmcore.runs.service import mark_interrupted, wait_for
from lmcore.runs.service import stop as request_stop
from lmcore.paths import default_home
from lmcore.runs.store import RunStore
from lmcore.training.checkpoints import load_checkpoint
from tests.conftest import dead_pid, grammar_lines, submit, tiny_config


@pytest.fixture
def store(lmcore_home) -> RunStore:
    return RunStore()  # from LMCORE_HOME


pytestmark = pytest.mark.usefixtures("end_job_processes")  # see conftest.py


def _config(source, arch="elman", **train) -> dict:
    return tiny_config(source, arch, **train).to_dict()


def _wait_status(store: RunStore, run_id: int, status: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = store.get_run(run_id)
        if run["status"] == status:
            return run
        assert run["status"] in ("queued", "starting", "running"), run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {store.get_run(run_id)['status']} after {timeout} s")


# --- the store --------------------------------------------------------------------------------

def test_store_lives_in_lmcore_home(store, lmcore_home):
    assert default_home() == lmcore_home
    assert store.home == lmcore_home and (lmcore_home / "runs.sqlite").is_file()
    assert store.run_dir(7) == lmcore_home / "runs" / "00007"


def test_create_get_update_list_delete(store, grammar_file):
    cfg = _config(grammar_file, "gru")
    a, b = store.create_run(cfg), store.create_run(_config(grammar_file, "lstm"), status="running")
    assert b == a + 1
    run = store.get_run(a)
    assert run["status"] == "queued" and run["config"] == cfg and run["arch"] == "gru"
    assert run["corpus_source"] == str(grammar_file) and run["name"] == "tiny gru"
    assert run["stop_requested"] == 0 and run["step"] == 0 and run["params"] is None
    before = run["updated_at"]
    store.update_run(a, params=1234, message="hello", step=5)
    run = store.get_run(a)
    assert (run["params"], run["message"], run["step"]) == (1234, "hello", 5) and run["updated_at"] >= before
    assert [r["id"] for r in store.list_runs()] == [a, b]
    assert [r["id"] for r in store.list_runs(("running",))] == [b]
    store.add_metrics(a, {"step": 1, "epoch": 0.5})
    store.set_checkpoint(a, "best", Path("/x/best.pt"), {"step": 1})
    store.delete_run(a)
    assert store.get_run(a) is None and store.metrics(a) == [] and store.checkpoints(a) == {}
    assert store.get_run(b)["status"] == "running"


def test_claim_only_from_the_expected_status(store, grammar_file):
    run_id = store.create_run(_config(grammar_file))
    assert not store.claim(run_id, "running", "done")
    assert store.get_run(run_id)["status"] == "queued"
    assert store.claim(run_id, "queued", "starting", pid=42)
    run = store.get_run(run_id)
    assert run["status"] == "starting" and run["pid"] == 42
    assert not store.claim(run_id, "queued", "starting")  # a second taker loses


def test_claim_race_has_one_winner(store, grammar_file):
    run_id = store.create_run(_config(grammar_file))
    wins, barrier = [], threading.Barrier(8)

    def take():
        barrier.wait()
        wins.append(store.claim(run_id, "queued", "starting"))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_metrics_and_checkpoints_round_trip(store, grammar_file):
    a, b = store.create_run(_config(grammar_file)), store.create_run(_config(grammar_file))
    rows = [{"step": s, "epoch": s / 10, "lr": 20.0, "train_loss": 5.0 - s / 10, "valid_loss": 4.0,
             "valid_ppl": 54.6, "tokens_per_s": 1000.0, "wall_time": s * 0.1} for s in (20, 10)]
    for r in rows:
        store.add_metrics(a, r)
    store.add_metrics(b, {"step": 3, "epoch": 1, "valid_ppl": float("inf")})
    got = store.metrics(a)
    assert [r["step"] for r in got] == [10, 20]  # ordered by step
    assert {k: got[1][k] for k in rows[0]} == rows[0] and got[0]["run_id"] == a
    both = store.metrics([a, b])
    assert [(r["run_id"], r["step"]) for r in both] == [(a, 10), (a, 20), (b, 3)]
    assert both[2]["valid_ppl"] == float("inf") and both[2]["lr"] is None
    assert store.metrics([]) == []

    store.set_checkpoint(a, "init", Path("/r/init.pt"), {"step": 0, "epoch": 0})
    store.set_checkpoint(a, "best", Path("/r/best.pt"), {"step": 10, "epoch": 0.5, "valid_ppl": 60.0})
    store.set_checkpoint(a, "best", Path("/r/best.pt"), {"step": 20, "epoch": 1.0, "valid_ppl": 50.0})
    cps = store.checkpoints(a)
    assert list(cps) == ["init", "best"]
    assert cps["best"]["step"] == 20 and cps["best"]["valid_ppl"] == 50.0 and cps["best"]["path"] == "/r/best.pt"
    assert cps["init"]["valid_ppl"] is None and store.checkpoints(b) == {}


def test_baselines_cache(store, docs_file):
    assert store.get_baseline("k", 3) is None
    store.set_baseline("k", 3, valid_ppl=100.0, test_ppl=110.0, vocab=50, seconds=0.5)
    assert store.get_baseline("k", 3) == {"corpus_key": "k", "ngram_order": 3, "valid_ppl": 100.0,
                                          "test_ppl": 110.0, "vocab": 50, "seconds": 0.5}
    assert store.get_baseline("k", 2) is None

    spec = CorpusSpec(source=str(docs_file), tokenizer="words")
    first = cached_baseline(store, spec, order=2)
    assert first["order"] == 2 and first["valid_ppl"] > 1 and first["vocab"] > 100
    # the second call reads the store: prove it by changing the stored row
    from lmcore.corpus.dataset import spec_fingerprint
    key = spec_fingerprint(spec)
    store.set_baseline(key, 2, valid_ppl=1.5, test_ppl=2.5, vocab=first["vocab"], seconds=0.0)
    assert cached_baseline(store, spec, order=2)["valid_ppl"] == 1.5
    assert cached_baseline(store, {**spec.__dict__}, order=2)["valid_ppl"] == 1.5  # a dict spec too
    # another tokenizer or an edited file is another key, computed afresh
    assert cached_baseline(store, CorpusSpec(source=str(docs_file), tokenizer="word"), 2)["valid_ppl"] != 1.5
    docs_file.write_text(docs_file.read_text(encoding="utf-8") + "one more line of text\n", encoding="utf-8")
    assert spec_fingerprint(spec) != key
    assert cached_baseline(store, spec, order=2)["valid_ppl"] != 1.5


# --- jobs -------------------------------------------------------------------------------------

def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0)


def test_two_runs_in_parallel_processes(store, grammar_file):
    cfg_a = tiny_config(grammar_file, "elman", max_steps=20)
    cfg_b = tiny_config(grammar_file, "lstm", max_steps=20)
    a = submit(store, cfg_a, max_parallel=2)
    b = submit(store, cfg_b, max_parallel=2)
    # both started at once: neither waits in the queue
    assert {store.get_run(a)["status"], store.get_run(b)["status"]} <= {"starting", "running", "done"}
    runs = wait_for(store, [a, b], timeout=120)
    for run, arch in zip(runs, ("elman", "lstm")):
        assert run["status"] == "done", (run["message"], (store.run_dir(run["id"]) / "log.txt").read_text())
        assert run["arch"] == arch and run["step"] == 20 and run["total_steps"] == 20
        assert run["pid"] and run["pid"] != os.getpid()
        assert run["params"] > 0 and run["vocab"] > 3 and run["device"] == "cpu"
        assert run["best_valid_ppl"] > 1 and run["test_ppl"] > 1 and run["finished_at"] >= run["started_at"]
        rows = store.metrics(run["id"])
        assert rows and rows[-1]["step"] == 20
        assert run["best_valid_ppl"] == pytest.approx(min(r["valid_ppl"] for r in rows))
        cps = store.checkpoints(run["id"])
        assert {"init", "best", "last", "epoch_1"} <= set(cps)
        model, cfg, _vocab, meta = load_checkpoint(cps["best"]["path"])
        assert cfg.model.arch == arch and meta["step"] == 20
        assert Path(cps["best"]["path"]).parent == store.run_dir(run["id"])
    assert runs[0]["pid"] != runs[1]["pid"]


def test_queue_drains_by_itself_and_queued_run_stops_at_once(store, grammar_file, tmp_path):
    with pytest.raises(ValueError, match="missing.txt"):  # a corpus that is not there is refused before a row
        submit(store, tiny_config(tmp_path / "missing.txt", "elman"), max_parallel=1)
    assert store.list_runs() == []
    # the first job fails at once (its corpus vanished after it was queued); failing, it starts the next run
    gone = tmp_path / "gone.txt"
    gone.write_text(grammar_file.read_text())
    first = submit(store, tiny_config(gone, "elman"), start=False)
    second = submit(store, tiny_config(grammar_file, "gru", max_steps=10), start=False)
    third = submit(store, tiny_config(grammar_file, "elman", max_steps=10), start=False)
    gone.unlink()
    request_stop(store, third)
    run = store.get_run(third)
    assert run["status"] == "stopped" and run["message"] == "stopped before it started" and run["finished_at"]
    service.pump(store, max_parallel=1)
    assert store.get_run(second)["status"] == "queued"
    # no pump from here on: the first job starts the second as it ends
    failed = _wait_status(store, first, "failed")
    assert "gone.txt: no such file" in failed["message"]
    done = _wait_status(store, second, "done")
    assert done["started_at"] >= failed["finished_at"] - 1.0 and done["step"] == 10
    assert store.get_run(third)["status"] == "stopped" and store.metrics(third) == []


@pytest.fixture(scope="module")
def long_runs(tmp_path_factory):
    """Two runs with a 60 s budget, both running and past their first evaluation (best.pt and last.pt written):
    one to kill, one to stop."""
    folder = tmp_path_factory.mktemp("long")
    source = folder / "grammar.txt"
    source.write_text("\n".join(grammar_lines(600)) + "\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LMCORE_HOME", str(folder / "home"))
        store = RunStore()
        (folder / "home" / "lmcore.toml").write_text("[limits]\nmax_epochs = 100_000\n")  # a deployment's own limit
        cfg = tiny_config(source, "elman", epochs=100_000, max_steps=0, time_budget=60)
        ids = [submit(store, cfg, max_parallel=2) for _ in range(2)]
        for run_id in ids:
            _wait_status(store, run_id, "running")
            deadline = time.monotonic() + 30
            while not {"best", "last"} <= set(store.checkpoints(run_id)) and time.monotonic() < deadline:
                time.sleep(0.05)
        yield store, ids
        procs = [p for p in jobs._children if p.pid in {store.get_run(i)["pid"] for i in ids}]
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def test_killed_job_is_marked_interrupted(long_runs):
    store, (run_id, _) = long_runs
    pid = store.get_run(run_id)["pid"]
    assert store.get_run(run_id)["status"] == "running"
    assert pid_alive(pid) and mark_interrupted(store) == []
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(pid)  # a zombie (not yet reaped) counts as gone
    assert mark_interrupted(store) == [run_id]
    run = store.get_run(run_id)
    assert run["status"] == "interrupted" and "killed" in run["message"] and run["finished_at"]
    assert mark_interrupted(store) == []
    # its checkpoints up to the kill still load
    model, *_ = load_checkpoint(store.checkpoints(run_id)["best"]["path"])
    assert model.cfg.arch == "elman"


def test_interrupted_run_resumes_from_its_last_checkpoint(long_runs):
    store, (run_id, _) = long_runs
    assert store.get_run(run_id)["status"] == "interrupted"
    at = jobs.resume_point(store, run_id)["step"]
    assert at > 0 and store.checkpoints(run_id)["last"]["step"] == at
    cfg = service.resume(store, run_id, max_steps=at + 30).cfg
    assert cfg.train.max_steps == at + 30 and store.get_run(run_id)["message"] == f"resumed from step {at}"
    [run] = wait_for(store, [run_id], timeout=60)
    assert run["status"] == "done" and run["step"] == at + 30, run["message"]
    assert run["started_step"] == at  # the job recorded where it started: its ETA counted its own 30 steps
    steps = [m["step"] for m in store.metrics(run_id)]
    assert steps == sorted(set(steps)) and steps[-1] == at + 30  # one curve: no step logged twice
    assert load_checkpoint(store.checkpoints(run_id)["last"]["path"])[3]["step"] == at + 30


def test_a_resumed_runs_eta_counts_the_steps_of_its_own_job(store, grammar_file):
    """Resumed at step 100 of 300 and at 150 ten seconds later: 150 steps to go at 5 a second, not at 15."""
    run_id = store.create_run(tiny_config(grammar_file).to_dict())
    store.update_run(run_id, status="running", step=150, total_steps=300, started_step=100,
                     started_at=time.time() - 10)
    text = jobs.progress_text(store.get_run(run_id))
    assert text.startswith("step 150/300 · 50% · ETA ") and text.endswith(" s")
    assert 29 <= int(text.split("ETA ")[1].split(" s")[0]) <= 31, text
    store.update_run(run_id, step=100)  # nothing trained yet since the resume: no rate to go by
    assert jobs.progress_text(store.get_run(run_id)) == "step 100/300 · 33%"


def test_interrupted_run_gets_checkpoint_rows_that_match_its_files(store, grammar_file):
    """Killed between writing last.pt and its row, the row is stale; marking the run interrupted fixes it."""
    [run] = wait_for(store, [submit(store, tiny_config(grammar_file, "elman", max_steps=12))], timeout=60)
    run_id, last = run["id"], store.checkpoints(run["id"])["last"]
    assert run["status"] == "done" and last["step"] == 12
    assert max(store.run_dir(run_id).glob("*.pt"), key=lambda f: f.stat().st_mtime).name == "last.pt"  # saved last
    store.set_checkpoint(run_id, "last", Path(last["path"]), {"step": 4, "epoch": 0})  # the row one save behind
    with store._connect() as db:
        db.execute("DELETE FROM checkpoints WHERE run_id = ? AND kind = 'best'", (run_id,))  # a row never written
    store.update_run(run_id, status="running", pid=dead_pid())
    assert mark_interrupted(store) == [run_id]
    rows = store.checkpoints(run_id)
    assert rows["last"]["step"] == 12 == jobs.resume_point(store, run_id)["step"]
    assert rows["best"]["path"] == str(store.run_dir(run_id) / "best.pt") and rows["best"]["step"] > 0


def test_stop_request_ends_a_running_job(long_runs):
    store, (_, run_id) = long_runs
    t0 = time.monotonic()
    request_stop(store, run_id)
    assert store.get_run(run_id)["stop_requested"] == 1
    [run] = wait_for(store, [run_id], timeout=60)
    assert time.monotonic() - t0 < 30  # far sooner than its 60 s budget
    assert run["status"] == "stopped" and run["message"].startswith("stopped by request at step ")
    assert run["step"] == int(run["message"].rsplit(" ", 1)[1]) and run["step"] > 0
    assert store.metrics(run_id)[-1]["step"] == run["step"]
    assert "best" in store.checkpoints(run_id)


def test_submit_refuses_bad_settings_before_queueing(store, grammar_file):
    cfg = tiny_config(grammar_file, "elman")
    cfg.model.dropout = 1.5
    with pytest.raises(ValueError, match="dropout"):
        submit(store, cfg)
    assert store.list_runs() == []
