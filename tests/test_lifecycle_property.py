"""A property of the run service (issue 14): any sequence of start / stop / kill / resume / delete, against two
training slots, never has more runs training than the slots, never loses a checkpoint, and always ends where
resume carries every run to the metrics of the same run trained without interruption.

Real job processes, killed with SIGKILL; hypothesis draws the sequences (derandomized: the same ones each run).
"""
from __future__ import annotations

import os
import signal
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lmcore.runs import jobs, service
from lmcore.runs.store import ACTIVE, RunStore
from lmcore.training.trainer import train
from tests.conftest import grammar_lines, tiny_config

SLOTS = 2
ACTIONS = st.lists(st.tuples(st.sampled_from(["start", "stop", "kill", "resume", "delete", "wait"]),
                             st.integers(0, 5)), min_size=4, max_size=8)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "grammar.txt"
    path.write_text("\n".join(grammar_lines(600)) + "\n", encoding="utf-8")
    return path


def config(corpus_file: Path):
    """Long enough (a few seconds in its process) for a kill or a stop to land mid-run, with checkpoints on the way."""
    return tiny_config(corpus_file, "gru", max_steps=240, eval_every=40)


@pytest.fixture(scope="module")
def uninterrupted(corpus_file, tmp_path_factory) -> list[tuple[int, float]]:
    """(step, valid ppl) of the run trained start to end in one go, as a job would."""
    store = RunStore(tmp_path_factory.mktemp("reference"))
    cfg = config(corpus_file)
    run_id = store.create_run(cfg.to_dict(), status="running")
    service.record_result(store, run_id, train(cfg, store.run_dir(run_id), jobs.StoreHooks(store, run_id)))
    return [(m["step"], m["valid_ppl"]) for m in store.metrics(run_id)]


class SlotWatch(threading.Thread):
    """Counts the runs training, straight from the store file, every few milliseconds: the most ever seen."""

    def __init__(self, store: RunStore):
        super().__init__(daemon=True)
        self.path, self.most, self.done = store.path, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                with sqlite3.connect(self.path, timeout=5) as db:
                    n = db.execute("SELECT COUNT(*) FROM runs WHERE status IN ('starting', 'running')").fetchone()[0]
                self.most = max(self.most, n)
            except sqlite3.Error:
                pass
            time.sleep(0.005)


def act(store: RunStore, cfg, action: str, pick: int, runs: list[int]) -> None:
    if action == "start":
        runs.extend(service.queue(store, [cfg]))
        return
    if action == "wait" or not runs:
        time.sleep(0.7)
        service.pump(store)
        return
    run = store.get_run(runs[pick % len(runs)])
    if action == "stop" and run.status in ACTIVE:
        service.stop(store, run.id)
    elif action == "kill" and run.status in ACTIVE:
        kill_when_training(store, run.id, after=0.3 * pick)
    elif action == "resume" and run.status != "done" and service.resumable(store, run):
        service.resume(store, run.id)
    elif action == "delete":
        if run.status in ACTIVE:  # stopped first, as the app asks: a training run cannot be deleted
            service.stop(store, run.id)
            service.wait_for(store, [run.id], timeout=60)
        service.delete(store, run.id)
        runs.remove(run.id)
        assert not store.run_dir(run.id).exists() and store.get_run(run.id) is None


def kill_when_training(store: RunStore, run_id: int, after: float) -> None:
    """SIGKILL the run's job `after` seconds into its training (if it trains within a few seconds)."""
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        service.pump(store)
        run = store.get_run(run_id)
        if run.status not in ACTIVE:
            return
        if run.status == "running" and run.pid and run.pid > 0:
            time.sleep(after)
            try:
                os.kill(run.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it ended meanwhile
            return
        time.sleep(0.05)


def assert_checkpoints_kept(store: RunStore, runs: list[int], seen: dict[int, int]) -> None:
    """Every checkpoint row names a file that is there, and a run's last.pt never goes back in steps."""
    for run_id in runs:
        rows = store.checkpoints(run_id)
        assert all(Path(r["path"]).is_file() for r in rows.values()), rows
        if "last" in rows:
            assert rows["last"]["step"] >= seen.get(run_id, 0)
            seen[run_id] = rows["last"]["step"]


def finish(store: RunStore, runs: list[int]) -> None:
    """Resume every run that has not finished until all have (a stop or kill may leave any of them halfway)."""
    for _ in range(4):
        service.wait_for(store, runs, timeout=180)
        left = [r for r in runs if store.get_run(r).status != "done"]
        if not left:
            return
        for run_id in left:
            service.resume(store, run_id)
    raise AssertionError(f"runs {left} did not finish")


@settings(max_examples=3, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(actions=ACTIONS)
def test_any_sequence_keeps_slots_checkpoints_and_metrics(actions, corpus_file, uninterrupted, end_job_processes):
    home = Path(tempfile.mkdtemp(prefix="lifecycle-"))
    (home / "lmcore.toml").write_text(f"[limits]\nmax_parallel_jobs = {SLOTS}\n")
    store, cfg, runs, seen = RunStore(home), config(corpus_file), [], {}
    watch = SlotWatch(store)
    watch.start()
    try:
        for action, pick in [("start", 0), *actions]:
            act(store, cfg, action, pick, runs)
            assert_checkpoints_kept(store, runs, seen)
        finish(store, runs)
    finally:
        watch.done.set()
        watch.join()
    assert 1 <= watch.most <= SLOTS
    for run_id in runs:
        got = {m["step"]: m["valid_ppl"] for m in store.metrics(run_id)}
        assert len(got) == len(store.metrics(run_id))  # each step logged once (a stop adds its own evaluation)
        assert [got.get(step) for step, _ in uninterrupted] == pytest.approx([p for _, p in uninterrupted], rel=1e-9)
