"""Sweeps, for the Sweeps page: the grid its form describes, Start (refused while the same grid trains), the sweep
shown (in the URL), its progress, Stop and Resume, and the tables of Greff et al. (2016)'s comparisons. Start,
Stop and Resume are done as the current person (appstate.identity): a sweep is its owner's or an instructor's."""
from __future__ import annotations

import sqlite3

import pandas as pd
import streamlit as st

from appstate.home import get_store, limits
from appstate.identity import current_person
from appstate.text import md
from lmcore.corpus.dataset import Corpus, CorpusSpec
from lmcore.nn.architectures import ARCHS, GRU_CONVENTIONS, LSTM_VARIANTS, ModelConfig, count_params, model_name
from lmcore.runs import service
from lmcore.runs import sweeps as grids
from lmcore.runs.people import NotYours
from lmcore.runs.catalog import corpus_name
from lmcore.runs.reports import BLOWN_UP, change_from_reference, sweep_summary, sweep_table
from lmcore.training.config import OPTIMIZERS, RunConfig, TrainConfig

__all__ = [
    # the page's names from lmcore
    "ARCHS", "BLOWN_UP", "GRU_CONVENTIONS", "LSTM_VARIANTS", "OPTIMIZERS", "change_from_reference",
    "sweep_summary",
    # this module's
    "DEFAULT_TRAIN", "active_runs", "grid", "list_sweeps", "progress_text", "resume_sweep", "running_twin",
    "show_outcome", "show_sweep", "sizes", "snapshot", "start_sweep", "started_here", "stop_sweep", "sweep_names",
]

STARTED = "_sweep_started"  # the sweep this tab started last: Start stays off while it trains
OUTCOME = "_sweep_outcome"  # what the last Start click did, shown once beside the button
DEFAULT_TRAIN = TrainConfig()
progress_text = grids.progress_text


def _numbers(text: str, kind) -> list:
    return [kind(x) for x in text.replace(",", " ").split()]


def grid(spec: CorpusSpec, archs: list[str], variants: list[str], gru_conventions: list[str], seeds: str,
         hidden: str, lr: str, layers: int, dropout: float, optimizer: str, bptt: int, batch: int, epochs: int,
         max_steps: int) -> tuple[grids.SweepSpec, list[RunConfig]]:
    """The grid the form describes and its runs. seeds, hidden and lr as typed: numbers apart by spaces or
    commas. Raises ValueError saying what is wrong."""
    lrs = _numbers(lr, float)
    base = RunConfig(corpus=spec, model=ModelConfig(activation="tanh", layers=int(layers), dropout=float(dropout)),
                     train=TrainConfig(optimizer=optimizer, lr=lrs[0] if lrs else DEFAULT_TRAIN.lr, bptt=int(bptt),
                                       batch=int(batch), epochs=int(epochs), max_steps=int(max_steps)))
    spec = grids.SweepSpec(base=base, archs=archs, variants=variants, gru_conventions=gru_conventions,
                           hidden=_numbers(hidden, int), lr=lrs, seeds=_numbers(seeds, int))
    return spec, grids.expand(spec)


def sizes(configs: list[RunConfig], corpus: Corpus) -> list[tuple[str, int]]:
    """(model name with its size, parameters) of each distinct model of the grid, smallest first."""
    return sorted({(model_name(c.model, size=True), count_params(c.model, len(corpus.vocab))) for c in configs},
                  key=lambda x: x[1])


def running_twin(spec: grids.SweepSpec) -> dict | None:
    """The current person's sweep with this grid that is still training, if any (a class may all run one grid)."""
    return grids.running_twin(get_store(), spec, current_person())


def started_here(sweep: dict | None) -> bool:
    """Whether this tab started that sweep (Start then stays off while it trains)."""
    return sweep is not None and sweep["id"] == st.session_state.get(STARTED)


def show_sweep(sweep_id: int) -> None:
    st.query_params["sweep"] = str(sweep_id)


def start_sweep(spec: grids.SweepSpec, corpus: Corpus) -> None:
    """Start's callback: it runs before the page, so the page then draws the button (disabled) and the new
    sweep from the store as it now is."""
    try:
        sweep_id = grids.submit_sweep(get_store(), spec, limits=limits(), corpus=corpus, person=current_person())
    except grids.DuplicateSweepError as err:
        st.session_state[OUTCOME] = ("duplicate", str(err), err.sweep["id"])
    except (ValueError, OSError, sqlite3.Error) as err:
        st.session_state[OUTCOME] = ("error", str(err), None)
    else:
        st.session_state[STARTED] = sweep_id
        st.session_state[OUTCOME] = ("started", f"Sweep #{sweep_id} queued", sweep_id)
        show_sweep(sweep_id)


def show_outcome() -> None:
    """What the last Start click did, said once."""
    kind, message, sweep_id = st.session_state.pop(OUTCOME, (None, "", None))
    if kind == "started":
        st.toast(message)
    elif kind == "error":
        st.error(f"Not started: {md(message)}")
    elif kind == "duplicate":
        st.error(f"Not started: {md(message)}.")
        st.button(f"Show sweep #{sweep_id}", key="sw_show_twin", on_click=show_sweep, args=(sweep_id,))


def list_sweeps() -> list[dict]:
    return get_store().list_sweeps()


def sweep_names(listed: list[dict]) -> dict[int, str]:
    """'#3 lstm×4 · h 64 · 2 seeds · python-docs' per sweep id."""
    return {s["id"]: f"#{s['id']} {s['name']} · {corpus_name(s['spec']['base']['corpus']['source'])}"
            for s in listed}


def active_runs(sweep_id: int) -> int:
    """How many of the sweep's runs are queued, starting or running."""
    return grids.progress(get_store(), sweep_id)["active"]


def snapshot(sweep_id: int) -> tuple[dict, pd.DataFrame]:
    """The sweep's progress and the table of its runs from one read of the store (after starting queued runs
    where a slot is free and marking killed ones), so a count and a table never disagree."""
    store = get_store()
    service.pump(store)
    p, runs = grids.snapshot(store, sweep_id)
    return p, sweep_table(runs)


def stop_sweep(sweep_id: int) -> None:
    try:
        grids.stop_sweep(get_store(), sweep_id, person=current_person())
    except NotYours as err:
        st.error(f"Not stopped: {md(err)}")


def resume_sweep(sweep_id: int) -> bool:
    """Queue again the runs that did not finish; False (said on the page) when that was refused."""
    try:
        grids.resume_sweep(get_store(), sweep_id, limits=limits(), person=current_person())
    except (ValueError, OSError, sqlite3.Error) as err:
        st.error(f"Not resumed: {md(err)}")
        return False
    return True
