"""Train: up to four runs at once from presets, each in its own process; live curves; Stop; Resume."""
import sqlite3
import streamlit as st

import appstate
from lmcore.config import OPTIMIZERS, RunConfig
from lmcore.corpus.reading import CorpusError
from lmcore.model import ACTIVATION_NAMES, ARCHS, GRU_CONVENTIONS, LSTM_VARIANTS
from lmcore.presets import DEFAULT_LINEUP, PRESETS, count_params, preset, recipe_note, run_config
from lmcore.reports import metrics_frame
from lmcore.runs import jobs
from lmcore.runs.store import ACTIVE
from lmcore.train import check_fits
from lmcore.viz.training import curves_figure

st.title("Train")
spec = appstate.corpus_spec()
st.caption(f"Corpus: **{appstate.md(appstate.corpus_label(spec))}** (change it on the Corpus page). Each run trains in its own "
           "process; you can leave or reload this page and come back.")
try:
    corpus = appstate.cached_corpus(spec)
    vocab_size = len(corpus.vocab)
except CorpusError as err:
    st.error(appstate.md(err))
    st.stop()
limits = appstate.limits()

with st.expander("Training settings shared by all runs", expanded=False):
    s1, s2, s3, s4, s5, s6 = st.columns(6)
    shared = preset(DEFAULT_LINEUP[0], spec)[1]  # the corpus's recipe (every preset shares these settings)
    epochs = s1.number_input("Epochs", 1, limits.max_epochs, min(shared.epochs, limits.max_epochs))
    bptt = s2.number_input("τ (BPTT steps)", 1, 1000, shared.bptt)
    batch = s3.number_input("Batch", 1, 512, shared.batch)
    seed = s4.number_input("Seed", 0, 2**31 - 1, shared.seed)
    time_budget = s5.number_input("Time budget per run (s, 0: none)", 0, 36_000, 0)
    device = s6.selectbox("Device", ["auto", "cpu", "cuda"], help="auto: CUDA, then MPS, then CPU")

st.caption(recipe_note(spec))
n_runs = st.slider("Runs", 1, 4, len(DEFAULT_LINEUP))
sizing = st.radio("Sizes", ["same hidden size", "same parameters"], horizontal=True,
                  help="same parameters: each run's hidden size is chosen so its parameter count matches run 1's")
names = list(PRESETS)
configs: list[RunConfig] = []
for i, col in enumerate(st.columns(n_runs)):
    with col:
        default = DEFAULT_LINEUP[i] if i < len(DEFAULT_LINEUP) else "LSTM"
        name = st.selectbox(f"Run {i + 1}", names, index=names.index(default), key=f"preset{i}")
        model, train = preset(name, spec)
        k = f"{i}_{name}"  # keys carry the preset so choosing another preset resets its fields
        with st.expander("Advanced"):
            arch = st.selectbox("Architecture", list(ARCHS), index=list(ARCHS).index(model.arch), key=f"arch{k}",
                                help="\n".join(f"{a}: {d}" for a, d in ARCHS.items()))
            variant = st.selectbox(
                "LSTM variant", list(LSTM_VARIANTS), index=list(LSTM_VARIANTS).index(model.variant), key=f"var{k}",
                format_func=lambda v: f"{LSTM_VARIANTS[v].name}: {LSTM_VARIANTS[v].description}",
                help="Greff et al. 2016, LSTM: A Search Space Odyssey. Their vanilla LSTM has peepholes ('peephole' "
                     "here); NIG … FGR each change one thing in it. 'vanilla' is PyTorch's LSTM, the only one "
                     "that trains on the fused module.") if arch == "lstm" else "vanilla"
            gru_convention = st.selectbox(
                "GRU convention", list(GRU_CONVENTIONS), index=list(GRU_CONVENTIONS).index(model.gru_convention),
                key=f"gruc{k}", format_func=lambda c: GRU_CONVENTIONS[c]) if arch == "gru" else "pytorch"
            activation = st.selectbox("Activation f (Elman)", ACTIVATION_NAMES,
                                      index=ACTIVATION_NAMES.index(model.activation), key=f"act{k}")
            bias = st.checkbox("Biases b1, b2", value=model.bias, key=f"bias{k}")
            emb = st.number_input("Embedding size", 1, 2048, model.emb, key=f"emb{k}",
                                  help="with W tied to the embedding, the hidden size decides it")
            hidden = st.number_input("Hidden units", 1, 4096, model.hidden, key=f"hid{k}")
            layers = st.number_input("Layers", 1, 8, model.layers, key=f"lay{k}")
            dropout = st.number_input("Dropout", 0.0, 0.9, model.dropout, step=0.05, key=f"drop{k}")
            tied = st.checkbox("Tie W to the embedding (needs equal sizes)", value=model.tied, key=f"tied{k}",
                               help="W shares the embedding matrix: fewer parameters, less overfitting on a "
                                    "small corpus (Press & Wolf 2017)")
            optimizer = st.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(train.optimizer), key=f"opt{k}")
            lr = st.number_input("Learning rate", 1e-5, 100.0, train.lr, format="%.4g", key=f"lr{k}",
                                 help="Adam: about 0.001–0.003. SGD: about 1–20 (the lecture's SGD recipe: 20 with "
                                      "clipping at 0.25, and many epochs)")
            clip = st.number_input("Clip gradient norm (0: off)", 0.0, 100.0, train.clip, key=f"clip{k}")
        cfg = run_config(
            name, spec, vocab_size=vocab_size, train_tokens=corpus.train.size,
            match_params=count_params(configs[0].model) if sizing == "same parameters" and configs else 0,
            model=dict(arch=arch, activation=activation, bias=bias, hidden=int(hidden), layers=int(layers),
                       dropout=float(dropout), tied=tied, variant=variant, gru_convention=gru_convention,
                       **({} if tied else {"emb": int(emb)})),  # tied: the embedding size follows the hidden size
            train=dict(optimizer=optimizer, lr=float(lr), clip=float(clip), epochs=int(epochs), bptt=int(bptt),
                       batch=int(batch), seed=int(seed), time_budget=float(time_budget), device=device))
        configs.append(cfg)
        model = cfg.model
        st.caption(PRESETS[name].note)
        st.caption(f"{model.layers}×{model.hidden} units · **{count_params(model):,}** parameters")

