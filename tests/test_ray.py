"""Sweeps beyond one machine: the job queue hands runs to a Ray instance; results land in the same store."""
from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from lmcore.runs import jobs

from lmcore.runs import service
from lmcore.runs.executors import RayExecutor, current_executor, set_executor
from lmcore.runs.store import RunStore
from tests.conftest import submit, tiny_config

ray = pytest.importorskip("ray")


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_tiny_sweep_runs_on_ray_into_the_same_store(local_ray, lmcore_home, grammar_file):
    store = RunStore()
    ids = []
    for arch in ("elman", "lstm"):
        cfg = tiny_config(grammar_file, arch, max_steps=20, eval_every=10)
        cfg.model = replace(cfg.model, emb=8, hidden=8)
        ids.append(submit(store, cfg, start=False))
    executor = RayExecutor()  # ray is initialised already: the tasks go to that instance
    assert service.pump(store, max_parallel=2, executor=executor) == ids
    assert sorted(ray.get(executor.refs, timeout=120)) == ["done", "done"]
    for run_id in ids:
        run = store.get_run(run_id)
        assert run["status"] == "done" and run["step"] == 20 and run["pid"] < 0, run
        assert run["best_valid_ppl"] and run["test_ppl"] and run["params"]
        assert [m["step"] for m in store.metrics(run_id)] == [10, 20]
        checkpoints = store.checkpoints(run_id)
        assert {"best", "last"} <= set(checkpoints) and all(Path(c["path"]).is_file() for c in checkpoints.values())
    service.mark_interrupted(store)  # a negated pid is Ray's, never taken for a dead local process
    assert all(store.get_run(i)["status"] == "done" for i in ids)


def _task_environment(store, run_id, threads, max_parallel, remote):
    """A job body that reports what the task's process was given."""
    return {name: os.environ.get(name) for name in ("THP_MEM_ALLOC_ENABLE", "OMP_NUM_THREADS")}


def test_a_ray_task_gets_huge_pages_as_a_local_job_does(local_ray, lmcore_home, grammar_file):
    """Its big tensors in 2 MB pages (lmcore.training.allocator): the variable set before the task's torch allocates."""
    store = RunStore()
    run_id = submit(store, tiny_config(grammar_file, "elman"), start=False)
    executor = RayExecutor()
    executor.start(store, run_id, 1, 2, body=_task_environment)
    assert ray.get(executor.refs, timeout=120) == [{"THP_MEM_ALLOC_ENABLE": "1", "OMP_NUM_THREADS": "1"}]


def test_a_ray_task_killed_mid_run_leaves_its_run_interrupted_and_resumable(local_ray, lmcore_home, grammar_file,
                                                                             monkeypatch):
    """A worker that dies without reporting (kill -9, a lost node) must not leave its run 'running' for ever."""
    store = RunStore()
    (lmcore_home / "lmcore.toml").write_text("[limits]\nmax_epochs = 100_000\n")
    monkeypatch.setenv("LMCORE_EXECUTOR", "ray")
    try:
        set_executor("ray")  # as `--executor ray` does; ray is initialised already
        run_id = submit(store, tiny_config(grammar_file, "elman", epochs=100_000, max_steps=0, time_budget=60),
                             max_parallel=1)
        deadline = time.monotonic() + 60
        while "last" not in store.checkpoints(run_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        run = store.get_run(run_id)
        assert run["status"] == "running" and run["pid"] < 0 and "last" in store.checkpoints(run_id), run
        os.kill(-run["pid"], signal.SIGKILL)  # the Ray worker process running the job
        [run] = service.wait_for(store, [run_id], timeout=60)
        assert run["status"] == "interrupted" and "Ray task ended without reporting" in run["message"], run
        at = jobs.resume_point(store, run_id)["step"]
        assert at > 0 and store.checkpoints(run_id)["last"]["step"] == at
        service.resume(store, run_id, max_steps=at + 10)  # queued again, and run on Ray to its new end
        [run] = service.wait_for(store, [run_id], timeout=60)
        assert run["status"] == "done" and run["step"] == at + 10, run["message"]
    finally:
        set_executor("local")


def test_the_executor_is_chosen_by_name_and_local_stays_the_default(monkeypatch):
    monkeypatch.delenv("LMCORE_EXECUTOR", raising=False)
    monkeypatch.delenv("LMCORE_RAY_ADDRESS", raising=False)
    assert current_executor().name == "local"
    try:
        chosen = set_executor("ray", "10.0.0.5:6379")
        assert chosen.name == "ray" and chosen.address == "10.0.0.5:6379" and current_executor() is chosen
        with pytest.raises(ValueError, match="unknown executor 'slurm'"):
            set_executor("slurm")
    finally:
        set_executor("local")
        monkeypatch.delenv("LMCORE_EXECUTOR", raising=False)
        monkeypatch.delenv("LMCORE_RAY_ADDRESS", raising=False)
