"""Limits a deployment sets in one file, with defaults safe for a shared classroom server.

The file is `lmcore.toml` in the data folder ($LMCORE_HOME or ~/.lmcore), or the path in $LMCORE_CONFIG:

    [limits]
    max_parallel_jobs = 2        # training processes at once; more runs wait in the queue
    max_queued_runs = 32         # runs waiting for a slot; more are refused
    max_params = 10_000_000      # parameters of one model
    max_epochs = 50              # epochs of one run
    max_upload_mb = 25           # size of a corpus uploaded in the app
    max_corpus_mb = 2048         # size of a corpus file given to the CLI (streamed, so memory stays bounded);
                                 # a file that sets max_upload_mb but not this one bounds the CLI by max_upload_mb

jobs.submit, jobs.resume, the CLI and the app all read them here and refuse with a message naming the
limit. An unknown key or a wrong value in the file is an error, not silently ignored: a typo in a limit
should not quietly lift it.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

CONFIG_ENV = "LMCORE_CONFIG"
CONFIG_NAME = "lmcore.toml"


class LimitError(ValueError):
    """A setting or an input over a deployment's limit, or a limits file that cannot be used."""


def _cores() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Limits:
    max_parallel_jobs: int = 0          # 0: one per CPU core
    max_queued_runs: int = 32
    max_params: int = 10_000_000        # a 2×650 LSTM on a 10k vocabulary has 19.8M; 2×200 on 12k, 5.5M
    max_epochs: int = 50
    max_upload_mb: float = 25           # WikiText-2's training text is 11 MB
    max_corpus_mb: float = 2048         # files named on the CLI are streamed from disk (lmcore.corpus.stream)
    source: str = "defaults"            # where they came from (shown in messages)
    corpus_key: str = "max_corpus_mb"   # the setting that bounds CLI files (named in messages)

    def __post_init__(self):
        if self.max_parallel_jobs == 0:
            object.__setattr__(self, "max_parallel_jobs", _cores())

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def max_corpus_bytes(self) -> int:
        return int(self.max_corpus_mb * 2**20)

    def where(self) -> str:
        return "the defaults" if self.source == "defaults" else self.source


def config_path(home: str | Path | None = None) -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    from .runs.store import default_home
    return Path(home) if home else default_home()


def load_limits(home: str | Path | None = None) -> Limits:
    """The limits from $LMCORE_CONFIG, else <home>/lmcore.toml, else the defaults."""
    path = config_path(home)
    if not os.environ.get(CONFIG_ENV):
        path = path / CONFIG_NAME
        if not path.is_file():
            return Limits()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise LimitError(f"{path}: no such limits file (from ${CONFIG_ENV})") from None
    except OSError as err:
        raise LimitError(f"{path}: cannot be read ({err.strerror or err})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise LimitError(f"{path}: is not valid TOML ({err})") from None
    table = data.get("limits", {})
    allowed = [f.name for f in fields(Limits) if f.name not in ("source", "corpus_key")]
    unknown = sorted(set(data) - {"limits"}) + (sorted(set(table) - set(allowed)) if isinstance(table, dict) else [])
    if not isinstance(table, dict) or unknown:
        raise LimitError(f"{path}: unknown setting(s) {', '.join(unknown) or 'limits'}; a [limits] table may set "
                         + ", ".join(allowed))
    values = {}
    for f in fields(Limits):
        if f.name not in allowed or f.name not in table:
            continue
        value = table[f.name]
        floats_ok = f.name in ("max_upload_mb", "max_corpus_mb")
        good = isinstance(value, int) and not isinstance(value, bool) or floats_ok and isinstance(value, float)
        lowest = 0 if f.name == "max_parallel_jobs" else 1
        if floats_ok and (not good or value <= 0):
            raise LimitError(f"{path}: {f.name} = {value!r} must be a number above 0 (megabytes)")
        if not floats_ok and (not good or value < lowest):
            raise LimitError(f"{path}: {f.name} = {value!r} must be a whole number of at least {lowest}"
                             + (" (0: one per CPU core)" if lowest == 0 else ""))
        values[f.name] = value
    if "max_upload_mb" in values and "max_corpus_mb" not in values:  # written when it bounded the CLI too
        values.update(max_corpus_mb=values["max_upload_mb"], corpus_key="max_upload_mb")
    return replace(Limits(), **values, source=str(path))


def check_model(params: int, limits: Limits) -> None:
    if params > limits.max_params:
        raise LimitError(f"the model has {params:,} parameters, over this server's limit of {limits.max_params:,} "
                         f"(max_params in {limits.where()}); use fewer units, layers or a smaller vocabulary")


def check_epochs(epochs: int, limits: Limits) -> None:
    if epochs > limits.max_epochs:
        raise LimitError(f"{epochs} epochs is over this server's limit of {limits.max_epochs} "
                         f"(max_epochs in {limits.where()})")


def check_source_size(source: str, limits: Limits) -> None:
    """A corpus file (or a folder's three files) given by path must fit max_corpus_mb (see Limits)."""
    from .corpus.dataset import BUILTIN_PREFIX, SPLITS
    from .corpus.reading import CorpusError, human_size
    if source.startswith(BUILTIN_PREFIX):
        return
    try:
        path = Path(source)
        files = [path / f"{s}.txt" for s in SPLITS] if path.is_dir() else [path]
        size = sum(p.stat().st_size for p in files if p.is_file())
    except (OSError, ValueError):
        return  # reading it says what is wrong
    if size > limits.max_corpus_bytes:
        raise CorpusError(f"{source}: is {human_size(size)}, over this server's limit of "
                          f"{human_size(limits.max_corpus_bytes)} ({limits.corpus_key} in {limits.where()})")
