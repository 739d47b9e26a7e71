"""The run store: one SQLite file (WAL mode, short transactions) in the data folder.

Job processes write; pages and the CLI read while they do. Each call opens its own connection,
so the store is safe to use from Streamlit's script threads and from many processes at once.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

from lmcore.paths import default_home
from lmcore.training.config import RunConfig

STATUSES = ("queued", "starting", "running", "done", "stopped", "diverged", "failed", "interrupted")
ACTIVE = ("queued", "starting", "running")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    corpus_source TEXT NOT NULL,
    arch TEXT NOT NULL,
    device TEXT,
    params INTEGER,
    vocab INTEGER,
    pid INTEGER,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL DEFAULT 0,
    best_valid_ppl REAL,
    test_ppl REAL,
    tokens_per_s REAL,
    wall_time REAL,
    started_at REAL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL, epoch REAL NOT NULL, lr REAL,
    train_loss REAL, valid_loss REAL, valid_ppl REAL, tokens_per_s REAL, wall_time REAL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, step);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    kind TEXT NOT NULL, path TEXT NOT NULL, step INTEGER, epoch REAL, valid_ppl REAL,
    PRIMARY KEY (run_id, kind)
);
CREATE TABLE IF NOT EXISTS baselines (
    corpus_key TEXT NOT NULL, ngram_order INTEGER NOT NULL,
    valid_ppl REAL, test_ppl REAL, vocab INTEGER, seconds REAL,
    PRIMARY KEY (corpus_key, ngram_order)
);
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    spec TEXT NOT NULL
);
"""
# Columns added after a store may already exist: (table, column, declaration), added by ALTER TABLE if missing.
MIGRATIONS = (("runs", "sweep_id", "INTEGER REFERENCES sweeps(id)"),
              # how people keep a run (lmcore.runs.notes): a name of their own ('' : its config's), a note, tags
              # (a JSON list), archived (hidden from the lists unless asked for); never its config
              ("runs", "display_name", "TEXT NOT NULL DEFAULT ''"),
              ("runs", "note", "TEXT NOT NULL DEFAULT ''"),
              ("runs", "tags", "TEXT NOT NULL DEFAULT '[]'"),
              ("runs", "archived", "INTEGER NOT NULL DEFAULT 0"),
              # who may change it (lmcore.runs.people): an identity and the display name it had; '' in rows
              # made before runs had owners, which anyone may change (a single laptop's data folder)
              ("runs", "owner", "TEXT NOT NULL DEFAULT ''"),
              ("runs", "owner_name", "TEXT NOT NULL DEFAULT ''"),
              ("sweeps", "owner", "TEXT NOT NULL DEFAULT ''"),
              ("sweeps", "owner_name", "TEXT NOT NULL DEFAULT ''"),
              # the step its job started from (a resumed run's checkpoint): the ETA's rate counts the steps since
              ("runs", "started_step", "INTEGER NOT NULL DEFAULT 0"))
# the columns RunStore.annotate writes: what a person says about a run, never how it trains
ANNOTATIONS = ("display_name", "note", "tags", "archived")

METRIC_FIELDS = ("step", "epoch", "lr", "train_loss", "valid_loss", "valid_ppl", "tokens_per_s", "wall_time")


class NoFreeSlot(Exception):
    """As many runs as allowed are training already."""

    def __init__(self, active: int, allowed: int):
        super().__init__(f"{active} runs are training already")
        self.active, self.allowed = active, allowed


