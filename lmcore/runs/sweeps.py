"""Sweeps: a grid of runs (architectures × LSTM variants × hidden sizes × learning rates × seeds) trained
as one experiment, in the style of Greff et al. (2016), through the ordinary job queue.

A sweep is a row of the store's `sweeps` table (its grid spec, JSON) and the runs that carry its id.
Nothing here trains: `submit_sweep` queues one run per grid point and lets the queue (lmcore.runs.service) start them, so
each run is still its own process and the queue's parallel limit applies. `resume_sweep` queues again
the runs that did not finish (stopped, interrupted, failed, or never started) and leaves finished ones.
`submit_sweep` refuses a grid identical to a sweep that is still running or queued (DuplicateSweepError),
so a second click or a second terminal does not train the same runs twice; given a person, only among their
own sweeps (a class may all run the exercise's grid). resume_sweep and stop_sweep given a person refuse with
NotYours unless they may change the sweep (lmcore.runs.people), before any run is touched.
"""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field, replace

from lmcore.corpus.dataset import Corpus
from lmcore.limits import Limits, load_limits
from lmcore.nn.architectures import ARCHS
from lmcore.runs import service
from lmcore.runs.people import Person, changeable
from lmcore.runs.store import ACTIVE, RunStore
from lmcore.training.config import RunConfig


class DuplicateSweepError(ValueError):
    """The grid is the same as that of a sweep still running or queued; `sweep` is that sweep's row."""

    def __init__(self, message: str, sweep: dict):
        super().__init__(message)
        self.sweep = sweep


FINISHED = ("done", "diverged")  # a result: kept by resume (a diverged run is Greff's "this variant fails")
RESUMABLE = ("stopped", "interrupted", "failed")


