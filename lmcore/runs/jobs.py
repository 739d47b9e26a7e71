"""Training jobs: each run trains in its own OS process, never in a thread of a page.

There is no daemon. `submit` queues a run and calls `pump`; `pump` starts queued runs while fewer
than `max_parallel` are running; every job calls `pump` again as it ends, so the queue drains by
itself. The Stop button sets a flag in the store that the job reads between steps.

`resume` queues a stopped, interrupted or finished run again; its job carries on from the run's
last.pt (weights, optimizer, position, hidden state, RNG states) instead of starting afresh.
The deployment's limits (lmcore.limits: parallel jobs, queue length, parameters, epochs) are
enforced here, so the app and the CLI refuse the same things with the same messages.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, read_payload
from ..config import RunConfig
from ..corpus.dataset import load_corpus
from ..corpus.reading import CorpusError
from ..limits import LimitError, Limits, check_epochs, check_model, load_limits
from ..presets import count_params
from ..train import TrainHooks, TrainResult, train
from .store import ACTIVE, NoFreeSlot, RunStore

RESUMABLE = ("stopped", "interrupted", "done")

_children: list[subprocess.Popen] = []  # reaped in pump() so finished jobs leave no zombies
STOP_POLL_S = 0.5
PROGRESS_EVERY_S = 1.0


def default_parallel() -> int:
    return max(1, os.cpu_count() or 1)


def check_limits(store: RunStore, cfg: RunConfig, limits: Limits | None = None, queueing: bool = True) -> None:
    """Refuse, with the limit's name, a run over the deployment's limits (the vocabulary size must be known
    for the parameter count; a job checks again once it has built the corpus)."""
    limits = limits or load_limits(store.home)
    check_epochs(cfg.train.epochs, limits)
    if cfg.model.vocab_size:
        check_model(count_params(cfg.model), limits)
    if queueing:
        waiting = len(store.list_runs(("queued",)))
        if waiting >= limits.max_queued_runs:
            raise LimitError(f"{waiting} runs are already waiting for a slot (max_queued_runs in {limits.where()}); "
                             "try again when some have finished")


def threads_per_job(max_parallel: int) -> int:
    """Torch threads per job so that the running jobs together use the cores once, not more."""
    return max(1, (os.cpu_count() or 1) // max(1, max_parallel))


def validate_config(cfg: RunConfig) -> None:
    """Catch a bad setting before anything is queued (the vocabulary size is not known yet)."""
    cfg.corpus.validate()
    cfg.train.validate()
    replace(cfg.model, vocab_size=max(cfg.model.vocab_size, 3)).validate()


def _slots_full(full: NoFreeSlot, limits: Limits) -> LimitError:
    return LimitError(f"{full.active} runs are training already (max_parallel_jobs = {full.allowed} in "
                      f"{limits.where()}); wait for one to end or stop one")


def create_running(store: RunStore, cfg: RunConfig, limits: Limits | None = None) -> int:
    """The row of a run trained in the foreground (the CLI), created `running` with this process's pid only
    while fewer than max_parallel_jobs runs are training: check and insert are one transaction."""
    limits = limits or load_limits(store.home)
    try:
        return store.create_run(cfg.to_dict(), status="running", max_training=limits.max_parallel_jobs,
                                pid=os.getpid())
    except NoFreeSlot as full:
        raise _slots_full(full, limits) from None


def submit(store: RunStore, cfg: RunConfig, max_parallel: int | None = None, start: bool = True,
           limits: Limits | None = None) -> int:
    validate_config(cfg)
    check_limits(store, cfg, limits)
    run_id = store.create_run(cfg.to_dict())
    if start:
        pump(store, max_parallel)
    return run_id


def process_started(pid: int) -> float | None:
    """When a process started (seconds since the epoch), from /proc; None where that cannot be read."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def job_alive(pid: int | None, started_at: float | None) -> bool:
    """The run's own process is alive: its pid is, and no newer process has taken that pid since the run
    started (a reused pid held a `running` row and its slot for ever)."""
    if not pid_alive(pid):
        return False
    born = process_started(pid) if started_at else None
    return born is None or born <= started_at + 2.0  # btime is whole seconds; the job starts before it says so


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
        if run["pid"] is not None and run["pid"] < 0:
            continue  # a Ray task on some node: its driver asks Ray how it ended (executors.RayExecutor.reap)
        grace = run["status"] == "starting" and time.time() - run["updated_at"] < 30
        if not grace and not job_alive(run["pid"], run["started_at"]):
            sync_checkpoint_rows(store, run["id"])  # before the claim: once interrupted, it may be resumed
            if store.claim(run["id"], run["status"], "interrupted", finished_at=time.time(),
                           message="the job's process ended without reporting (killed?)"):
                lost.append(run["id"])
    return lost