class RunStore:
    def __init__(self, home: str | Path | None = None):
        # absolute: job processes start in the repository, and checkpoint rows must name the same files from anywhere
        self.home = (Path(home) if home else default_home()).expanduser().resolve()
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            (self.home / "runs").mkdir(exist_ok=True)
        except OSError as err:
            raise OSError(f"cannot use data folder {self.home}: {err.strerror}") from None
        self.path = self.home / "runs.sqlite"
        with self._connect() as db:
            db.executescript(SCHEMA)
            _migrate(db)

    @contextmanager
    def _connect(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # autocommit; BEGIN where needed
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
        finally:
            db.close()

    # --- runs -------------------------------------------------------------------------------
    def create_run(self, config: dict, status: str = "queued", sweep_id: int | None = None,
                   max_training: int | None = None, pid: int | None = None, owner: str = "",
                   owner_name: str = "") -> int:
        """A new run's row. With max_training, only if fewer runs are training (starting or running): the count
        and the insert are one transaction, so processes started together cannot all pass the check.
        owner, owner_name: the identity that may change it and its display name (lmcore.runs.people)."""
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if max_training is not None:
                    self._check_slot(db, max_training)
                self._skip_used_folders(db)
                cur = db.execute(
                    "INSERT INTO runs (name, created_at, updated_at, status, config, corpus_source, arch, sweep_id, "
                    "pid, started_at, owner, owner_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (config.get("name") or "", now, now, status, json.dumps(config),
                     config["corpus"]["source"], config["model"]["arch"], sweep_id, pid,
                     now if status == "running" else None, owner, owner_name))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return int(cur.lastrowid)

    @staticmethod
    def _check_slot(db, max_training: int) -> None:
        active = db.execute("SELECT COUNT(*) FROM runs WHERE status IN ('starting', 'running')").fetchone()[0]
        if active >= max_training:
            raise NoFreeSlot(active, max_training)

    def _skip_used_folders(self, db) -> None:
        """Never hand out an id whose folder exists: with runs.sqlite deleted or emptied, id 1 came again and
        its checkpoints were written over the old run's (a folder holding two models)."""
        used = [int(p.name) for p in (self.home / "runs").iterdir() if p.name.isdigit()]
        if not used:
            return
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'runs'").fetchone()
        if row is None:
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('runs', ?)", (max(used),))
        elif row["seq"] < max(used):
            db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'runs'", (max(used),))

    def run_dir(self, run_id: int) -> Path:
        return self.home / "runs" / f"{int(run_id):05d}"

    def update_run(self, run_id: int, **fields) -> None:
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._connect() as db:
            db.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), run_id))

    def claim(self, run_id: int, from_status: str, to_status: str, max_training: int | None = None,
              **fields) -> bool:
        """Move a run between statuses only if it is still in `from_status` (safe across processes); with
        max_training, only while fewer runs are training (else NoFreeSlot), checked in the same transaction."""
        fields.update(status=to_status, updated_at=time.time())
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if max_training is not None:
                    self._check_slot(db, max_training)
                cur = db.execute(f"UPDATE runs SET {cols} WHERE id = ? AND status = ?",
                                 (*fields.values(), run_id, from_status))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return cur.rowcount == 1

    def get_run(self, run_id: int) -> Run | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_row(row) if row else None

    def has_runs(self) -> bool:
        """Whether the data folder has any run (app.py's start page asks this on every rerun: no config parsed)."""
        with self._connect() as db:
            return db.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is not None

    def list_runs(self, statuses: tuple[str, ...] | None = None) -> list[Run]:
        query, args = "SELECT * FROM runs", ()
        if statuses:
            query += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = tuple(statuses)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY id", args).fetchall()
        runs = []
        for row in rows:
            try:
                runs.append(_run_row(row))
            except BrokenRun:
                continue  # broken_runs() names it; the other runs stay usable
        return runs

    def count_runs(self, statuses: tuple[str, ...]) -> int:
        """How many runs are in these statuses (rows whose config cannot be read included)."""
        with self._connect() as db:
            return db.execute(f"SELECT COUNT(*) FROM runs WHERE status IN ({','.join('?' * len(statuses))})",
                              tuple(statuses)).fetchone()[0]

    def broken_runs(self) -> list[tuple[int, str]]:
        """(id, why) of every row whose config cannot be read."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY id").fetchall()
        broken = []
        for row in rows:
            try:
                _run_row(row)
            except BrokenRun as err:
                broken.append((row["id"], str(err)))
        return broken

    def annotate(self, run_id: int, unless: tuple[str, ...] = (), **fields) -> Run | None:
        """Set what a person says about a run (ANNOTATIONS: its own name, note, tags, archived), never its config
        or status, and not its updated_at (a training run's progress). A value may be a function of the current
        one (tags added to those there), read and written in one transaction so two writers lose nothing.
        unless: statuses in which the run is left as it is. Returns the run as written, None when there is no
        such run or it is in one of those statuses."""
        unknown = set(fields) - set(ANNOTATIONS)
        if unknown or not fields:
            raise TypeError(f"annotate writes {', '.join(ANNOTATIONS)}, not {', '.join(sorted(unknown)) or 'nothing'}")
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None or row["status"] in unless:
                    db.execute("ROLLBACK")
                    return None
                now = _annotations(row)
                values = {k: v(now[k]) if callable(v) else v for k, v in fields.items()}
                stored = {k: json.dumps(list(v)) if k == "tags" else int(v) if k == "archived" else v
                          for k, v in values.items()}
                db.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in stored)} WHERE id = ?",
                           (*stored.values(), run_id))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self.get_run(run_id)

    def delete_run(self, run_id: int) -> None:
        with self._connect() as db:
            db.execute("BEGIN")
            for table in ("metrics", "checkpoints"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            db.execute("COMMIT")

    # --- metrics and checkpoints ------------------------------------------------------------
    def add_metrics(self, run_id: int, metrics: dict) -> None:
        with self._connect() as db:
            db.execute(f"INSERT INTO metrics (run_id, {', '.join(METRIC_FIELDS)}) VALUES (?{', ?' * len(METRIC_FIELDS)})",
                       (run_id, *(metrics.get(k) for k in METRIC_FIELDS)))

    def delete_metrics_after(self, run_id: int, step: int) -> None:
        """Drop rows past a step (a resumed run logs those steps again from its checkpoint)."""
        with self._connect() as db:
            db.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, step))

    def metrics(self, run_ids: list[int] | int) -> list[dict]:
        ids = [run_ids] if isinstance(run_ids, int) else list(run_ids)
        if not ids:
            return []
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM metrics WHERE run_id IN ({','.join('?' * len(ids))}) "
                              "ORDER BY run_id, step", ids).fetchall()
        return [dict(r) for r in rows]

    def set_checkpoint(self, run_id: int, kind: str, path: Path, meta: dict) -> None:
        path = Path(path).expanduser().resolve()  # a relative folder (train --out) must name it from anywhere
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                       (run_id, kind, str(path), meta.get("step"), meta.get("epoch"), meta.get("valid_ppl")))

    def checkpoints(self, run_id: int) -> dict[str, dict]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step", (run_id,)).fetchall()
        return {r["kind"]: dict(r) for r in rows}

    # --- sweeps (lmcore.runs.sweeps): a grid spec; its runs carry sweep_id ------------------------
    def create_sweep(self, name: str, spec: dict, owner: str = "", owner_name: str = "") -> int:
        now = time.time()
        with self._connect() as db:
            cur = db.execute("INSERT INTO sweeps (name, created_at, updated_at, status, spec, owner, owner_name) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (name, now, now, "running", json.dumps(spec), owner, owner_name))
            return int(cur.lastrowid)

    def get_sweep(self, sweep_id: int) -> dict | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        return _sweep_row(row) if row else None

    def list_sweeps(self) -> list[dict]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM sweeps ORDER BY id").fetchall()
        return [_sweep_row(r) for r in rows]

    def update_sweep(self, sweep_id: int, **fields) -> None:
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._connect() as db:
            db.execute(f"UPDATE sweeps SET {cols} WHERE id = ?", (*fields.values(), sweep_id))

    # --- n-gram baselines -------------------------------------------------------------------
    def get_baseline(self, corpus_key: str, order: int) -> dict | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM baselines WHERE corpus_key = ? AND ngram_order = ?",
                             (corpus_key, order)).fetchone()
        return dict(row) if row else None

    def set_baseline(self, corpus_key: str, order: int, **values) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO baselines VALUES (?, ?, ?, ?, ?, ?)",
                       (corpus_key, order, values.get("valid_ppl"), values.get("test_ppl"),
                        values.get("vocab"), values.get("seconds")))


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns of MIGRATIONS that a store made by an older version lacks (in place: its rows keep
    their values and take the column's default)."""
    have: dict[str, set[str]] = {}
    for table, column, decl in MIGRATIONS:
        if table not in have:
            have[table] = {r["name"] for r in db.execute(f"PRAGMA table_info({table})")}
        if column not in have[table]:
            try:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            except sqlite3.OperationalError as err:  # another process added it meanwhile
                if "duplicate column" not in str(err):
                    raise


def _sweep_row(row: sqlite3.Row) -> dict:
    sweep = dict(row)
    sweep["spec"] = json.loads(sweep["spec"])
    return sweep


class BrokenRun(ValueError):
    """A row whose stored config cannot be read (damaged by hand or by a disk): shown as broken, never
    allowed to break the listing of the others."""


@dataclass(eq=False)
class Run(Mapping):
    """One run as the store holds it: its row's columns as attributes, and its config parsed once (`cfg`).
    It reads as a mapping of the columns too (run["status"]), as the store's rows did."""
    id: int
    name: str
    created_at: float
    updated_at: float
    status: str
    config: dict  # as stored (JSON); `cfg` is the same, parsed
    corpus_source: str
    arch: str
    device: str | None
    params: int | None
    vocab: int | None
    pid: int | None
    stop_requested: int
    message: str
    step: int
    total_steps: int
    best_valid_ppl: float | None
    test_ppl: float | None
    tokens_per_s: float | None
    wall_time: float | None
    started_at: float | None
    finished_at: float | None
    sweep_id: int | None
    display_name: str          # the name a person gave it ('' : none; catalog.run_name then uses its config's)
    note: str
    tags: tuple[str, ...]      # normalised and sorted (lmcore.runs.notes)
    archived: bool
    owner: str                 # the identity that may change it ('' : made before runs had owners)
    owner_name: str            # its display name when the run was made ('' : unknown)
    started_step: int          # the step its job started training from (0, or a resumed run's checkpoint)
    cfg: RunConfig = field(repr=False)

    def __getitem__(self, column: str):
        if column not in self._columns():
            raise KeyError(column)
        return getattr(self, column)

    def __iter__(self):
        return iter(self._columns())

    def __len__(self) -> int:
        return len(self._columns())

    @classmethod
    def _columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name != "cfg")


