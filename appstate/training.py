"""Training runs, for the Train and Compare pages: the lineup built as the CLI builds it (presets.run_config),
checked and queued through the run service, stopped, resumed and deleted; renamed, noted, tagged and archived
through lmcore.runs.notes; their statuses, curves, history, and the tables that compare them with the n-gram
baseline. Every action is done as the current person (appstate.identity): a run that is not theirs is refused
with NotYours, said on the page, before the store is touched; where their runs wait in the queue and why."""
from __future__ import annotations

import sqlite3

import pandas as pd
import streamlit as st

from appstate.corpus import cached_text_sizes
from appstate.home import get_store, limits
from appstate.identity import current_person
from appstate.text import md
from appstate.widgets import reset_default, selected_run_ids, set_selected_run_ids
from lmcore.corpus.dataset import Corpus, CorpusSpec
from lmcore.corpus.reading import CorpusError
from lmcore.nn.architectures import (ACTIVATION_NAMES, ARCHS, GRU_CONVENTIONS, LSTM_VARIANTS, MAX_WINDOW, OUTPUTS,
                                     count_params)
from lmcore.runs import notes, service
from lmcore.runs.catalog import corpus_name, run_label, run_name
from lmcore.runs.fairshare import queue_positions
from lmcore.runs.history import history_table
from lmcore.runs.jobs import progress_text
from lmcore.runs.notes import NAME_CHARS, NOTE_CHARS, TAGS_CHARS, all_tags, note_excerpt, tagged
from lmcore.runs.people import NotYours, mine
from lmcore.runs.reports import (LE_2015, add_bits, baseline_rows, best_runs, compare_table, distinct_specs,
                                 cut_short, lecture_table, metrics_frame, mixed_tokenizers, readable_message,
                                 run_summary)
from lmcore.runs.seeds import SeedGroup, group_curves, lecture_rows, seed_groups, summary_table
from lmcore.runs.store import ACTIVE, Run
from lmcore.training.config import OPTIMIZERS, RunConfig, TrainConfig
from lmcore.training.presets import (DEFAULT_LINEUP, MAX_SEEDS, PRESETS, output_hint, over_seeds, preset, recipe_note,
                                    run_config)

__all__ = [
    # the pages' names from lmcore
    "ACTIVATION_NAMES", "ACTIVE", "ARCHS", "DEFAULT_LINEUP", "GRU_CONVENTIONS", "LE_2015", "LSTM_VARIANTS",
    "MAX_SEEDS", "MAX_WINDOW", "NAME_CHARS", "NOTE_CHARS", "OPTIMIZERS", "OUTPUTS", "PRESETS", "TAGS_CHARS", "all_tags",
    "best_runs",
    "corpus_name", "count_params", "cut_short", "history_table", "lecture_table", "note_excerpt", "preset", "progress_text",
    "lecture_rows", "output_hint", "readable_message", "recipe_note", "run_summary", "tagged",
    # this module's
    "all_runs", "archive_run", "broken_runs", "comparison", "curves_data", "grouped_curves",
    "seed_summary", "tokenizers_differ", "delete_run", "evaluated_runs",
    "keep_run", "look_inside", "lineup_run", "queue_places", "queue_runs", "recipe", "reset_run_fields", "resumable",
    "resume_run", "run_label", "run_name", "shown_runs", "stop_run",
]

# a run's advanced fields on the Train page: URL name (with the run's number after it) -> ModelConfig / TrainConfig
MODEL_FIELDS = {"arch": "arch", "variant": "variant", "gru": "gru_convention", "act": "activation", "bias": "bias",
                "tied": "tied", "emb": "emb", "hid": "hidden", "layers": "layers", "drop": "dropout",
                "win": "window", "direct": "direct", "out": "output"}
TRAIN_FIELDS = {"opt": "optimizer", "lr": "lr", "clip": "clip"}


# --- the lineup ---------------------------------------------------------------------------------------------------
def recipe(spec: CorpusSpec) -> TrainConfig:
    """The training settings every preset shares on this corpus (the corpus's own recipe where it has one)."""
    return preset(DEFAULT_LINEUP[0], spec)[1]


def reset_run_fields(i: int, spec: CorpusSpec) -> None:
    """Choosing another preset for run i resets that run's advanced fields to the new preset's values."""
    model, train = preset(st.session_state[f"preset{i}"], spec)
    values = {k: getattr(model, a) for k, a in MODEL_FIELDS.items()} | \
        {k: getattr(train, a) for k, a in TRAIN_FIELDS.items()}
    for short, value in values.items():
        reset_default(f"{short}{i}", value)