def sync_checkpoint_rows(store: RunStore, run_id: int) -> None:
    """Make the checkpoint rows of a run whose process is gone say what its files hold.

    A job writes a checkpoint file and then its row; killed between the two, the newest file's row names
    an older step (or is missing), and the file is what a resume carries on from. Only that file and
    files without a row are read: a run may hold one checkpoint per epoch."""
    rows = store.checkpoints(run_id)
    folder = Path(next(iter(rows.values()))["path"]).parent if rows else store.run_dir(run_id)  # or train --out
    files = sorted(folder.glob("*.pt"), key=lambda f: f.stat().st_mtime)
    for path in [f for f in files[:-1] if f.stem not in rows] + files[-1:]:
        try:
            meta = read_payload(path)["meta"]
        except CheckpointError:
            continue  # an unreadable file is reported where it is loaded, not here
        row = rows.get(path.stem)
        if row is None or row["step"] != meta.get("step"):
            store.set_checkpoint(run_id, path.stem, path, meta)


def pump(store: RunStore, max_parallel: int | None = None, executor=None) -> list[int]:
    """Start queued runs while fewer than max_parallel are active; returns the ids started.

    executor: where the jobs run (runs.executors; default: local processes, or $LMCORE_EXECUTOR)."""
    from .executors import current_executor
    executor = executor or current_executor()
    _children[:] = [p for p in _children if p.poll() is None]
    executor.reap(store)
    mark_interrupted(store)
    max_parallel = max_parallel or load_limits(store.home).max_parallel_jobs
    started = []
    active = len(store.list_runs(("starting", "running")))
    for run in store.list_runs(("queued",)):
        if active >= max_parallel:
            break
        if not store.claim_slot(run["id"], max_parallel):
            continue  # another process took it, or took the last slot, first
        executor.start(store, run["id"], threads_per_job(max_parallel), max_parallel)
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


def resumable(store: RunStore, run: dict) -> bool:
    """Stopped, interrupted and finished runs; a failed one too when its last.pt is there to go on from (an
    error after the run was claimed, a disk that filled while checkpointing, must not lose the run)."""
    if run["status"] in RESUMABLE:
        return True
    last = store.checkpoints(run["id"]).get("last") if run["status"] == "failed" else None
    return bool(last) and Path(last["path"]).is_file()


def resume_point(store: RunStore, run_id: int) -> dict | None:
    """The saved position of a run's last.pt ({"epoch", "chunk", "step", ...}), or None without one."""
    last = store.checkpoints(run_id).get("last")
    if not last or not Path(last["path"]).is_file():
        return None
    state = read_payload(Path(last["path"])).get("train_state")
    if not isinstance(state, dict) or not isinstance(state.get("position"), dict):
        raise CheckpointError(f"{last['path']}: holds no training state to resume from")
    return state["position"]


def resume(store: RunStore, run_id: int, epochs: int | None = None, max_steps: int | None = None,
           time_budget: float | None = None, start: bool = True, limits: Limits | None = None,
           to_status: str = "queued") -> RunConfig:
    """Queue a stopped, interrupted or finished run again; its job carries on from last.pt.

    epochs: the new total; by default the run's own, or one more when it has trained them all.
    max_steps: a new bound on the total steps (default: none). time_budget: seconds for this session
    (default: the run's own). Returns the config the run goes on with.
    """
    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"no run {run_id} in {store.home}")
    if not resumable(store, run):
        what = "is still active" if run["status"] in ACTIVE else f"is {run['status']}"
        hint = "; train it again with a smaller learning rate" if run["status"] == "diverged" else ""
        raise ValueError(f"run {run_id} {what}: only stopped, interrupted or finished runs (or failed ones with a "
                         f"last checkpoint) can be resumed{hint}")
    cfg = RunConfig.from_dict(run["config"])
    position = resume_point(store, run_id)
    done_epochs = position["epoch"] - 1 if position else 0
    t = cfg.train
    t.max_steps = t.max_steps if max_steps is None else max_steps  # the run's own bound unless a new one is given
    trained = bool(position) and (done_epochs >= t.epochs or bool(t.max_steps and position["step"] >= t.max_steps))
    # killed during its final test evaluation: it resumes to that evaluation only, not to one more epoch
    only_test = trained and epochs is None and max_steps is None and run["test_ppl"] is None
    t.epochs = epochs if epochs is not None else t.epochs if done_epochs < t.epochs or only_test else done_epochs + 1
    t.time_budget = t.time_budget if time_budget is None else time_budget
    validate_config(cfg)
    if t.epochs <= done_epochs and not only_test:
        raise ValueError(f"run {run_id} has trained {done_epochs} epochs already; ask for more than that")
    if t.max_steps and position and t.max_steps <= position["step"] and not only_test:
        raise ValueError(f"run {run_id} is at step {position['step']} already; ask for more max-steps than that")
    limits = limits or load_limits(store.home)  # read once: the checks and the slot claim below
    check_limits(store, cfg, limits, queueing=to_status == "queued")
    at = f"step {position['step']}" if position else "the start (it had no checkpoint to resume from)"
    running_here = {} if to_status == "queued" else {"pid": os.getpid(), "started_at": time.time()}
    slot = None if to_status == "queued" else limits.max_parallel_jobs
    try:
        claimed = store.claim(run_id, run["status"], to_status, max_training=slot, config=json.dumps(cfg.to_dict()),
                              stop_requested=0, message=f"resumed from {at}", finished_at=None,
                              **({"pid": None} | running_here))
    except NoFreeSlot as full:
        raise _slots_full(full, limits) from None
    if not claimed:
        raise ValueError(f"run {run_id} changed status meanwhile; look again")
    if position is None:  # only once the resume is accepted
        store.delete_metrics_after(run_id, -1)  # it starts again from step 0: the old curve would be drawn twice
    if start and to_status == "queued":
        pump(store)
    return cfg