def _run_row(row: sqlite3.Row) -> Run:
    run = dict(row)
    try:
        config = json.loads(run["config"])
    except (TypeError, ValueError) as err:
        raise BrokenRun(f"run {run['id']}: its stored config is not JSON ({err})") from None
    if not isinstance(config, dict) or not all(isinstance(config.get(k), dict) for k in ("corpus", "model", "train")):
        raise BrokenRun(f"run {run['id']}: its stored config lacks a corpus, model or train section")
    try:
        cfg = RunConfig.from_dict(config)
    except (TypeError, ValueError) as err:
        raise BrokenRun(f"run {run['id']}: its stored config cannot be read ({err})") from None
    return Run(**dict(run, config=config, **_annotations(row)), cfg=cfg)


def _annotations(row: sqlite3.Row) -> dict:
    """A row's name, note, tags and archived flag as Run holds them; tags damaged by hand read as none (they
    never make a run unreadable)."""
    try:
        tags = json.loads(row["tags"] or "[]")
    except (TypeError, ValueError):
        tags = []
    if not isinstance(tags, list):
        tags = []
    return {"display_name": row["display_name"] or "", "note": row["note"] or "",
            "tags": tuple(sorted({t for t in tags if isinstance(t, str) and t})), "archived": bool(row["archived"])}