def lineup_run(preset_name: str, spec: CorpusSpec, corpus: Corpus, model: dict, train: dict,
               match: RunConfig | None = None) -> RunConfig:
    """One run of the lineup: the preset on this corpus with the page's fields on top, built as the CLI builds
    it. match: the run whose parameter count this one's hidden size is chosen to match."""
    return run_config(preset_name, spec, vocab_size=len(corpus.vocab), train_tokens=corpus.train.size,
                      match_params=count_params(match.model) if match else 0, model=model, train=train)


def queue_runs(configs: list[RunConfig], corpus: Corpus, seeds: int = 1) -> None:
    """Check every run (each config over `seeds` seeds), then queue them all (or none, saying why); the page then
    shows them."""
    store = get_store()
    try:
        ids = service.queue(store, over_seeds(configs, seeds), limits(), corpus, start=False,
                            person=current_person())
    except (ValueError, OSError, sqlite3.Error) as err:
        st.error(f"Not started: {md(err)}")
        return
    service.pump(store)
    set_selected_run_ids(ids)
    st.toast(f"Queued runs {', '.join(map(str, ids))}")


# --- runs and what can be done to them ----------------------------------------------------------------------------
def all_runs(archived: bool = False) -> list[Run]:
    """Every run of the data folder (archived ones only when asked for), after starting queued runs where a slot
    is free and marking killed ones."""
    store = get_store()
    service.pump(store)
    return notes.shown(store.list_runs(), archived)


# The Train page's live view: every 1.5 s while a run waits or trains; otherwise every 10 s, only to notice runs
# started elsewhere (the CLI, another tab, a classmate): an idle tab left open cost the server a rerun every 1.5 s.
LIVE_REFRESH_S, IDLE_REFRESH_S = 1.5, 10.0


def training_now() -> bool:
    """Whether a run the Train page lists is queued, starting or training (the live view's own test, on its list)."""
    return bool(notes.shown(get_store().list_runs(ACTIVE)))


def broken_runs() -> list[tuple[int, str]]:
    return get_store().broken_runs()


def shown_runs(runs: list[Run], newest: int) -> list[int]:
    """The runs a page shows at first: those in the URL, else the ones training, else the `newest` few."""
    ids = {r.id for r in runs}
    return [i for i in selected_run_ids() if i in ids] or [r.id for r in runs if r.status in ACTIVE] \
        or sorted(ids)[-newest:]


def resumable(run: Run) -> bool:
    return service.resumable(get_store(), run)


def stop_run(run: Run) -> None:
    try:
        service.stop(get_store(), run.id, person=current_person())
    except NotYours as err:
        st.error(f"#{run.id} not stopped: {md(err)}")
    except ValueError:
        pass  # it ended meanwhile: the next refresh shows how


def resume_run(run: Run) -> None:
    try:
        service.resume(get_store(), run.id, limits=limits(), person=current_person())
    except (ValueError, OSError, sqlite3.Error) as err:
        st.error(f"#{run.id} not resumed: {md(err)}")


def delete_run(run: Run) -> bool:
    """Delete a run and its checkpoints for good; False (said on the page) when it could not be."""
    try:
        service.delete(get_store(), run.id, person=current_person())
    except (ValueError, OSError, sqlite3.Error) as err:
        st.error(f"#{run.id} not deleted: {md(err)}")
        return False
    return True


def keep_run(run: Run, name: str, note: str, tags: str) -> bool:
    """Save what a person says about a run: its name ('' : its config's), note and tags (typed as 'a, b').
    Every value is checked before any is written; False (said on the page) when one is refused."""
    try:
        notes.keep(get_store(), run.id, name, note, notes.split_tags(tags), person=current_person())
    except (ValueError, OSError, sqlite3.Error) as err:
        st.error(f"#{run.id} not saved: {md(err)}")
        return False
    return True


def archive_run(run: Run, archived: bool = True) -> bool:
    """Archive a run (hidden from the lists unless asked for) or show it again; False (said on the page) when
    refused (it is training)."""
    try:
        (notes.archive if archived else notes.unarchive)(get_store(), run.id, person=current_person())
    except (ValueError, OSError, sqlite3.Error) as err:
        st.error(f"#{run.id} not {'archived' if archived else 'shown again'}: {md(err)}")
        return False
    return True


def queue_places(runs: list[Run]) -> list[tuple[Run, int, str]]:
    """(run, place, why) for each of the current person's runs waiting in the queue, in the order they start
    (lmcore.runs.fairshare: the queue serves people in turn)."""
    waiting = {r.id: r for r in mine(runs, current_person()) if r.status == "queued"}
    places = queue_positions(get_store(), waiting, limits())
    return sorted(((waiting[run_id], *where) for run_id, where in places.items()), key=lambda found: found[1])


