"""python -m lmcore runs | stop | delete | rename | note | tag | archive, and the hidden `worker` (the body of a
job process)."""
from __future__ import annotations

import argparse
import sys

from lmcore.cli.common import as_machine_owner, find_run, json_line
from lmcore.runs import notes, service
from lmcore.runs.catalog import run_label, run_name
from lmcore.runs.store import RunStore


def add_parsers(command) -> None:
    p = command("runs", help="list the run store (archived runs only with --all)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="archived runs too")
    p.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="only runs with this tag (repeat it: runs with any of them)")

    p = command("stop", help="stop a queued or training run (it saves and ends cleanly; resume it later)")
    p.add_argument("run", help="run id or folder")

    p = command("delete", help="delete a run that is not training: its checkpoints, folder and rows")
    p.add_argument("run", help="run id or folder")
    p.add_argument("--yes", action="store_true", help="do not ask")

    p = command("rename", help="give a run a name of its own (its config keeps the one it started with)")
    p.add_argument("run", help="run id or folder")
    p.add_argument("name", nargs="?", help="the new name; '' or --clear: back to its config's name")
    p.add_argument("--clear", action="store_true", help="drop the name given, back to its config's")

    p = command("note", help="set a run's note (free text), or print it")
    p.add_argument("run", help="run id or folder")
    p.add_argument("text", nargs="?", help="the note (it replaces the one there); none: print the note")
    p.add_argument("--clear", action="store_true", help="remove the note")

    p = command("tag", help="add tags to a run (or remove them), or print its tags")
    p.add_argument("run", help="run id or folder")
    p.add_argument("tags", nargs="*", metavar="TAG", help="tags (lower-cased; 'a,b' is two tags); none: print them")
    p.add_argument("--remove", action="store_true", help="remove these tags")

    p = command("archive", help="hide a run that is not training from the lists (runs --all shows it)")
    p.add_argument("run", help="run id or folder")
    p.add_argument("--undo", action="store_true", help="show it again")

    p = command("worker", help=argparse.SUPPRESS)  # the body of a job process
    p.add_argument("run_id", type=int)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--max-parallel", type=int, default=None)


def cmd_runs(a) -> int:
    store = RunStore(a.home)
    service.mark_interrupted(store)
    runs = notes.tagged(notes.shown(store.list_runs(), archived=a.all), a.tag)
    keys = ("id", "status", "arch", "params", "device", "step", "best_valid_ppl", "test_ppl", "corpus_source")
    if a.json:
        for r in runs:
            print(json_line({"id": r.id, "name": run_name(r), **{k: getattr(r, k) for k in keys[1:]},
                             "tags": list(r.tags), "note": r.note, "archived": r.archived}))
        return 0
    if not runs:
        archived = 0 if a.all else sum(r.archived for r in store.list_runs())
        print(f"no runs{' tagged ' + ' or '.join(a.tag) if a.tag else ''} in {store.home}"
              + (f" ({archived} archived: runs --all lists them)" if archived else ""))
    for run_id, why in store.broken_runs():
        print(f"{run_id:5d}  broken      {why}", file=sys.stderr)
    for r in runs:
        ppl = f"{r.best_valid_ppl:.2f}" if r.best_valid_ppl else "-"
        kept = (f"  [{', '.join(r.tags)}]" if r.tags else "") + \
            (f"  “{notes.note_excerpt(r.note)}”" if r.note else "")
        print(f"{r.id:5d}  {r.status:11s} {run_name(r):22s} params {r.params or 0:>10,}  valid ppl {ppl:>9s}  "
              f"{r.corpus_source}{kept}{'  (archived)' if r.archived else ''}")
    return 0


def cmd_stop(a) -> int:
    store = RunStore(a.home)
    run_id = find_run(store, a.run)
    with as_machine_owner() as me:
        print(f"run {run_id}: {service.stop(store, run_id, person=me)}")
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
    with as_machine_owner() as me:
        removed = service.delete(store, run_id, person=me)
    print(f"run {run_id} deleted" + (f" ({len(removed)} folder(s) or file(s) removed)" if removed else ""))
    return 0


def cmd_rename(a) -> int:
    store = RunStore(a.home)
    run_id = find_run(store, a.run)
    if a.name is None and not a.clear:
        raise ValueError("give the new name, or --clear to go back to the config's name")
    if a.name and a.clear:
        raise ValueError("give a name or --clear, not both")
    with as_machine_owner() as me:
        run = notes.rename(store, run_id, "" if a.clear else a.name, person=me)
    print(f"run {run_id} is now named {run_name(run)}" + ("" if run.display_name else " (its config's name)"))
    return 0


def cmd_note(a) -> int:
    store = RunStore(a.home)
    run_id = find_run(store, a.run)
    if a.text is not None and a.clear:
        raise ValueError("give a note or --clear, not both")
    if a.text is None and not a.clear:
        print(store.get_run(run_id).note)
        return 0
    with as_machine_owner() as me:
        run = notes.set_note(store, run_id, "" if a.clear else a.text, person=me)
    print(f"run {run_id}: " + ("note set" if run.note else "no note"))
    return 0


def cmd_tag(a) -> int:
    store = RunStore(a.home)
    run_id = find_run(store, a.run)
    tags = [t for arg in a.tags for t in notes.split_tags(arg)]
    if not tags:
        if a.remove:
            raise ValueError("name the tags to remove")
        print(", ".join(store.get_run(run_id).tags))
        return 0
    with as_machine_owner() as me:
        run = (notes.remove_tags if a.remove else notes.add_tags)(store, run_id, tags, person=me)
    print(f"run {run_id}: tags " + (", ".join(run.tags) or "(none)"))
    return 0


def cmd_archive(a) -> int:
    store = RunStore(a.home)
    run_id = find_run(store, a.run)
    with as_machine_owner() as me:
        run = notes.unarchive(store, run_id, person=me) if a.undo else notes.archive(store, run_id, person=me)
    print(f"{run_label(run)}: " + ("archived (python -m lmcore runs --all lists it)" if run.archived
                                   else "shown again"))
    return 0


def cmd_worker(a) -> int:
    status = service.run_job(RunStore(a.home), a.run_id, a.threads, a.max_parallel)
    return 0 if status in ("done", "stopped") else 1


COMMANDS = {"runs": cmd_runs, "stop": cmd_stop, "delete": cmd_delete, "rename": cmd_rename, "note": cmd_note,
            "tag": cmd_tag, "archive": cmd_archive, "worker": cmd_worker}
