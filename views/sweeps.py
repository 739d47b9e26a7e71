"""Sweeps: a grid of runs (architectures × LSTM variants × sizes × seeds) through the job queue, its progress,
and Greff et al. (2016)'s comparisons: perplexity per model across seeds, the change from the reference LSTM.
The form's fields and the sweep shown live in the URL; the sweep's view refreshes itself while it trains."""
import sqlite3

import streamlit as st

import appstate
from lmcore.corpus.reading import CorpusError
from lmcore.nn.architectures import ARCHS, GRU_CONVENTIONS, LSTM_VARIANTS, ModelConfig, count_params, model_name
from lmcore.runs import service, sweeps
from lmcore.runs.catalog import corpus_name
from lmcore.runs.reports import BLOWN_UP, change_from_reference, sweep_summary, sweep_table
from lmcore.training.config import OPTIMIZERS, RunConfig, TrainConfig
from lmcore.viz.sweeps import change_figure, params_figure, sweep_box_figure

STARTED = "_sweep_started"  # the sweep this tab started last: Start stays off while it trains
OUTCOME = "_sweep_outcome"  # what the last Start click did, shown once beside the button
REFRESH_S = 2.0

st.title("Sweeps")
st.caption("Greff et al. (2016), *LSTM: A Search Space Odyssey*, removed one part of the LSTM at a time and trained "
           "each variant with several seeds. Define such a grid here; each run trains in its own process through "
           "the job queue, and a stopped or interrupted sweep can be resumed.")
store = appstate.get_store()
spec = appstate.corpus_spec()
limits = appstate.limits()
default_train = TrainConfig()


def ints(text: str) -> list[int]:
    return [int(x) for x in text.replace(",", " ").split()]


def floats(text: str) -> list[float]:
    return [float(x) for x in text.replace(",", " ").split()]


def show_sweep(sweep_id: int) -> None:
    st.query_params["sweep"] = str(sweep_id)


def start_sweep(grid: sweeps.SweepSpec, corpus) -> None:
    """Start's callback: it runs before the page, so the page then draws the button (disabled) and the new
    sweep from the store as it now is."""
    try:
        sweep_id = sweeps.submit_sweep(store, grid, limits=limits, corpus=corpus)
    except sweeps.DuplicateSweepError as err:
        st.session_state[OUTCOME] = ("duplicate", str(err), err.sweep["id"])
    except (ValueError, OSError, sqlite3.Error) as err:
        st.session_state[OUTCOME] = ("error", str(err), None)
    else:
        st.session_state[STARTED] = sweep_id
        st.session_state[OUTCOME] = ("started", f"Sweep #{sweep_id} queued", sweep_id)
        show_sweep(sweep_id)


def show_outcome() -> None:
    kind, message, sweep_id = st.session_state.pop(OUTCOME, (None, "", None))
    if kind == "started":
        st.toast(message)
    elif kind == "error":
        st.error(f"Not started: {appstate.md(message)}")
    elif kind == "duplicate":
        st.error(f"Not started: {appstate.md(message)}.")
        st.button(f"Show sweep #{sweep_id}", key="sw_show_twin", on_click=show_sweep, args=(sweep_id,))