if st.button(f"Train {n_runs} model{'s' if n_runs > 1 else ''}", type="primary"):
    store = appstate.get_store()
    try:
        for i, cfg in enumerate(configs):  # every run checked before any is queued
            try:
                jobs.validate_config(cfg)
                jobs.check_limits(store, cfg, limits)
                check_fits(corpus, cfg.train)
            except ValueError as err:
                raise ValueError(f"run {i + 1}: {err}") from None
        ids = [jobs.submit(store, cfg, start=False, limits=limits) for cfg in configs]
    except (ValueError, OSError, sqlite3.Error) as err:
        st.error(f"Not started: {appstate.md(err)}")
    else:
        jobs.pump(store)
        appstate.set_selected_run_ids(ids)
        st.toast(f"Queued runs {', '.join(map(str, ids))}")


@st.fragment(run_every=1.5)
def live_view():
    store = appstate.get_store()
    jobs.pump(store)  # start queued runs if a slot is free; mark killed ones
    ids = appstate.selected_run_ids() or [r["id"] for r in store.list_runs(ACTIVE)]
    runs = [r for r in (store.get_run(i) for i in ids) if r]
    if not runs:
        st.info("No runs yet: pick presets above and press Train.")
        return
    for run in runs:
        cfg = RunConfig.from_dict(run["config"])
        c1, c2, c3 = st.columns([3, 6, 1])
        c1.markdown(f"**#{run['id']} {appstate.md(cfg.label())}** · `{run['status']}`"
                    + (f" · {appstate.md(run['device'])}" if run["device"] else ""))
        c2.progress(min(1.0, run["step"] / run["total_steps"]) if run["total_steps"] else 0.0,
                    text=jobs.progress_text(run))
        if run["status"] in ACTIVE and c3.button("Stop", key=f"stop{run['id']}"):
            jobs.request_stop(store, run["id"])
        if run["status"] in jobs.RESUMABLE and c3.button("Resume", key=f"resume{run['id']}",
                                                         help="carry on from the last checkpoint: to the planned "
                                                              "epochs, or one more epoch if all are done"):
            try:
                jobs.resume(store, run["id"], limits=limits)
            except (ValueError, OSError, sqlite3.Error) as err:
                st.error(f"#{run['id']} not resumed: {appstate.md(err)}")
        if run["status"] in ("failed", "diverged", "interrupted") and run["message"]:
            st.warning(f"#{run['id']}: {appstate.md(run['message'])}")
    metrics = metrics_frame(store, [r["id"] for r in runs])
    labels = {r["id"]: f"#{r['id']} {RunConfig.from_dict(r['config']).label()}" for r in runs}
    left, middle, right = st.columns([5, 5, 3])
    left.plotly_chart(curves_figure(metrics, labels, "step", "valid_ppl"), width="stretch", key="live_ppl")
    middle.plotly_chart(curves_figure(metrics, labels, "step", "train_loss", log_y=False), width="stretch",
                        key="live_loss")
    right.plotly_chart(curves_figure(metrics, labels, "step", "lr", log_y=False), width="stretch", key="live_lr")


st.subheader("Progress")
live_view()
