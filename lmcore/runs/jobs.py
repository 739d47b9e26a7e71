"""Job processes: each run trains in its own OS process, never in a thread of a page.

There is no daemon. lmcore.runs.service queues runs and starts them (`pump`) while slots are free; every job
pumps the queue again as it ends, so the queue drains by itself. Here: starting a job's process, telling
whether it is still alive (pid reuse included), the trainer's events written to the store (`StoreHooks`, which
also reads the Stop flag between steps), and the checkpoint rows of a job that died made to match its files.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from lmcore.limits import cores
from lmcore.runs.store import ACTIVE, RunStore
from lmcore.training.checkpoints import CheckpointError, read_payload
from lmcore.training.trainer import TrainHooks

_children: list[subprocess.Popen] = []  # reaped in pump() so finished jobs leave no zombies
STOP_POLL_S = 0.5
PROGRESS_EVERY_S = 1.0
THREADS_POLL_S = 1.0


def threads_per_job(max_parallel: int) -> int:
    """Torch threads per job so that the running jobs together use the cores once, not more."""
    return max(1, cores() // max(1, max_parallel))


def threads_now(store: RunStore, threads: int, max_parallel: int) -> int:
    """A job's threads now: its own while every slot is taken or a run waits for one; as runs end, the cores they
    leave shared out among those still training (training.thread_share)."""
    demand = min(max(1, max_parallel), max(1, store.count_runs(ACTIVE)))
    return max(threads, cores() // demand)


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


def reap_children() -> None:
    """Wait for the job processes this process started that have ended, so they leave no zombies."""
    _children[:] = [p for p in _children if p.poll() is None]


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


def resume_point(store: RunStore, run_id: int) -> dict | None:
    """The saved position of a run's last.pt ({"epoch", "chunk", "step", ...}), or None without one."""
    last = store.checkpoints(run_id).get("last")
    if not last or not Path(last["path"]).is_file():
        return None
    state = read_payload(Path(last["path"])).get("train_state")
    if not isinstance(state, dict) or not isinstance(state.get("position"), dict):
        raise CheckpointError(f"{last['path']}: holds no training state to resume from")
    return state["position"]


class StoreHooks(TrainHooks):
    """Trainer events written to the store, throttled so the store is not hammered every step.

    share: (threads, max_parallel) of a job on this machine whose threads follow the free cores (threads_now);
    None: the run keeps the threads it has (one pinned by its config, a Ray task, training in the CLI's process)."""

    def __init__(self, store: RunStore, run_id: int, share: tuple[int, int] | None = None):
        self.store, self.run_id, self.share = store, run_id, share
        self._threads = share[0] if share else None
        self._last_poll = self._last_progress = self._last_threads = 0.0
        run = store.get_run(run_id)  # a resumed run keeps the best it had
        self.best = run.best_valid_ppl if run and run.best_valid_ppl is not None else float("inf")

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
        return bool(run and run.stop_requested)

    def threads(self) -> int | None:
        now = time.monotonic()
        if self.share is None or now - self._last_threads < THREADS_POLL_S:
            return self._threads
        self._last_threads = now
        threads = threads_now(self.store, *self.share)
        if threads != self._threads:  # in the run's log.txt
            why = "cores came free" if threads > self._threads else "another run took a core"
            print(f"training on {threads} thread{'s' if threads > 1 else ''} from here: {why}", flush=True)
        self._threads = threads
        return threads


def progress_text(run: dict) -> str:
    """'step 120/400 · 30% · ETA 1 min 5 s' for a progress bar, from the store's row alone."""
    step, total = run.step, run.total_steps
    if run.status in ("queued", "starting"):
        return "waiting for a free slot" if run.status == "queued" else "starting"
    text = f"step {step}/{total}" if total else f"step {step}"
    trained = step - run.started_step  # this job's steps: a resumed run did the others before its stop
    if run.status == "running" and total and trained > 0 and run.started_at:
        eta = (time.time() - run.started_at) * (total - step) / trained
        text += f" · {step / total:.0%} · ETA {_duration(eta)}"
    elif run.status == "running" and total:
        text += f" · {step / total:.0%}"
    elif run.status not in ACTIVE:
        text += f" · {run.status}"
    return text


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