def grid_form() -> tuple[sweeps.SweepSpec | None, list[RunConfig]]:
    """The form; the grid it describes and its runs, or (None, []).

    Every field is in the URL under its key. The keys start with sw_: a key is also the session's name for the
    value on every page, so a plain "epochs" would carry this form's value into the Train page's field."""
    st.markdown(f"Corpus: **{appstate.md(appstate.corpus_label(spec))}** (change it on the Corpus page)")
    c1, c2 = st.columns(2)
    archs = c1.multiselect("Architectures", list(ARCHS), default=["lstm"], key="sw_archs", bind="query-params",
                           help="one model per architecture; the LSTM once per variant, the GRU once per "
                                "convention:  \n" + "  \n".join(f"**{a}**: {appstate.md(d)}" for a, d in ARCHS.items()))
    variants = c2.multiselect(
        "LSTM variants", list(LSTM_VARIANTS), default=["vanilla", "nig", "nfg", "noaf"], key="sw_variants",
        bind="query-params", format_func=lambda v: LSTM_VARIANTS[v].name, disabled="lstm" not in archs,
        help="Greff et al.'s variants, each one change to the LSTM:  \n"
             + "  \n".join(f"**{v.name}**: {appstate.md(v.description)}" for v in LSTM_VARIANTS.values()))
    conventions = ["pytorch"]
    if "gru" in archs:
        conventions = c2.multiselect("GRU conventions", list(GRU_CONVENTIONS), default=["pytorch"], key="sw_gru",
                                     bind="query-params", help="  \n".join(
                                         f"**{k}**: {appstate.md(v)}" for k, v in GRU_CONVENTIONS.items()))
    c1, c2, c3, c4 = st.columns(4)
    seeds_text = c1.text_input("Seeds", "1 2", key="sw_seeds", bind="query-params",
                               help="every model trains once per seed; the spread over seeds tells a real "
                                    "difference from luck (Greff et al. compare means over seeds)")
    hidden_text = c2.text_input("Hidden sizes", "64", key="sw_hidden", bind="query-params",
                                help="units per layer, e.g. '32 64' for two sizes; the embedding is as wide")
    epochs = c3.number_input("Epochs", 1, limits.max_epochs, min(3, limits.max_epochs), key="sw_epochs",
                             bind="query-params", help="passes over the training text, per run")
    layers = c4.number_input("Layers", 1, 4, 1, key="sw_layers", bind="query-params",
                             help="recurrent layers stacked; each reads the h of the one below")
    with st.expander("Training settings"):
        t1, t2, t3, t4, t5, t6 = st.columns(6)
        optimizer = t1.selectbox("Optimizer", OPTIMIZERS, key="sw_opt", bind="query-params",
                                 help="sgd: the lecture's, one step size for every weight; adam: a step per "
                                      "weight from its gradients' history, with a far smaller learning rate")
        lr_default = "20" if optimizer == "sgd" else "0.002"
        lr_text = t2.text_input("Learning rates", "", key="sw_lr", bind="query-params", placeholder=lr_default,
                                help=f"empty: {lr_default}, a usual rate for {optimizer}; several values "
                                     "('0.001 0.003') add a grid axis")
        bptt = t3.number_input("τ (BPTT steps)", 1, 1000, default_train.bptt, key="sw_bptt", bind="query-params",
                               help="how many steps back the gradient flows (truncated backpropagation "
                                    "through time); the hidden state itself carries on across chunks")
        batch = t4.number_input("Batch", 1, 512, default_train.batch, key="sw_batch", bind="query-params",
                                help="streams of text trained side by side")
        dropout = t5.number_input("Dropout", 0.0, 0.9, 0.2, step=0.05, key="sw_dropout", bind="query-params",
                                  help="share of activations zeroed while training, against overfitting")
        max_steps = t6.number_input("Max steps per run (0: none)", 0, 10**7, 0, key="sw_steps", bind="query-params",
                                    help="stop each run after this many updates: a quick trial of the grid")
    try:
        seeds, hidden, lrs = ints(seeds_text), ints(hidden_text), floats(lr_text or lr_default)
        base = RunConfig(corpus=spec, model=ModelConfig(activation="tanh", layers=int(layers), dropout=float(dropout)),
                         train=TrainConfig(optimizer=optimizer, lr=lrs[0] if lrs else default_train.lr,
                                           bptt=int(bptt), batch=int(batch), epochs=int(epochs),
                                           max_steps=int(max_steps)))
        grid = sweeps.SweepSpec(base=base, archs=archs, variants=variants, gru_conventions=conventions,
                                hidden=hidden, lr=lrs, seeds=seeds)
        return grid, sweeps.expand(grid)
    except ValueError as err:
        st.warning(f"Not a valid grid: {appstate.md(err)}")
        return None, []


def start_row(grid: sweeps.SweepSpec, configs: list[RunConfig]) -> None:
    """The grid's size, and Start (off while this tab's sweep of the same grid trains)."""
    try:
        corpus = appstate.cached_corpus(spec)
    except CorpusError as err:
        st.error(appstate.md(err))
        return
    sizes = sorted({(model_name(c.model, size=True),
                     count_params(c.model, len(corpus.vocab))) for c in configs}, key=lambda x: x[1])
    runs = f"{len(configs)} run{'s' if len(configs) > 1 else ''}"
    st.caption(f"**{runs}**, at most {limits.max_parallel_jobs} at a time · parameters: "
               + ", ".join(f"{appstate.md(name)} {n:,}" for name, n in sizes))
    twin = sweeps.running_twin(store, grid)
    mine = twin is not None and twin["id"] == st.session_state.get(STARTED)
    st.button(f"Start sweep of {runs}", type="primary", key="sw_start", disabled=mine,
              on_click=start_sweep, args=(grid, corpus),
              help=f"sweep #{twin['id']} with this grid is training below; change the grid to start another"
              if mine else "queues every run of the grid; they train in the background, so you can leave the page")
    show_outcome()


def pick_sweep(listed: list[dict]) -> int:
    """The sweep shown: the URL's `sweep`, else the newest. Always written back, so a link opens the same one."""
    ids = [s["id"] for s in listed]
    names = {s["id"]: f"#{s['id']} {s['name']} · {corpus_name(s['spec']['base']['corpus']['source'])}" for s in listed}
    wanted = st.query_params.get("sweep", "")
    st.session_state["sweep_pick"] = int(wanted) if wanted.isdigit() and int(wanted) in ids else ids[-1]
    chosen = st.selectbox("Sweep", ids, format_func=names.get, key="sweep_pick",
                          on_change=lambda: show_sweep(st.session_state["sweep_pick"]))
    show_sweep(chosen)
    return chosen


