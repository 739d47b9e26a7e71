"""Sweeps: a grid of runs (architectures × LSTM variants × sizes × seeds) through the job queue, its progress,
and Greff et al. (2016)'s comparisons: perplexity per model across seeds, the change from the reference LSTM."""
import sqlite3

import streamlit as st

import appstate
from lmcore.config import OPTIMIZERS, RunConfig, TrainConfig
from lmcore.corpus.reading import CorpusError
from lmcore.model import ARCHS, GRU_CONVENTIONS, LSTM_VARIANTS, ModelConfig
from lmcore.presets import count_params
from lmcore.reports import BLOWN_UP, change_from_reference, sweep_summary, sweep_table
from lmcore.runs import jobs, sweeps
from lmcore.train import check_fits
from lmcore.viz.sweeps import change_figure, params_figure, sweep_box_figure

st.title("Sweeps")
st.caption("Greff et al. (2016), *LSTM: A Search Space Odyssey*, removed one part of the LSTM at a time and trained "
           "each variant with several seeds. Define such a grid here; each run trains in its own process through "
           "the job queue, and a stopped or interrupted sweep can be resumed.")
store = appstate.get_store()
spec = appstate.corpus_spec()
limits = appstate.limits()


def ints(text: str) -> list[int]:
    return [int(x) for x in text.replace(",", " ").split()]


def floats(text: str) -> list[float]:
    return [float(x) for x in text.replace(",", " ").split()]


with st.expander("New sweep", expanded=not store.list_sweeps()):
    st.markdown(f"Corpus: **{appstate.md(appstate.corpus_label(spec))}** (change it on the Corpus page)")
    c1, c2 = st.columns(2)
    archs = c1.multiselect("Architectures", list(ARCHS), default=["lstm"], key="sw_archs")
    variants = c2.multiselect("LSTM variants", list(LSTM_VARIANTS), default=["vanilla", "nig", "nfg", "noaf"],
                              format_func=lambda v: f"{LSTM_VARIANTS[v].name}: {LSTM_VARIANTS[v].description}",
                              key="sw_variants", disabled="lstm" not in archs)
    conventions = ["pytorch"]
    if "gru" in archs:
        conventions = c2.multiselect("GRU conventions", list(GRU_CONVENTIONS), default=["pytorch"], key="sw_gru")
    c1, c2, c3, c4 = st.columns(4)
    seeds_text = c1.text_input("Seeds", "1 2", key="sw_seeds")
    hidden_text = c2.text_input("Hidden sizes", "64", key="sw_hidden")
    epochs = c3.number_input("Epochs", 1, limits.max_epochs, min(3, limits.max_epochs), key="sw_epochs")
    layers = c4.number_input("Layers", 1, 4, 1, key="sw_layers")
    with st.expander("Training settings"):
        d = TrainConfig()
        t1, t2, t3, t4, t5, t6 = st.columns(6)
        optimizer = t1.selectbox("Optimizer", OPTIMIZERS, key="sw_opt")
        lr_text = t2.text_input("Learning rates", "20" if optimizer == "sgd" else "0.002", key=f"sw_lr_{optimizer}")
        bptt = t3.number_input("τ (BPTT steps)", 1, 1000, d.bptt, key="sw_bptt")
        batch = t4.number_input("Batch", 1, 512, d.batch, key="sw_batch")
        dropout = t5.number_input("Dropout", 0.0, 0.9, 0.2, step=0.05, key="sw_dropout")
        max_steps = t6.number_input("Max steps per run (0: none)", 0, 10**7, 0, key="sw_max_steps")
    try:
        seeds, hidden, lrs = ints(seeds_text), ints(hidden_text), floats(lr_text)
        base = RunConfig(corpus=spec, model=ModelConfig(activation="tanh", layers=int(layers), dropout=float(dropout)),
                         train=TrainConfig(optimizer=optimizer, lr=lrs[0] if lrs else d.lr, bptt=int(bptt),
                                           batch=int(batch), epochs=int(epochs), max_steps=int(max_steps)))
        grid = sweeps.SweepSpec(base=base, archs=archs, variants=variants, gru_conventions=conventions,
                                hidden=hidden, lr=lrs, seeds=seeds)
        configs = sweeps.expand(grid)
    except ValueError as err:
        st.warning(f"Not a valid grid: {appstate.md(err)}")
        configs = []
    if configs:
        try:
            corpus = appstate.cached_corpus(spec)
        except CorpusError as err:
            st.error(appstate.md(err))
            st.stop()
        sizes = sorted({(c.label().rsplit(" ", 1)[0], count_params(c.model, len(corpus.vocab))) for c in configs},
                       key=lambda x: x[1])
        st.caption(f"**{len(configs)} runs**, at most {limits.max_parallel_jobs} at a time · parameters: "
                   + ", ".join(f"{appstate.md(name)} {n:,}" for name, n in sizes))
        if st.button(f"Start sweep of {len(configs)} runs", type="primary", key="sw_start"):
            try:
                check_fits(corpus, base.train)
                sweep_id = sweeps.submit_sweep(store, grid, limits=limits, vocab_size=len(corpus.vocab))
            except (ValueError, OSError, sqlite3.Error) as err:
                st.error(f"Not started: {appstate.md(err)}")
            else:
                st.query_params["sweep"] = str(sweep_id)
                st.toast(f"Sweep {sweep_id} queued")

