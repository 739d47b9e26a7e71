"""Sweeps: a grid of runs (architectures × LSTM variants × sizes × seeds) through the job queue, its progress,
and Greff et al. (2016)'s comparisons: perplexity per model across seeds, the change from the reference LSTM.
The form's fields and the sweep shown live in the URL; the sweep's view refreshes itself while it trains."""
import streamlit as st

import appstate
from appstate import identity, sweeps
from appstate.sweeps import (ARCHS, BLOWN_UP, DEFAULT_TRAIN, GRU_CONVENTIONS, LSTM_VARIANTS, OPTIMIZERS,
                             change_from_reference, show_sweep, sweep_summary)
from appstate.figures import chart
from lmcore.viz.sweeps import change_figure, params_figure, sweep_box_figure

REFRESH_S = 2.0

st.title("Sweeps")
st.caption("Greff et al. (2016), *LSTM: A Search Space Odyssey*, removed one part of the LSTM at a time and trained "
           "each variant with several seeds. Define such a grid here; each run trains in its own process through "
           "the job queue, and a stopped or interrupted sweep can be resumed.")
spec = appstate.corpus_spec()
limits = appstate.limits()


def grid_form() -> tuple:
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
        bptt = t3.number_input("τ (BPTT steps)", 1, 1000, DEFAULT_TRAIN.bptt, key="sw_bptt", bind="query-params",
                               help="how many steps back the gradient flows (truncated backpropagation "
                                    "through time); the hidden state itself carries on across chunks")
        batch = t4.number_input("Batch", 1, 512, DEFAULT_TRAIN.batch, key="sw_batch", bind="query-params",
                                help="streams of text trained side by side")
        dropout = t5.number_input("Dropout", 0.0, 0.9, 0.2, step=0.05, key="sw_dropout", bind="query-params",
                                  help="share of activations zeroed while training, against overfitting")
        max_steps = t6.number_input("Max steps per run (0: none)", 0, 10**7, 0, key="sw_steps", bind="query-params",
                                    help="stop each run after this many updates: a quick trial of the grid")
    try:
        return sweeps.grid(spec, archs, variants, conventions, seeds_text, hidden_text, lr_text or lr_default,
                           layers, dropout, optimizer, bptt, batch, epochs, max_steps)
    except ValueError as err:
        st.warning(f"Not a valid grid: {appstate.md(err)}")
        return None, []


def start_row(grid, configs: list) -> None:
    """The grid's size, and Start (off while this tab's sweep of the same grid trains)."""
    try:
        corpus = appstate.cached_corpus(spec)
    except appstate.CorpusError as err:
        st.error(appstate.md(err))
        return
    runs = f"{len(configs)} run{'s' if len(configs) > 1 else ''}"
    st.caption(f"**{runs}**, at most {limits.max_parallel_jobs} at a time · parameters: "
               + ", ".join(f"{appstate.md(name)} {n:,}" for name, n in sweeps.sizes(configs, corpus)))
    twin = sweeps.running_twin(grid)
    mine = sweeps.started_here(twin)
    st.button(f"Start sweep of {runs}", type="primary", key="sw_start", disabled=mine,
              on_click=sweeps.start_sweep, args=(grid, corpus),
              help=f"sweep #{twin['id']} with this grid is training below; change the grid to start another"
              if mine else "queues every run of the grid; they train in the background, so you can leave the page")
    sweeps.show_outcome()


def pick_sweep(listed: list[dict]) -> int:
    """The sweep shown: the URL's `sweep`, else the newest. Always written back, so a link opens the same one."""
    ids, names = [s["id"] for s in listed], sweeps.sweep_names(listed)
    wanted = st.query_params.get("sweep", "")
    st.session_state["sweep_pick"] = int(wanted) if wanted.isdigit() and int(wanted) in ids else ids[-1]
    chosen = st.selectbox("Sweep", ids, format_func=names.get, key="sweep_pick",
                          on_change=lambda: show_sweep(st.session_state["sweep_pick"]))
    show_sweep(chosen)
    return chosen


def progress_row(sweep: dict, p: dict) -> None:
    """The sweep's progress; Stop or Resume for its owner or an instructor, its owner's name for anyone else."""
    sweep_id = sweep["id"]
    c1, c2 = st.columns([6, 1])
    c1.progress(p["done"] / p["total"] if p["total"] else 0.0, text=sweeps.progress_text(p))
    if not identity.changeable(sweep):
        c2.caption(identity.owner_label(sweep, "sweep"))
    elif p["active"] and c2.button("Stop sweep", key="sw_stop", help="waiting runs stop at once, training ones after "
                                                                    "their current step; Resume carries them on"):
        sweeps.stop_sweep(sweep_id)
    elif not p["active"] and p["status"] == "incomplete" and c2.button(
            "Resume sweep", key="sw_resume", help="queue again the stopped, interrupted and failed runs; "
                                               "finished runs are kept"):
        if sweeps.resume_sweep(sweep_id):
            st.rerun()  # the whole page, so that the view refreshes itself again


def sweep_view(sweep: dict, refreshing: bool) -> None:
    """Progress, tables and figures from one read of the store. Run as a fragment every REFRESH_S seconds while
    the sweep has active runs; when they have all ended, one full rerun turns the refresh off and frees Start."""
    p, table = sweeps.snapshot(sweep["id"])  # queued runs started first if a slot is free; killed ones marked
    if refreshing and not p["active"]:
        st.rerun()
    progress_row(sweep, p)
    results(sweep["id"], table)


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
    chart(sweep_box_figure(table, metric), "sweeps-sweep-box", width="stretch", key="sw_box")

    models = list(dict.fromkeys(done["model"]))
    reference = st.selectbox("Change measured from", models, index=models.index("LSTM") if "LSTM" in models else 0,
                             key="sw_ref", bind="query-params",
                             help="each run minus this model's run with the same seed and setting. 'LSTM' is "
                                  "PyTorch's (no peepholes); Greff's vanilla LSTM, with peepholes, is LSTM-peephole")
    change = change_from_reference(table, metric, reference)
    left, right = st.columns(2)
    if change.loc[change["model"] != reference, f"mean Δ {metric}"].notna().any():
        chart(change_figure(change, metric, reference), "sweeps-change", left, width="stretch", key="sw_change")
    else:
        left.caption(f"The change from {appstate.md(reference)} is drawn once another model has a finished run "
                     "with the same seed.")
    chart(params_figure(table, metric), "sweeps-params", right, width="stretch", key="sw_params")
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
with st.expander("New sweep", expanded=not sweeps.list_sweeps() or any(k.startswith("sw_") for k in st.query_params),
                 key="new_sweep"):
    grid, configs = grid_form()
    if configs:
        start_row(grid, configs)

listed = sweeps.list_sweeps()
if not listed:
    st.info("No sweeps yet: define one above and start it.")
    st.stop()
if st.checkbox("Only mine", key="sweeps_mine", bind="query-params", help="the sweeps you started"):
    listed = identity.only_mine(listed)
    if not listed:
        st.info("You have started no sweep yet: untick Only mine to see the class's.")
        st.stop()
shown = pick_sweep(listed)
active = sweeps.active_runs(shown)
sweep = next(s for s in listed if s["id"] == shown)
st.fragment(sweep_view, run_every=REFRESH_S if active else None)(sweep, bool(active))