def progress_row(sweep_id: int, p: dict) -> None:
    c1, c2 = st.columns([6, 1])
    c1.progress(p["done"] / p["total"] if p["total"] else 0.0, text=sweeps.progress_text(p))
    if p["active"] and c2.button("Stop sweep", key="sw_stop", help="waiting runs stop at once, training ones after "
                                                                    "their current step; Resume carries them on"):
        sweeps.stop_sweep(store, sweep_id)
    elif not p["active"] and p["status"] == "incomplete" and c2.button(
            "Resume sweep", key="sw_resume", help="queue again the stopped, interrupted and failed runs; "
                                               "finished runs are kept"):
        try:
            sweeps.resume_sweep(store, sweep_id, limits=limits)
        except (ValueError, OSError, sqlite3.Error) as err:
            st.error(f"Not resumed: {appstate.md(err)}")
        else:
            st.rerun()  # the whole page, so that the view refreshes itself again


def sweep_view(sweep_id: int, refreshing: bool) -> None:
    """Progress, tables and figures from one read of the store. Run as a fragment every REFRESH_S seconds while
    the sweep has active runs; when they have all ended, one full rerun turns the refresh off and frees Start."""
    service.pump(store)  # start queued runs if a slot is free; mark killed ones
    p, runs = sweeps.snapshot(store, sweep_id)
    if refreshing and not p["active"]:
        st.rerun()
    progress_row(sweep_id, p)
    results(sweep_id, sweep_table(runs))


def results(sweep_id: int, table) -> None:
    metric = st.radio("Perplexity", ["test ppl", "best valid ppl"], horizontal=True, key="sw_metric",
                      bind="query-params", help="test: on the held-out test split after training; best valid: "
                                                "the lowest on the validation split during training")
    done = table[table["status"] == "done"]
    blown = int((table["status"] == "blew up").sum())
    if blown:
        st.warning(f"{blown} run(s) blew up: perplexity over {BLOWN_UP}× a uniform guess over the vocabulary, "
                   "though finite. They are listed under Every run and left out of the plots and summaries.")
    if done.empty:
        st.info("No run of this sweep has a result yet; they appear here by themselves as runs end.")
        return
    st.plotly_chart(sweep_box_figure(table, metric), width="stretch", key="sw_box")

    models = list(dict.fromkeys(done["model"]))
    reference = st.selectbox("Change measured from", models, index=models.index("LSTM") if "LSTM" in models else 0,
                             key="sw_ref", bind="query-params",
                             help="each run minus this model's run with the same seed and setting. 'LSTM' is "
                                  "PyTorch's (no peepholes); Greff's vanilla LSTM, with peepholes, is LSTM-peephole")
    change = change_from_reference(table, metric, reference)
    left, right = st.columns(2)
    if change.loc[change["model"] != reference, f"mean Δ {metric}"].notna().any():
        left.plotly_chart(change_figure(change, metric, reference), width="stretch", key="sw_change")
    else:
        left.caption(f"The change from {appstate.md(reference)} is drawn once another model has a finished run "
                     "with the same seed.")
    right.plotly_chart(params_figure(table, metric), width="stretch", key="sw_params")
    st.dataframe(change, hide_index=True, placeholder=appstate.MISSING, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.2f") for c in change.columns[3:]})

    st.subheader("Per model")
    summary = sweep_summary(table, metric)
    st.dataframe(summary, hide_index=True, placeholder=appstate.MISSING, width="stretch",
                 column_config={"parameters": st.column_config.NumberColumn(format="localized"),
                                **{c: st.column_config.NumberColumn(format="%.2f") for c in summary.columns[4:]}})
    with st.expander("Every run"):
        st.dataframe(table, hide_index=True, placeholder=appstate.MISSING, width="stretch")
    c1, c2 = st.columns(2)
    c1.download_button("Download runs (CSV)", table.to_csv(index=False).encode(), f"sweep_{sweep_id}.csv",
                       "text/csv")
    c2.page_link("views/compare.py", label="Compare these runs' training curves", icon=":material/leaderboard:",
                 query_params={"compare": ",".join(str(r) for r in done["run"])})


# Open when there is no sweep yet or a link carries a grid; keyed, so that it stays open after Start.
with st.expander("New sweep", expanded=not store.list_sweeps() or any(k.startswith("sw_") for k in st.query_params),
                 key="new_sweep"):
    grid, configs = grid_form()
    if configs:
        start_row(grid, configs)

listed = store.list_sweeps()
if not listed:
    st.info("No sweeps yet: define one above and start it.")
    st.stop()
shown = pick_sweep(listed)
active = sweeps.progress(store, shown)["active"]
st.fragment(sweep_view, run_every=REFRESH_S if active else None)(shown, bool(active))
