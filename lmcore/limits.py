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
    max_active_runs_per_person = 4       # one person's runs queued, starting and training at once
    max_params_per_person = 10_000_000   # parameters of one person's model (default: max_params)
    max_epochs_per_person = 50           # epochs of one person's run (default: max_epochs)

The per-person limits bind students; an instructor (lmcore.classroom) is held by the global ones only. The
same file's [classroom] table names the instructors (lmcore.classroom reads it).

jobs.submit, jobs.resume, the CLI and the app all read them here and refuse with a message naming the
limit. An unknown key or a wrong value in the file is an error, not silently ignored: a typo in a limit
should not quietly lift it. So is an lmcore.toml that is not a regular file (a folder of that name).

Every value must be finite and within RANGES: inf, nan, 1e300 or 2**62 would crash the pages (a
browser's number input holds 2**53 at most) or lift a limit without saying so. The maxima are far
above what a classroom server needs and still workable: 256 jobs, 100,000 queued runs, 10 billion
parameters (40 GB of float32), 1,000,000 epochs, 4 GB uploads (a browser sends that at the most),
1 TB corpus files (streamed).
"""
from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from lmcore.corpus.dataset import BUILTIN_PREFIX, SPLITS
from lmcore.corpus.reading import CorpusError, file_kind, human_size, open_regular
from lmcore.paths import default_home

CONFIG_ENV = "LMCORE_CONFIG"
CONFIG_NAME = "lmcore.toml"


class LimitError(ValueError):
    """A setting or an input over a deployment's limit, or a limits file that cannot be used."""


# key -> (lowest, highest) allowed in lmcore.toml; the megabyte limits take fractions and must be above 0.
RANGES = {
    "max_parallel_jobs": (0, 256),       # 0: one per CPU core
    "max_queued_runs": (1, 100_000),
    "max_params": (1, 10_000_000_000),
    "max_epochs": (1, 1_000_000),
    "max_upload_mb": (0, 4096),
    "max_corpus_mb": (0, 1_048_576),
    "max_active_runs_per_person": (1, 100_000),
    "max_params_per_person": (1, 10_000_000_000),
    "max_epochs_per_person": (1, 1_000_000),
}
TABLES = ("limits", "classroom")  # the tables lmcore.toml may hold
_MEGABYTES = ("max_upload_mb", "max_corpus_mb")
MAX_CONFIG_BYTES = 2**20  # a limits file is a few lines; a bigger one is not read


def cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use, as the limits and the job queue count them (the default slots, each job's
    threads): the CPUs it may run on (taskset, a container's cpuset), no more than its cgroup's CPU quota (a
    container's --cpus). os.cpu_count() alone counts the whole host: 64 slots for a container given 2 CPUs."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cpu_quota(cgroup_root)
    return max(1, min(usable, quota) if quota else usable)


def cpu_quota(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The CPU quota of this process's cgroup in whole cores, rounded up: cgroup v2's cpu.max ("200000 100000"),
    else v1's cpu.cfs_quota_us over cpu.cfs_period_us; None where there is none ("max", -1) or nothing to read."""
    try:
        if (cgroup_root / "cpu.max").is_file():
            quota, _, period = (cgroup_root / "cpu.max").read_text().partition(" ")
        else:
            quota = (cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text()
            period = (cgroup_root / "cpu" / "cpu.cfs_period_us").read_text()
        quota_us, period_us = int(quota), int(period)
    except (OSError, ValueError):  # no cgroup file, "max" (v2's no quota), a format not known here
        return None
    return math.ceil(quota_us / period_us) if quota_us > 0 and period_us > 0 else None


@dataclass(frozen=True)
class Limits:
    max_parallel_jobs: int = 0          # 0: one per CPU core
    max_queued_runs: int = 32
    max_params: int = 10_000_000        # a 2×650 LSTM on a 10k vocabulary has 19.8M; 2×200 on 12k, 5.5M
    max_epochs: int = 50
    max_upload_mb: float = 25           # WikiText-2's training text is 11 MB
    max_corpus_mb: float = 2048         # files named on the CLI are streamed from disk (lmcore.corpus.stream)
    max_active_runs_per_person: int = 4  # so one student's sweep cannot fill the queue
    max_params_per_person: int | None = None  # None: max_params
    max_epochs_per_person: int | None = None  # None: max_epochs
    source: str = "defaults"            # where they came from (shown in messages)
    corpus_key: str = "max_corpus_mb"   # the setting that bounds CLI files (named in messages)

    def __post_init__(self):
        if self.max_parallel_jobs == 0:
            object.__setattr__(self, "max_parallel_jobs", cores())
        # unset: the global limit, filled in so that every reader sees a number
        if self.max_params_per_person is None:
            object.__setattr__(self, "max_params_per_person", self.max_params)
        if self.max_epochs_per_person is None:
            object.__setattr__(self, "max_epochs_per_person", self.max_epochs)

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
    return Path(home) if home else default_home()


def read_settings(home: str | Path | None = None) -> tuple[Path, dict] | None:
    """($LMCORE_CONFIG, else <home>/lmcore.toml; its parsed tables), or None when there is no such file.
    A top-level key other than TABLES is an error."""
    path = config_path(home)
    if not os.environ.get(CONFIG_ENV):
        path = path / CONFIG_NAME
        if not os.path.lexists(path):
            return None
    data = _read_toml(path)
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise LimitError(f"{path}: unknown setting(s) {', '.join(unknown)}; lmcore.toml may hold the tables "
                         + ", ".join(f"[{t}]" for t in TABLES))
    return path, data


def load_limits(home: str | Path | None = None) -> Limits:
    """The limits from $LMCORE_CONFIG, else <home>/lmcore.toml, else the defaults."""
    settings = read_settings(home)
    if settings is None:
        return Limits()
    path, data = settings
    table = data.get("limits", {})
    allowed = list(RANGES)
    unknown = sorted(set(table) - set(allowed)) if isinstance(table, dict) else []
    if not isinstance(table, dict) or unknown:
        raise LimitError(f"{path}: unknown setting(s) {', '.join(unknown) or 'limits'}; a [limits] table may set "
                         + ", ".join(allowed))
    values = {key: _checked(path, key, table[key]) for key in allowed if key in table}
    if "max_upload_mb" in values and "max_corpus_mb" not in values:  # written when it bounded the CLI too
        values.update(max_corpus_mb=values["max_upload_mb"], corpus_key="max_upload_mb")
    return Limits(**values, source=str(path))  # not replace(Limits()): the per-person ones follow the global


def _read_toml(path: Path) -> dict:
    """The parsed file; anything but a small regular file is refused by what it is, before open() could block."""
    try:
        f, _ = open_regular(path, max_bytes=MAX_CONFIG_BYTES, limit_name="a limits file is a few lines")
        with f:
            return tomllib.loads(f.read(MAX_CONFIG_BYTES).decode("utf-8"))
    except CorpusError as err:
        raise LimitError(f"{err}; the limits file must be a TOML file with a [limits] table") from None
    except FileNotFoundError:
        raise LimitError(f"{path}: no such limits file (from ${CONFIG_ENV})") from None
    except OSError as err:
        raise LimitError(f"{path}: cannot be read ({err.strerror or err})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise LimitError(f"{path}: is not valid TOML ({err})") from None


def _checked(path: Path, key: str, value) -> int | float:
    """A value of lmcore.toml within RANGES[key]; LimitError naming the key and the range otherwise."""
    lowest, highest = RANGES[key]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key in _MEGABYTES:
        if not (number and math.isfinite(value) and lowest < value <= highest):
            raise LimitError(f"{path}: {key} = {value!r} must be a number above {lowest} and at most "
                             f"{highest:,} (megabytes)")
    elif not (isinstance(value, int) and number and lowest <= value <= highest):
        raise LimitError(f"{path}: {key} = {value!r} must be a whole number from {lowest} to {highest:,}"
                         + (" (0: one per CPU core)" if lowest == 0 else ""))
    return value


def check_model(params: int, limits: Limits, per_person: bool = False) -> None:
    """per_person: against max_params_per_person (a student's run), else the server's max_params."""
    key = "max_params_per_person" if per_person else "max_params"
    allowed = getattr(limits, key)
    if params > allowed:
        raise LimitError(f"the model has {params:,} parameters, over {_whose(per_person)} limit of {allowed:,} "
                         f"({key} in {limits.where()}); use fewer units, layers or a smaller vocabulary")


def check_epochs(epochs: int, limits: Limits, per_person: bool = False) -> None:
    """per_person: against max_epochs_per_person (a student's run), else the server's max_epochs."""
    key = "max_epochs_per_person" if per_person else "max_epochs"
    allowed = getattr(limits, key)
    if epochs > allowed:
        raise LimitError(f"{epochs} epochs is over {_whose(per_person)} limit of {allowed} ({key} in {limits.where()})")


def _whose(per_person: bool) -> str:
    return "this server's per-person" if per_person else "this server's"


def check_source_size(source: str, limits: Limits) -> None:
    """A corpus file (or a folder's three files) given by path must fit max_corpus_mb (see Limits)."""
    if source.startswith(BUILTIN_PREFIX):
        return
    try:
        path = Path(source)
        files = [path / f"{s}.txt" for s in SPLITS] if path.is_dir() else [path]
        modes = [(p, p.stat()) for p in files if p.exists()]
    except (OSError, ValueError):
        return  # reading it says what is wrong
    for p, info in modes:  # a FIFO would block the reader, /dev/zero never end: refused before any open()
        if file_kind(info.st_mode):
            raise CorpusError(f"{p}: is {file_kind(info.st_mode)}, not a regular file")
    size = sum(info.st_size for _, info in modes)
    if size > limits.max_corpus_bytes:
        raise CorpusError(f"{source}: is {human_size(size)}, over this server's limit of "
                          f"{human_size(limits.max_corpus_bytes)} ({limits.corpus_key} in {limits.where()})")