def delete(store: RunStore, run_id: int) -> list[Path]:
    """Remove a run that is not training: its checkpoint files, its folder and its rows. Returns what was removed."""
    import shutil
    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"no run {run_id} in {store.home}")
    if run["status"] in ACTIVE:
        raise ValueError(f"run {run_id} is {run['status']}: stop it first")
    folders = {store.run_dir(run_id)} | {Path(c["path"]).parent for c in store.checkpoints(run_id).values()}
    removed = []
    for folder in sorted(folders):
        if folder == store.run_dir(run_id) and folder.is_dir():
            shutil.rmtree(folder)
            removed.append(folder)
        elif folder.is_dir():  # a --out folder may hold the user's other files: only this run's checkpoints go
            for c in store.checkpoints(run_id).values():
                if Path(c["path"]).parent == folder:
                    Path(c["path"]).unlink(missing_ok=True)
                    removed.append(Path(c["path"]))
    store.delete_run(run_id)
    return removed


def request_stop(store: RunStore, run_id: int) -> None:
    """A queued run is stopped at once; a running one finishes its step, saves and stops."""
    if not store.claim(run_id, "queued", "stopped", message="stopped before it started", finished_at=time.time()):
        store.update_run(run_id, stop_requested=1)


class StoreHooks(TrainHooks):
    """Trainer events written to the store, throttled so the store is not hammered every step."""

    def __init__(self, store: RunStore, run_id: int):
        self.store, self.run_id = store, run_id
        self._last_poll = self._last_progress = 0.0
        run = store.get_run(run_id)  # a resumed run keeps the best it had
        self.best = run["best_valid_ppl"] if run and run["best_valid_ppl"] is not None else float("inf")

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


def run_job(store: RunStore, run_id: int, threads: int = 0, max_parallel: int | None = None,
            remote: bool = False) -> str:
    """The body of a job process: train the run, record how it ended, start the next queued run.

    remote: a Ray task (runs.executors): its pid is recorded negated and the driver pumps the queue."""
    run = store.get_run(run_id)
    cfg = RunConfig.from_dict(run["config"])
    threads = threads or cfg.train.threads
    if threads:
        torch.set_num_threads(threads)
    store.claim(run_id, "starting", "running", pid=-os.getpid() if remote else os.getpid(), started_at=time.time())
    try:
        corpus = load_corpus(cfg.corpus)
        cfg.model.vocab_size = len(corpus.vocab)
        check_model(count_params(cfg.model), load_limits(store.home))
        last = store.checkpoints(run_id).get("last")
        resume_from = Path(last["path"]) if last and Path(last["path"]).is_file() else None  # set by resume()
        run_dir = resume_from.parent if resume_from else store.run_dir(run_id)
        if resume_from:
            store.delete_metrics_after(run_id, last["step"])
        result = train(cfg, run_dir, StoreHooks(store, run_id), corpus=corpus, resume_from=resume_from)
        status = record_result(store, run_id, result)
    except (CorpusError, ValueError, OSError) as err:
        store.update_run(run_id, status="failed", message=str(err), finished_at=time.time())
        status = "failed"
    except Exception as err:  # noqa: BLE001 -- any other failure is recorded, with its trace in log.txt
        traceback.print_exc()
        store.update_run(run_id, status="failed", message=f"{type(err).__name__}: {err}", finished_at=time.time())
        status = "failed"
    if not remote:
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
