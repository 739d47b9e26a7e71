"""Command line: python -m lmcore train|eval|ngram|sample|runs|… (flags as in pytorch/examples'
word_language_model where they exist). Each command group lives in its own module of this package."""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path

from lmcore.cli import classroom, inspect, models, runs, sweep, train
from lmcore.corpus.reading import CorpusError
from lmcore.paths import default_home
from lmcore.runs.executors import set_executor
from lmcore.runs.service import mark_interrupted
from lmcore.runs.store import RunStore

GROUPS = (train, models, runs, inspect, sweep, classroom)
COMMANDS = {name: cmd for group in GROUPS for name, cmd in group.COMMANDS.items()}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, like every other error of the CLI
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    # --home is accepted before or after the subcommand; SUPPRESS keeps the sub-parser from resetting it.
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument("--home", default=argparse.SUPPRESS, help="data folder (default $LMCORE_HOME or ~/.lmcore)")
    home.add_argument("--executor", choices=("local", "ray"), default=argparse.SUPPRESS,
                      help="where queued runs train: local processes (default) or a Ray cluster, whose nodes "
                           "must share the data folder (default $LMCORE_EXECUTOR or local)")
    home.add_argument("--address", default=argparse.SUPPRESS,
                      help="the Ray cluster's address, e.g. 10.0.0.5:6379 (default $LMCORE_RAY_ADDRESS, else a "
                           "local Ray instance)")
    parser = _Parser(prog="python -m lmcore", description=__doc__, parents=[home])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[home], **kwargs)

    train.add_parsers(command)
    models.add_parsers(command)
    runs.add_parsers(command)
    inspect.add_parsers(command, home)
    sweep.add_parsers(command)
    classroom.add_parsers(command)
    hide_commands(sub)
    return parser


def hide_commands(sub) -> None:
    """Commands made with help=SUPPRESS (the job process's `worker`) left out of --help: argparse lists them anyway,
    in the {…} of commands and with "==SUPPRESS==" for their help."""
    hidden = {a.dest for a in sub._choices_actions if a.help == argparse.SUPPRESS}
    sub._choices_actions = [a for a in sub._choices_actions if a.dest not in hidden]
    sub.metavar = "{" + ",".join(name for name in sub.choices if name not in hidden) + "}"


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a flag argparse refused (its one error line is printed)
        return done.code if isinstance(done.code, int) else 2
    args.home = getattr(args, "home", None)
    if getattr(args, "executor", None) or getattr(args, "address", None):
        set_executor(getattr(args, "executor", None) or "ray", getattr(args, "address", None))
    try:
        if args.command != "worker":
            _mark_interrupted(args.home)
        return COMMANDS[args.command](args)
    except (CorpusError, ValueError, OSError, KeyError, sqlite3.Error) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 -- a user sees one line; LMCORE_DEBUG=1 shows the traceback
        if os.environ.get("LMCORE_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {_one_line(err)} (LMCORE_DEBUG=1 shows where)",
              file=sys.stderr)
        return 1


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split("\n")) or type(err).__name__


def _mark_interrupted(home: str | None) -> None:
    """Every command first marks runs whose job process died unseen (SIGKILL, a reboot) as interrupted."""
    folder = Path(home) if home else default_home()
    if (folder / "runs.sqlite").is_file():  # never creates a data folder for a command that needs none
        try:
            mark_interrupted(RunStore(folder))
        except (OSError, sqlite3.Error):
            pass  # a read-only or damaged store: a command that needs it says so itself
