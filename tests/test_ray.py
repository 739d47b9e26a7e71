"""Sweeps beyond one machine: the job queue hands runs to a Ray instance; results land in the same store."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lmcore.runs import jobs
from lmcore.runs.executors import RayExecutor, current_executor, set_executor
from lmcore.runs.store import RunStore
from tests.conftest import tiny_config

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
        ids.append(jobs.submit(store, cfg, start=False))
    executor = RayExecutor()  # ray is initialised already: the tasks go to that instance
    assert jobs.pump(store, max_parallel=2, executor=executor) == ids
    assert sorted(ray.get(executor.refs, timeout=120)) == ["done", "done"]
    for run_id in ids:
        run = store.get_run(run_id)
        assert run["status"] == "done" and run["step"] == 20 and run["pid"] < 0, run
        assert run["best_valid_ppl"] and run["test_ppl"] and run["params"]
        assert [m["step"] for m in store.metrics(run_id)] == [10, 20]
        checkpoints = store.checkpoints(run_id)
        assert {"best", "last"} <= set(checkpoints) and all(Path(c["path"]).is_file() for c in checkpoints.values())
    jobs.mark_interrupted(store)  # a negated pid is Ray's, never taken for a dead local process
    assert all(store.get_run(i)["status"] == "done" for i in ids)


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
