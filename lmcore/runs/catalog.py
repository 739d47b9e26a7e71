"""Every model a view can inspect: the demo runs shipped in assets/ and the runs in the store."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from lmcore.paths import DEMO_DIR
from lmcore.runs.store import Run, RunStore
from lmcore.training.checkpoints import read_config


@dataclass(frozen=True)
class RunRef:
    key: str           # "demo:python-docs-lstm" or "run:12": stable, fits in a URL
    label: str
    checkpoint: Path
    arch: str
    corpus: str
    name: str = ""     # the label without its status: "#12 LSTM 1×200"
    status: str = ""   # the store's status; "" for a demo

    @property
    def is_demo(self) -> bool:
        return self.key.startswith("demo:")

    @property
    def finished(self) -> bool:
        return self.status == "done"

    @property
    def corpus_name(self) -> str:
        return corpus_name(self.corpus)


def corpus_name(source: str) -> str:
    """A corpus as a user named it: a built-in's name, an upload's file name without its content hash."""
    if source.startswith("builtin:"):
        return source.split(":", 1)[1]
    return re.sub(r"^[0-9a-f]{12}-", "", Path(source).name)


def run_name(run: Run) -> str:
    """A stored run's name without its number: the one a person gave it (lmcore.runs.notes.rename), else its
    config's (RunConfig.label: the name it started with, else its model's, "LSTM 2×200")."""
    return run.display_name or run.cfg.label()


def run_label(run: Run) -> str:
    """'#12 LSTM 2×200': how a stored run is named in every chooser, legend and message."""
    return f"#{run.id} {run_name(run)}"


def demo_runs(demo_dir: Path = DEMO_DIR) -> list[RunRef]:
    refs = []
    for path in sorted(Path(demo_dir).glob("*.pt")):
        cfg = read_config(path)
        label = replace(cfg, name="").label()  # architecture and size, e.g. "LSTM 1×128"
        refs.append(RunRef(f"demo:{path.stem}", f"demo · {label} · {cfg.corpus.source.split(':')[-1]}",
                           path, cfg.model.arch, cfg.corpus.source))
    return refs


def store_runs(store: RunStore, archived: bool = False) -> list[RunRef]:
    """Runs with a checkpoint to show: the latest one (last.pt), so a running run can be watched. Archived runs
    only when asked for."""
    refs = []
    for run in reversed(store.list_runs()):
        if run.archived and not archived:
            continue
        checkpoints = store.checkpoints(run.id)
        chosen = checkpoints.get("last") or checkpoints.get("best")
        if not chosen or not Path(chosen["path"]).is_file():
            continue
        cfg = run.cfg
        name = run_label(run)
        refs.append(RunRef(f"run:{run.id}", f"{name} ({run.status})", Path(chosen["path"]), cfg.model.arch,
                           cfg.corpus.source, name, run.status))
    return refs


def inspectable_runs(store: RunStore, demo_dir: Path = DEMO_DIR, archived: bool = False) -> list[RunRef]:
    return store_runs(store, archived) + demo_runs(demo_dir)


def newest_finished(refs: list[RunRef], archs: tuple[str, ...] | None = None) -> RunRef | None:
    """The user's newest finished run (of these architectures): refs list the store's runs newest first."""
    return next((r for r in refs if r.finished and (archs is None or r.arch in archs)), None)


def newest_lineup(refs: list[RunRef], size: int = 3) -> list[RunRef]:
    """The newest finished run and the next newest finished ones on its corpus: runs trained side by side."""
    newest = newest_finished(refs)
    if newest is None:
        return []
    return [r for r in refs if r.finished and r.corpus == newest.corpus][:size]


def training_checkpoints(store: RunStore, ref: RunRef) -> list[tuple[str, Path]]:
    """(label, path) of a run's checkpoints through training: at initialisation, then after each epoch.

    A demo run ships only its trained weights, so it has just one entry.
    """
    if ref.is_demo:
        return [("trained", ref.checkpoint)]
    saved = store.checkpoints(int(ref.key.split(":")[1]))
    epochs = sorted((k for k in saved if k.startswith("epoch_")), key=lambda k: int(k.split("_")[1]))
    ordered = [("initialisation", saved["init"])] if "init" in saved else []
    ordered += [(f"epoch {k.split('_')[1]}", saved[k]) for k in epochs]
    return [(label, Path(row["path"])) for label, row in ordered if Path(row["path"]).is_file()] or \
        [("latest", ref.checkpoint)]