def curves_data(runs: list[Run]) -> tuple[pd.DataFrame, dict[int, str], dict[int, str]]:
    """(metrics, label per run, configuration per run) for lmcore.viz.training.curves_figure."""
    metrics = metrics_frame(get_store(), [r.id for r in runs])
    return metrics, {r.id: run_label(r) for r in runs}, {r.id: run_summary(r) for r in runs}


# --- comparing runs -----------------------------------------------------------------------------------------------
def evaluated_runs(archived: bool = False) -> list[Run]:
    """The runs with a validation perplexity: those the Compare page can place (archived ones when asked for)."""
    return [r for r in notes.shown(get_store().list_runs(), archived) if r.best_valid_ppl is not None]


def comparison(runs: list[Run], order: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(table, baseline, metrics): the runs beside their corpus's Kneser–Ney baseline (empty, with a warning on
    the page, when the corpus cannot be read), and their curves."""
    store = get_store()
    try:
        with st.spinner("Fitting the Kneser–Ney baseline (once per corpus)…"):
            baseline = baseline_rows(store, runs, order)
    except CorpusError as err:
        st.warning(f"No n-gram baseline: {md(err)}")
        baseline = pd.DataFrame()
    metrics = metrics_frame(store, [r.id for r in runs])
    ours = compare_table(runs, metrics)
    table = pd.concat([ours, baseline], ignore_index=True) if len(baseline) else ours
    specs = [r.cfg.corpus for r in runs] + (distinct_specs(runs) if len(baseline) else [])
    return add_bits(table, specs, cached_text_sizes), baseline, metrics


def tokenizers_differ(runs: list[Run]) -> bool:
    return mixed_tokenizers(r.cfg.corpus for r in runs)


def seed_summary(runs: list[Run], table: pd.DataFrame, band: str) -> tuple[list[SeedGroup], pd.DataFrame]:
    """The runs' seed groups and Compare's table of them (band: "std" or "range")."""
    groups = seed_groups(runs)
    return groups, summary_table(table[table["run"].notna()], groups, band)


def grouped_curves(metrics: pd.DataFrame, groups: list[SeedGroup], x: str, y: str) -> tuple[dict, dict]:
    """(curves per group, each group's first run id for its colour) for lmcore.viz.training.group_curves_figure."""
    return group_curves(metrics, groups, x, y), {g.label: g.run_ids[0] for g in groups}


# --- a path through the app (issue 13, item 10): from trained runs to the pages that look inside them -------------
def look_inside(runs: list[Run]) -> None:
    """Links to Hidden states (the best finished recurrent run), Gates and Gradients (the best run of each
    recurrent architecture); for a feedforward run, the pages that apply to it (Next word, Markov vs memory)."""
    best = best_runs(runs)
    if "ffnn" in best:
        ffnn = best["ffnn"]
        st.caption(f"#{ffnn.id} {md(run_name(ffnn))} is feedforward: it carries no state through time, so it has "
                   "no hidden states over the text, gates or gradients through time. What it predicts, and how "
                   "little context it uses:")
        f1, f2 = st.columns(2)
        f1.page_link("views/next_word.py", label="Next word: what the window predicts", icon=":material/keyboard_tab:",
                     query_params={"run": f"run:{ffnn.id}"})
        f2.page_link("views/memory.py", label="Markov vs memory: its context use stops at n − 1 words",
                     icon=":material/memory:", query_params={"runs_view": f"run:{ffnn.id}"})
    if "all" not in best:
        return
    top = best["all"]
    st.caption(f"Open the inspection pages on the best finished recurrent run here, #{top.id} {md(run_name(top))} "
               f"(validation perplexity {top.best_valid_ppl:.1f}); Gates and Gradients side by side on the best run "
               "of each architecture.")
    gates = {f"gates_{family}": f"run:{best[family].id}" for family in ("elman", "lstm", "gru") if family in best}
    per_arch = sorted((r for k, r in best.items() if k not in ("all", "ffnn")), key=lambda r: r.best_valid_ppl)
    c1, c2, c3 = st.columns(3)
    c1.page_link("views/hidden.py", label="Hidden states: what each unit tracks", icon=":material/grid_on:",
                 query_params={"run": f"run:{top.id}"})
    c2.page_link("views/gates.py", label="Gates: how long the memory lasts", icon=":material/door_open:",
                 query_params=gates)
    c3.page_link("views/gradients.py", label="Gradients: how far back the error reaches",
                 icon=":material/trending_down:",
                 query_params={"decay_runs": ",".join(f"run:{r.id}" for r in per_arch)})
