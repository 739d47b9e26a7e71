"""What every command group of the CLI shares: the corpus flags, argparse types, strict JSON lines, finding a run
or a checkpoint from what a user typed, and who the CLI acts as."""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lmcore.corpus.dataset import BUILTIN_PREFIX, CorpusSpec
from lmcore.corpus.tokenize import TOKENIZERS
from lmcore.paths import DEMO_DIR
from lmcore.runs.people import Person, machine_owner
from lmcore.runs.store import RunStore


@contextmanager
def as_machine_owner() -> Iterator[Person]:
    """The person every command that starts or changes a run acts as: the machine's owner, an instructor (the
    data folder is theirs anyway). Once the action has gone through, one line on stderr says so (a refused one
    keeps its single error line)."""
    person = machine_owner()
    yield person
    print(f"acting as the machine's owner ({person.id}): may change every run", file=sys.stderr)


def add_corpus_flags(p: argparse.ArgumentParser) -> None:
    d = CorpusSpec()
    p.add_argument("--corpus", default=d.source, help="a .txt file, a folder with train/valid/test.txt, "
                   "or builtin:agreement / builtin:python-docs (default %(default)s)")
    p.add_argument("--tokenizer", choices=list(TOKENIZERS), default=d.tokenizer)
    p.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=d.lowercase)
    p.add_argument("--min-count", type=int, default=d.min_count)
    p.add_argument("--max-vocab", type=int, default=d.max_vocab)


def corpus_spec(a) -> CorpusSpec:
    """The spec a run records: a file or folder by its absolute path, since job processes start elsewhere."""
    keep = not a.corpus or a.corpus.startswith(BUILTIN_PREFIX)
    source = a.corpus if keep else str(Path(a.corpus).expanduser().resolve())
    return CorpusSpec(source, a.tokenizer, a.lowercase, a.min_count, a.max_vocab)


def whole_at_least(lowest: int):
    """An argparse type: a whole number of at least `lowest`, refused by argparse (one line, exit 2) otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be at least {lowest}, not {value}")
        return value
    parse.__name__ = f"whole number >= {lowest}"
    return parse


def json_line(record: dict) -> str:
    """Strict JSON: an infinite or NaN perplexity (a diverged run) becomes null."""
    return json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()})


CHECKPOINT_HELP = "a run id (python -m lmcore runs), a run folder (its best.pt), a .pt checkpoint, or demo:NAME"


def checkpoint_path(path: str, home: str | None = None) -> Path:
    """A run id of the store in `home` (its best.pt, else last.pt), a .pt file, a run folder (the same) or
    demo:NAME."""
    if path.startswith("demo:"):
        path = str(DEMO_DIR / f"{path[len('demo:'):]}.pt")
    p = Path(path)
    if path.strip().isdigit() and not p.exists():  # `eval 3` as `stop 3` and `rename 3` name a run
        store = RunStore(home)
        kept = store.checkpoints(find_run(store, path))
        for kind in ("best", "last"):
            if kind in kept and Path(kept[kind]["path"]).is_file():
                return Path(kept[kind]["path"])
        raise ValueError(f"run {path.strip()} has no checkpoint yet (its first evaluation writes one)")
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise ValueError(f"{p}: no best.pt or last.pt in this folder")
    if not p.is_file():
        raise ValueError(f"{p}: no such checkpoint")
    return p


def find_run(store: RunStore, text: str) -> int:
    """A run named by its id, or by its folder (the store's, or the --out folder it was trained into)."""
    if text.strip().isdigit():
        if store.get_run(int(text)) is None:
            raise ValueError(f"no run {int(text)} in {store.home}")
        return int(text)
    folder = Path(text).expanduser().resolve()
    for run in store.list_runs():
        dirs = {store.run_dir(run.id).resolve()} | {Path(c["path"]).parent.resolve()
                                                         for c in store.checkpoints(run.id).values()}
        if folder in dirs:
            return run.id
    raise ValueError(f"{text}: no run in {store.home} has its checkpoints there; give a run id (python -m lmcore runs)")
