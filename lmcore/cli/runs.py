"""python -m lmcore runs | stop | delete, and the hidden `worker` (the body of a job process)."""
from __future__ import annotations

import argparse
import sys

from lmcore.cli.common import find_run, json_line
from lmcore.runs import service
from lmcore.runs.store import RunStore


def add_parsers(command) -> None:
    p = command("runs", help="list the run store")
    p.add_argument("--json", action="store_true")

    p = command("stop", help="stop a queued or training run (it saves and ends cleanly; resume it later)")
    p.add_argument("run", help="run id or folder")

    p = command("delete", help="delete a run that is not training: its checkpoints, folder and rows")
    p.add_argument("run", help="run id or folder")
    p.add_argument("--yes", action="store_true", help="do not ask")

    p = command("worker", help=argparse.SUPPRESS)  # the body of a job process
    p.add_argument("run_id", type=int)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--max-parallel", type=int, default=None)


def cmd_runs(a) -> int:
    store = RunStore(a.home)
    service.mark_interrupted(store)
    runs = store.list_runs()
    keys = ("id", "name", "status", "arch", "params", "device", "step", "best_valid_ppl", "test_ppl", "corpus_source")
    if a.json:
        for r in runs:
            print(json_line({k: getattr(r, k) for k in keys}))
        return 0
    if not runs:
        print(f"no runs in {store.home}")
    for run_id, why in store.broken_runs():
        print(f"{run_id:5d}  broken      {why}", file=sys.stderr)
    for r in runs:
        ppl = f"{r.best_valid_ppl:.2f}" if r.best_valid_ppl else "-"
        print(f"{r.id:5d}  {r.status:11s} {r.cfg.label():22s} "
              f"params {r.params or 0:>10,}  valid ppl {ppl:>9s}  {r.corpus_source}")
    return 0


def cmd_stop(a) -> int:
    store = RunStore(a.home)
    run_id = find_run(store, a.run)
    print(f"run {run_id}: {service.stop(store, run_id)}")
    return 0


def cmd_delete(a) -> int:
    store = RunStore(a.home)
    run_id = find_run(store, a.run)
    if not a.yes:
        if not sys.stdin.isatty():
            raise ValueError(f"deleting run {run_id} removes its checkpoints for good; add --yes to confirm")
        if input(f"delete run {run_id} and its checkpoints for good? [y/N] ").strip().lower() not in ("y", "yes"):
            print("kept")
            return 0
    removed = service.delete(store, run_id)
    print(f"run {run_id} deleted" + (f" ({len(removed)} folder(s) or file(s) removed)" if removed else ""))
    return 0


def cmd_worker(a) -> int:
    status = service.run_job(RunStore(a.home), a.run_id, a.threads, a.max_parallel)
    return 0 if status in ("done", "stopped") else 1


COMMANDS = {"runs": cmd_runs, "stop": cmd_stop, "delete": cmd_delete, "worker": cmd_worker}