listed = store.list_sweeps()
if not listed:
    st.info("No sweeps yet: define one above and start it.")
    st.stop()
ids = [s["id"] for s in listed]
names = {s["id"]: f"#{s['id']} {s['name']} · {s['spec']['base']['corpus']['source']}" for s in listed}
wanted = st.query_params.get("sweep", "")
default = int(wanted) if wanted.isdigit() and int(wanted) in ids else ids[-1]
sweep_id = st.selectbox("Sweep", ids, index=ids.index(default), format_func=names.get, key="sw_pick")
st.query_params["sweep"] = str(sweep_id)


@st.fragment(run_every=2.0)
def progress_view():
    jobs.pump(store)
    p = sweeps.progress(store, sweep_id)
    c1, c2 = st.columns([6, 1])
    c1.progress(p["done"] / p["total"] if p["total"] else 0.0, text=sweeps.progress_text(p))
    if p["active"] and c2.button("Stop sweep", key="sw_stop"):
        sweeps.stop_sweep(store, sweep_id)
    elif not p["active"] and p["status"] == "incomplete" and c2.button(
            "Resume sweep", key="sw_resume", help="queue again the stopped, interrupted and failed runs; "
                                                  "finished runs are kept"):
        try:
            sweeps.resume_sweep(store, sweep_id, limits=limits)
        except (ValueError, OSError, sqlite3.Error) as err:
            st.error(f"Not resumed: {appstate.md(err)}")


progress_view()

table = sweep_table(sweeps.sweep_runs(store, sweep_id))
metric = st.radio("Perplexity", ["test ppl", "best valid ppl"], horizontal=True, key="sw_metric")
if not (table["status"] == "done").any():
    st.info("No run of this sweep has finished yet; results appear here as runs end (reload or wait).")
    st.stop()
blown = int((table["status"] == "blew up").sum())
if blown:
    st.warning(f"{blown} run(s) blew up: perplexity over {BLOWN_UP}× a uniform guess over the vocabulary, though "
               "finite. They are listed under Every run and left out of the plots and summaries.")
st.plotly_chart(sweep_box_figure(table, metric), width="stretch", key="sw_box")

models = list(dict.fromkeys(table["model"]))
reference = st.selectbox("Change measured from", models, index=models.index("LSTM") if "LSTM" in models else 0,
                         key="sw_reference", help="each run minus this model's run with the same seed and setting. "
                         "'LSTM' is PyTorch's (no peepholes); Greff's vanilla LSTM, with peepholes, is LSTM-peephole")
change = change_from_reference(table, metric, reference)
left, right = st.columns(2)
left.dataframe(change, hide_index=True, width="stretch",
               column_config={c: st.column_config.NumberColumn(format="%.2f") for c in change.columns[3:]})
right.plotly_chart(change_figure(change, metric, reference), width="stretch", key="sw_change")
st.plotly_chart(params_figure(table, metric), width="stretch", key="sw_params")

st.subheader("Per model")
st.dataframe(sweep_summary(table, metric), hide_index=True, width="stretch")
with st.expander("Every run"):
    st.dataframe(table, hide_index=True, width="stretch")
st.download_button("Download runs (CSV)", table.to_csv(index=False).encode(), f"sweep_{sweep_id}.csv", "text/csv")
