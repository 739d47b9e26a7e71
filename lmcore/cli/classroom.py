"""python -m lmcore classroom hash-passphrase | show: setting up a shared classroom server (lmcore.classroom)."""
from __future__ import annotations

import getpass
import sys

from lmcore.classroom import hash_passphrase, load_classroom
from lmcore.limits import load_limits


def add_parsers(command) -> None:
    p = command("classroom", help="set up a classroom server: the instructor passphrase, and what lmcore.toml says")
    sub = p.add_subparsers(dest="classroom_command", required=True)
    sub.add_parser("hash-passphrase", help="read an instructor passphrase (typed twice on a terminal, else the "
                   "first line of stdin) and print the line to paste into lmcore.toml's [classroom] table")
    sub.add_parser("show", help="the instructors and per-person limits this data folder's lmcore.toml sets")


def cmd_classroom(a) -> int:
    return {"hash-passphrase": _hash_passphrase, "show": _show}[a.classroom_command](a)


def _hash_passphrase(a) -> int:
    line = hash_passphrase(_read_passphrase())  # never echoed, never written anywhere but this hash
    print(f'instructor_passphrase_sha256 = "{line}"')
    print("paste it under [classroom] in lmcore.toml; whoever types the passphrase in the app may change every run",
          file=sys.stderr)
    return 0


def _read_passphrase() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("instructor passphrase: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passphrases differ; nothing printed")
    return first


def _show(a) -> int:
    classroom, limits = load_classroom(a.home), load_limits(a.home)
    print(f"from {limits.where()}")
    print("instructors: " + (", ".join(classroom.instructors) or "none named (sign-in identities)"))
    print("instructor passphrase: " + ("set" if classroom.passphrase_sha256 else "none"))
    print(f"per person: {limits.max_active_runs_per_person} runs queued or training, "
          f"{limits.max_params_per_person:,} parameters, {limits.max_epochs_per_person} epochs")
    return 0


COMMANDS = {"classroom": cmd_classroom}
