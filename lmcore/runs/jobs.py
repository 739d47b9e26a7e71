"""Training jobs: each run trains in its own OS process, never in a thread of a page.

There is no daemon. `submit` queues a run and calls `pump`; `pump` starts queued runs while fewer
than `max_parallel` are running; every job calls `pump` again as it ends, so the queue drains by
itself. The Stop button sets a flag in the store that the job reads between steps.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch

from ..config import RunConfig
from ..corpus.reading import CorpusError
from ..train import TrainHooks, TrainResult, train
from .store import ACTIVE, RunStore

_children: list[subprocess.Popen] = []  # reaped in pump() so finished jobs leave no zombies
STOP_POLL_S = 0.5
PROGRESS_EVERY_S = 1.0


def default_parallel() -> int:
    return max(1, os.cpu_count() or 1)


def threads_per_job(max_parallel: int) -> int:
    """Torch threads per job so that the running jobs together use the cores once, not more."""
    return max(1, (os.cpu_count() or 1) // max(1, max_parallel))


def validate_config(cfg: RunConfig) -> None:
    """Catch a bad setting before anything is queued (the vocabulary size is not known yet)."""
    cfg.corpus.validate()
    cfg.train.validate()
    replace(cfg.model, vocab_size=max(cfg.model.vocab_size, 3)).validate()


def submit(store: RunStore, cfg: RunConfig, max_parallel: int | None = None, start: bool = True) -> int:
    validate_config(cfg)
    run_id = store.create_run(cfg.to_dict())
    if start:
        pump(store, max_parallel)
    return run_id


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has finished
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def mark_interrupted(store: RunStore) -> list[int]:
    """Runs whose process is gone without saying so (killed, machine restarted) become `interrupted`."""
    lost = []
    for run in store.list_runs(("starting", "running")):
        grace = run["status"] == "starting" and time.time() - run["updated_at"] < 30
        if not grace and not pid_alive(run["pid"]):
            if store.claim(run["id"], run["status"], "interrupted", finished_at=time.time(),
                           message="the job's process ended without reporting (killed?)"):
                lost.append(run["id"])
    return lost


def pump(store: RunStore, max_parallel: int | None = None) -> list[int]:
    """Start queued runs while fewer than max_parallel are active; returns the ids started."""
    _children[:] = [p for p in _children if p.poll() is None]
    mark_interrupted(store)
    max_parallel = max_parallel or default_parallel()
    started = []
    active = len(store.list_runs(("starting", "running")))
    for run in store.list_runs(("queued",)):
        if active >= max_parallel:
            break
        if not store.claim(run["id"], "queued", "starting"):
            continue  # another process took it first
        start_process(store, run["id"], threads_per_job(max_parallel), max_parallel)
        started.append(run["id"])
        active += 1
    return started


def start_process(store: RunStore, run_id: int, threads: int, max_parallel: int) -> None:
    run_dir = store.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir / "log.txt", "ab")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "lmcore", "--home", str(store.home), "worker", str(run_id),
           "--threads", str(threads), "--max-parallel", str(max_parallel)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True, cwd=str(Path(__file__).resolve().parents[2]))
    log.close()
    _children.append(proc)
    store.update_run(run_id, pid=proc.pid)


def request_stop(store: RunStore, run_id: int) -> None:
    """A queued run is stopped at once; a running one finishes its step, saves and stops."""
    if not store.claim(run_id, "queued", "stopped", message="stopped before it started", finished_at=time.time()):
        store.update_run(run_id, stop_requested=1)


class StoreHooks(TrainHooks):
    """Trainer events written to the store, throttled so the store is not hammered every step."""

    def __init__(self, store: RunStore, run_id: int):
        self.store, self.run_id = store, run_id
        self._last_poll = self._last_progress = 0.0
        self.best = float("inf")

    def on_start(self, info):
        self.store.update_run(self.run_id, params=info["params"], device=info["device"], vocab=info["vocab"],
                              total_steps=info["total_steps"])

    def on_eval(self, metrics):
        self.store.add_metrics(self.run_id, metrics)
        self.best = min(self.best, metrics["valid_ppl"])
        self.store.update_run(self.run_id, step=metrics["step"], tokens_per_s=metrics["tokens_per_s"],
                              wall_time=metrics["wall_time"], best_valid_ppl=self.best)

    def on_checkpoint(self, kind, path, meta):
        self.store.set_checkpoint(self.run_id, kind, path, meta)

    def on_step(self, step, total_steps, epoch, loss):
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            self.store.update_run(self.run_id, step=step)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self._last_poll < STOP_POLL_S:
            return False
        self._last_poll = now
        run = self.store.get_run(self.run_id)
        return bool(run and run["stop_requested"])


def record_result(store: RunStore, run_id: int, result: TrainResult) -> str:
    store.update_run(run_id, status=result.status, message=result.message, step=result.step,
                     best_valid_ppl=result.best_valid_ppl, test_ppl=result.test_ppl,
                     tokens_per_s=result.tokens_per_s, wall_time=result.wall_time, finished_at=time.time())
    return result.status


def run_job(store: RunStore, run_id: int, threads: int = 0, max_parallel: int | None = None) -> str:
    """The body of a job process: train the run, record how it ended, start the next queued run."""
    run = store.get_run(run_id)
    cfg = RunConfig.from_dict(run["config"])
    threads = threads or cfg.train.threads
    if threads:
        torch.set_num_threads(threads)
    store.claim(run_id, "starting", "running", pid=os.getpid(), started_at=time.time())
    try:
        status = record_result(store, run_id, train(cfg, store.run_dir(run_id), StoreHooks(store, run_id)))
    except (CorpusError, ValueError, OSError) as err:
        store.update_run(run_id, status="failed", message=str(err), finished_at=time.time())
        status = "failed"
    except Exception as err:  # noqa: BLE001 -- any other failure is recorded, with its trace in log.txt
        traceback.print_exc()
        store.update_run(run_id, status="failed", message=f"{type(err).__name__}: {err}", finished_at=time.time())
        status = "failed"
    pump(store, max_parallel)
    return status


def wait_for(store: RunStore, run_ids: list[int], timeout: float = 600.0, poll: float = 0.2) -> list[dict]:
    """Block until every run has left the queued/starting/running states (for the CLI and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        pump(store)
        runs = [store.get_run(i) for i in run_ids]
        if all(r["status"] not in ACTIVE for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs {run_ids} still active after {timeout:.0f} s")
        time.sleep(poll)


def progress_text(run: dict) -> str:
    """'step 120/400 · 30% · ETA 1 min 5 s' for a progress bar, from the store's row alone."""
    step, total = run["step"], run["total_steps"]
    if run["status"] in ("queued", "starting"):
        return "waiting for a free slot" if run["status"] == "queued" else "starting"
    text = f"step {step}/{total}" if total else f"step {step}"
    if run["status"] == "running" and total and step and run["started_at"]:
        elapsed = time.time() - run["started_at"]
        eta = elapsed * (total - step) / step
        text += f" · {step / total:.0%} · ETA {_duration(eta)}"
    elif run["status"] not in ACTIVE:
        text += f" · {run['status']}"
    return text


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