@dataclass
class SweepSpec:
    """The grid. `base` holds everything the axes do not vary (corpus, layers, dropout, epochs, …)."""
    base: RunConfig = field(default_factory=RunConfig)
    archs: list[str] = field(default_factory=lambda: ["lstm"])
    variants: list[str] = field(default_factory=lambda: ["vanilla"])  # LSTM only; other archs get one point
    gru_conventions: list[str] = field(default_factory=lambda: ["pytorch"])  # GRU only
    hidden: list[int] = field(default_factory=lambda: [64])
    lr: list[float] = field(default_factory=list)  # empty: base.train.lr
    seeds: list[int] = field(default_factory=lambda: [1, 2])
    emb_equals_hidden: bool = True  # the embedding grows with the hidden size
    name: str = ""

    def to_dict(self) -> dict:
        return {"base": self.base.to_dict(), "archs": list(self.archs), "variants": list(self.variants),
                "gru_conventions": list(self.gru_conventions), "hidden": list(self.hidden), "lr": list(self.lr),
                "seeds": list(self.seeds), "emb_equals_hidden": self.emb_equals_hidden, "name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> "SweepSpec":
        return cls(base=RunConfig.from_dict(d.get("base", {})), **{k: d[k] for k in (
            "archs", "variants", "gru_conventions", "hidden", "lr", "seeds", "emb_equals_hidden", "name") if k in d})

    def validate(self) -> None:
        for axis in ("archs", "hidden", "seeds"):
            if not getattr(self, axis):
                raise ValueError(f"a sweep needs at least one value of {axis}")
        if "lstm" in self.archs and not self.variants:
            raise ValueError("a sweep over the LSTM needs at least one variant")
        for arch in self.archs:
            if arch not in ARCHS:
                raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
        for name in ("archs", "variants", "gru_conventions", "hidden", "lr", "seeds"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists a value twice: {values}")


def expand(spec: SweepSpec) -> list[RunConfig]:
    """One RunConfig per grid point, in a fixed order: setting (hidden, lr), then model, then seed.

    Variants apply to the LSTM only and conventions to the GRU only; any other architecture is one point.
    The feedforward model (ffnn) gets one layer and the auto backend whatever the base says (it has no stack
    and no recurrent backend to choose), as run_config gives it one layer; its window is the base's (n = 5).
    Every run is named after its model, size and seed ("LSTM-NIG 1×64 seed 2", "FFNN n=5 1×64 seed 1")."""
    spec.validate()
    models = []
    for arch in spec.archs:
        if arch == "lstm":
            models += [dict(arch=arch, variant=v, gru_convention="pytorch") for v in spec.variants]
        elif arch == "gru":
            models += [dict(arch=arch, variant="vanilla", gru_convention=c) for c in spec.gru_conventions]
        elif arch == "ffnn":
            models.append(dict(arch=arch, variant="vanilla", gru_convention="pytorch", layers=1, backend="auto"))
        else:
            models.append(dict(arch=arch, variant="vanilla", gru_convention="pytorch"))
    lrs = spec.lr or [spec.base.train.lr]
    configs = []
    for hidden, lr, model, seed in itertools.product(spec.hidden, lrs, models, spec.seeds):
        m = replace(spec.base.model, hidden=int(hidden), **model)
        if spec.emb_equals_hidden:
            m = replace(m, emb=int(hidden))
        cfg = RunConfig(corpus=replace(spec.base.corpus), model=m,
                        train=replace(spec.base.train, lr=float(lr), seed=int(seed)))
        cfg.name = f"{cfg.label()} seed {seed}" + (f" lr {lr:g}" if len(lrs) > 1 else "")
        configs.append(cfg)
    return configs


def submit_sweep(store: RunStore, spec: SweepSpec, start: bool = True, limits: Limits | None = None,
                 corpus: Corpus | None = None, person: Person | None = None) -> int:
    """Record the sweep and queue all its runs (the service checks every one before any is queued), owned by
    `person` (None: the machine's owner); returns its id. corpus: the grid's corpus when already read (the pages
    have it); else the service reads it."""
    configs = expand(spec)
    refuse_duplicate(store, spec, person)
    ids = service.queue(store, configs, limits, corpus, sweep=(spec.name or default_name(spec), spec.to_dict()),
                        start=start, person=person)
    return store.get_run(ids[0]).sweep_id


def grid_key(spec: SweepSpec) -> frozenset[str]:
    """What makes two sweeps the same experiment: the set of runs they expand to (corpus, model, training
    settings, seed), whatever their names or the order the axes were listed in."""
    def point(cfg: RunConfig) -> str:
        d = cfg.to_dict()
        d.pop("name", None)
        d["model"]["vocab_size"] = 0  # set from the corpus by each job
        return json.dumps(d, sort_keys=True)
    return frozenset(point(cfg) for cfg in expand(spec))


def running_twin(store: RunStore, spec: SweepSpec, person: Person | None = None) -> dict | None:
    """The sweep (its store row) with this grid that still has a run queued, starting or running, if any;
    given a person, only among their own sweeps."""
    active = {r.sweep_id for r in store.list_runs(ACTIVE) if r.sweep_id is not None}
    if not active:
        return None
    key = grid_key(spec)
    for sweep in store.list_sweeps():
        if sweep["id"] in active and (person is None or sweep["owner"] == person.id):
            try:
                if grid_key(SweepSpec.from_dict(sweep["spec"])) == key:
                    return sweep
            except (ValueError, TypeError, KeyError):  # a spec from an older version that no longer expands
                continue
    return None


def refuse_duplicate(store: RunStore, spec: SweepSpec, person: Person | None = None) -> None:
    """Raise DuplicateSweepError naming the running sweep when this grid is already training (given a person:
    one of theirs)."""
    twin = running_twin(store, spec, person)
    if twin is not None:
        p = progress(store, twin["id"])
        raise DuplicateSweepError(
            f"sweep #{twin['id']} ({twin['name']}) has the same grid on the same corpus and is still running "
            f"({progress_text(p)}); wait for it, stop it, or change the grid (another seed, size or variant)",
            twin)


def default_name(spec: SweepSpec) -> str:
    models = [a for a in spec.archs if a != "lstm"] + ([f"lstm×{len(spec.variants)}"] if "lstm" in spec.archs else [])
    hidden = "/".join(str(h) for h in spec.hidden)
    return f"{' '.join(models)} · h {hidden} · {len(spec.seeds)} seed{'s' if len(spec.seeds) > 1 else ''}"


def sweep_runs(store: RunStore, sweep_id: int) -> list[dict]:
    return [r for r in store.list_runs() if r.sweep_id == sweep_id]


def snapshot(store: RunStore, sweep_id: int) -> tuple[dict, list[dict]]:
    """The sweep's progress and its runs from one read of the store, so a count and a table drawn from
    them never disagree ("4/8 done" beside "no run has finished")."""
    runs = sweep_runs(store, sweep_id)
    return progress(store, sweep_id, runs), runs


def progress(store: RunStore, sweep_id: int, runs: list[dict] | None = None) -> dict:
    """{"total", "done", "finished", "active", "counts": {status: n}, "status"} from the sweep's runs.

    done counts runs that trained to the end; finished adds diverged ones (a result too). The sweep's
    status is "running" while any run is active, "done" when every run has finished, else "incomplete"
    (some stopped, interrupted or failed: resume them); it is written back to the store."""
    runs = sweep_runs(store, sweep_id) if runs is None else runs
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    active = sum(counts.get(s, 0) for s in ACTIVE)
    finished = sum(counts.get(s, 0) for s in FINISHED)
    status = "running" if active else "done" if finished == len(runs) else "incomplete"
    sweep = store.get_sweep(sweep_id)
    if sweep and sweep["status"] != status:
        store.update_sweep(sweep_id, status=status)
    return {"total": len(runs), "done": counts.get("done", 0), "finished": finished, "active": active,
            "counts": counts, "status": status}


def progress_text(p: dict) -> str:
    """'3/8 done · 2 training · 1 stopped' for a progress bar or a terminal line."""
    parts = [f"{p['done']}/{p['total']} done"]
    names = {"running": "training", "starting": "starting", "queued": "waiting"}
    for status in ("running", "starting", "queued", "diverged", "stopped", "interrupted", "failed"):
        if p["counts"].get(status):
            parts.append(f"{p['counts'][status]} {names.get(status, status)}")
    return " · ".join(parts)


def resume_sweep(store: RunStore, sweep_id: int, start: bool = True, limits: Limits | None = None,
                 person: Person | None = None) -> list[int]:
    """Queue again the runs that did not finish; done (and diverged) runs are left as they are.

    Stopped and interrupted runs carry on from their last.pt (or start afresh without one) to their own
    planned end, max-steps included; failed runs are queued as they were (their job resumes from last.pt
    if the failure came after a checkpoint). Returns the ids queued; pumps the queue once. person: who asks."""
    _changeable(store, sweep_id, person, "resume")
    limits = limits or load_limits(store.home)
    queued = []
    for run in sweep_runs(store, sweep_id):
        if run.status in ("stopped", "interrupted"):
            service.resume(store, run.id, epochs=run.cfg.train.epochs, max_steps=run.cfg.train.max_steps or None,
                           start=False, limits=limits, person=person)
            queued.append(run.id)
        elif run.status == "failed" and service.requeue_failed(store, run.id, "queued again by the sweep's resume"):
            queued.append(run.id)
    if start and queued:
        service.pump(store)
    progress(store, sweep_id)
    return queued


def _changeable(store: RunStore, sweep_id: int, person: Person | None, action: str) -> dict:
    return changeable(store.get_sweep(sweep_id), f"sweep {sweep_id}", store.home, person, action)


def stop_sweep(store: RunStore, sweep_id: int, person: Person | None = None) -> list[int]:
    """Stop every active run of the sweep (queued ones at once, running ones after their step). person: who
    asks (NotYours, before any run is stopped, unless they may change the sweep)."""
    _changeable(store, sweep_id, person, "stop")
    stopped = []
    for run in sweep_runs(store, sweep_id):
        if run.status in ACTIVE:
            try:
                service.stop(store, run.id, person=person)
            except ValueError:
                continue  # it ended meanwhile
            stopped.append(run.id)
    return stopped


def wait_sweep(store: RunStore, sweep_id: int, on_progress=None, poll: float = 1.0,
               timeout: float | None = None) -> dict:
    """Block until no run of the sweep is active (pumping the queue meanwhile); returns the last progress.

    on_progress(progress) is called whenever the counts change."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        service.pump(store)
        p = progress(store, sweep_id)
        if on_progress and p["counts"] != last:
            on_progress(p)
            last = p["counts"]
        if not p["active"]:
            return p
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"sweep {sweep_id} still has {p['active']} active runs after {timeout:.0f} s")
        time.sleep(poll)
