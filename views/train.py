"""Train: up to four runs at once from presets, each in its own process; live curves; every run of the data
folder; Stop; Resume; a run's name, note and tags; Archive: on your own runs (or every run, for an instructor);
where your runs wait in the queue and why. The whole form is in the URL, so a reload or a link brings back the
same runs to train."""
import streamlit as st

import appstate
from appstate import identity, training
from appstate.training import (ACTIVATION_NAMES, ACTIVE, ARCHS, DEFAULT_LINEUP, GRU_CONVENTIONS, LSTM_VARIANTS,
                               MAX_SEEDS, MAX_WINDOW, NAME_CHARS, NOTE_CHARS, OPTIMIZERS, OUTPUTS, PRESETS, TAGS_CHARS,
                               count_params, history_table, note_excerpt, output_hint, preset, progress_text,
                               readable_message, recipe_note, run_label, run_name)
from appstate.widgets import field
from appstate.figures import chart
from lmcore.viz.training import curves_figure

st.title("Train")
spec = appstate.corpus_spec()
st.markdown(f"Training on **{appstate.md(appstate.corpus_label(spec))}**.")
st.page_link("views/corpus.py", label="Change the corpus", icon=":material/description:",
             query_params=appstate.corpus_params(spec))
st.caption("Each run trains in its own process: you can leave or reload this page, or close the tab, and come back.")
try:
    corpus = appstate.cached_corpus(spec)
except appstate.CorpusError as err:
    st.error(appstate.md(err))
    st.stop()
limits = appstate.limits()
recipe = training.recipe(spec)  # the corpus's recipe (every preset shares these settings)
with st.expander("Training settings shared by all runs", expanded=False):
    s1, s2, s3, s4, s5, s6 = st.columns(6)
    with s1:
        epochs = field(st.number_input, "Epochs", "epochs", min(recipe.epochs, limits.max_epochs), 1,
                       limits.max_epochs, help="passes over the training split; the lr is divided by the decay "
                                               "factor after each epoch that does not improve validation")
    with s2:
        bptt = field(st.number_input, "τ (BPTT steps)", "bptt", recipe.bptt, 1, 1000,
                     help="truncated backprop through time: the gradient flows back at most τ tokens; the hidden "
                          "state is still carried over from chunk to chunk")
    with s3:
        batch = field(st.number_input, "Batch", "batch", recipe.batch, 1, 512,
                      help="parallel streams of text: more is faster per token, fewer updates per epoch")
    with s4:
        seed = field(st.number_input, "Seed", "train_seed", recipe.seed, 0, 2**31 - 1,
                     help="the same seed gives the same initial weights and batches")
    with s5:
        time_budget = field(st.number_input, "Time budget per run (s, 0: none)", "budget", 0, 0, 36_000,
                            help="stop a run after this long, keeping its best checkpoint")
    with s6:
        device = field(st.selectbox, "Device", "device", "auto", ["auto", "cpu", "cuda"],
                       help="auto: CUDA, then MPS, then CPU")

note = recipe_note(spec)
st.caption("The presets' defaults, before any change below: " + note[:1].lower() + note[1:])
n_runs = field(st.slider, "Runs", "n", len(DEFAULT_LINEUP), 1, 4, help="trained at once, each in its own process "
               f"(this server runs {limits.max_parallel_jobs} at a time; the others wait in a queue)")
sizing = field(st.radio, "Sizes", "sizing", "same hidden size", ["same hidden size", "same parameters"],
               horizontal=True, help="same parameters: each run's hidden size is chosen so its parameter count "
                                     "matches run 1's (an LSTM has 4 weight sets per unit, a GRU 3, an RNN 1)")
names = list(PRESETS)


def model_fields(i: int, name: str) -> tuple[dict, dict]:
    """Run i's advanced fields, starting from preset `name` on this corpus: (model overrides, train overrides)."""
    model, train = preset(name, spec)
    with st.expander("Advanced"):
        arch = field(st.selectbox, "Architecture", f"arch{i}", model.arch, list(ARCHS),
                     help="\n".join(f"{a}: {d}" for a, d in ARCHS.items()))
        feedforward = arch == "ffnn"
        window = field(st.number_input, "Window n", f"win{i}", model.window, 2, MAX_WINDOW,
                       help="the model reads the n − 1 previous words, and nothing before them (n = 5 in Bengio "
                            "et al. 2003): a 5-gram's window with shared parameters") if feedforward else 5
        direct = field(st.checkbox, "Direct connections D x", f"direct{i}", model.direct,
                       help="Bengio et al.'s y = softmax(W h + D x + b2): the window's embeddings also reach the "
                            "output directly; needs W untied") if feedforward else False
        variant = field(
            st.selectbox, "LSTM variant", f"variant{i}", model.variant, list(LSTM_VARIANTS),
            format_func=lambda v: f"{LSTM_VARIANTS[v].name}: {LSTM_VARIANTS[v].description}",
            help="Greff et al. 2016, LSTM: A Search Space Odyssey. Their vanilla LSTM has peepholes ('peephole' "
                 "here); NIG … FGR each change one thing in it. 'vanilla' is PyTorch's LSTM, the only one "
                 "that trains on the fused module.") if arch == "lstm" else "vanilla"
        gru_convention = field(st.selectbox, "GRU convention", f"gru{i}", model.gru_convention,
                               list(GRU_CONVENTIONS), format_func=GRU_CONVENTIONS.get) if arch == "gru" else "pytorch"
        activation = field(st.selectbox, "Activation f (Elman)", f"act{i}", model.activation, ACTIVATION_NAMES,
                           help="σ: the lecture's RNN, states in [0, 1]; tanh: states in [−1, 1], zero-centred; "
                                "relu with identity init: the IRNN (Le et al. 2015)") \
            if not feedforward else model.activation  # the FFNN's h is tanh
        bias = field(st.checkbox, "Biases b1, b2", f"bias{i}", model.bias)
        output = field(st.selectbox, "Output layer", f"out{i}", model.output, list(OUTPUTS),
                       format_func=lambda o: {"softmax": "softmax over every word",
                                              "adaptive": "adaptive softmax (faster on big vocabularies)"}[o],
                       help="\n\n".join(f"**{o}**: {d}" for o, d in OUTPUTS.items()))
        adaptive = output == "adaptive"
        tied = field(st.checkbox, "Tie W to the embedding (needs equal sizes)", f"tied{i}", model.tied,
                     help="W shares the embedding matrix: fewer parameters, less overfitting on a small corpus "
                          "(Press & Wolf 2017)", disabled=bool(direct) or adaptive)
        if (direct or adaptive) and tied:  # the output layer is not one row per word of the embedding's size
            st.caption("W untied: with direct connections the output layer reads [h; x], not h alone." if direct else
                       "W untied: an adaptive softmax has no one row of W per word to share with the embedding.")
            tied = False
        hidden = field(st.number_input, "Hidden units", f"hid{i}", model.hidden, 1, 4096,
                       help="the size of h_t, the model's memory")
        if tied:  # W is the embedding matrix, so x_t has the size of h_t
            st.caption(f"Embedding size: {int(hidden)}, the hidden size (W tied to the embedding)")
            emb = hidden
        else:
            emb = field(st.number_input, "Embedding size", f"emb{i}", model.emb, 1, 2048,
                        help="the size of x_t, the row of the embedding matrix that V multiplies")
        if feedforward:
            st.caption("Layers: 1, the feedforward model's one hidden layer h = tanh(V x + b1) (Bengio et al. 2003).")
            layers = 1
        else:
            layers = field(st.number_input, "Layers", f"layers{i}", model.layers, 1, 8,
                           help="stacked: layer 2 reads layer 1's h_t as its input")
        dropout = field(st.number_input, "Dropout", f"drop{i}", model.dropout, 0.0, 0.9, step=0.05,
                        help="share of units zeroed at random while training, between layers (not through time): "
                             "fights overfitting on small corpora")
        optimizer = field(st.selectbox, "Optimizer", f"opt{i}", train.optimizer, OPTIMIZERS,
                          help="adam adapts a step size per weight and needs little tuning; sgd is the lecture's")
        lr = field(st.number_input, "Learning rate", f"lr{i}", train.lr, 1e-5, 100.0, format="%.4g",
                   help="Adam: about 0.001–0.003. SGD: about 1–20 (the lecture's SGD recipe: 20 with "
                        "clipping at 0.25, and many epochs)")
        clip = field(st.number_input, "Clip gradient norm (0: off)", f"clip{i}", train.clip, 0.0, 100.0,
                     help="rescale the gradient when its norm is above this: the cure for exploding gradients "
                          "(Pascanu et al. 2013)")
    model_overrides = dict(arch=arch, activation=activation, bias=bias, hidden=int(hidden), layers=int(layers),
                           dropout=float(dropout), tied=tied, output=output, variant=variant,
                           gru_convention=gru_convention,
                           window=int(window), direct=bool(direct),  # 5 and off unless the model is the FFNN
                           **({} if tied else {"emb": int(emb)}))  # tied: the embedding size follows the hidden size
    return model_overrides, dict(optimizer=optimizer, lr=float(lr), clip=float(clip))


configs = []
for i, col in enumerate(st.columns(n_runs), start=1):
    with col:
        default = DEFAULT_LINEUP[i - 1] if i <= len(DEFAULT_LINEUP) else "LSTM"
        name = field(st.selectbox, f"Run {i}", f"preset{i}", default, names,
                     help="\n\n".join(f"**{n}**: {p.note}" for n, p in PRESETS.items()),
                     on_change=training.reset_run_fields, args=(i, spec))
        model_overrides, train_overrides = model_fields(i, name)
        cfg = training.lineup_run(
            name, spec, corpus, model_overrides,
            dict(train_overrides, epochs=int(epochs), bptt=int(bptt), batch=int(batch), seed=int(seed),
                 time_budget=float(time_budget), device=device),
            match=configs[0] if sizing == "same parameters" and configs else None)
        configs.append(cfg)
        st.caption(PRESETS[name].note)
        reads = f"reads the {cfg.model.window - 1} previous words · " if cfg.model.arch == "ffnn" else ""
        st.caption(f"{reads}{cfg.model.layers}×{cfg.model.hidden} units · **{count_params(cfg.model):,}** parameters"
                   + (" · bfloat16 arithmetic (this CPU computes it natively: 1.5–2× faster, perplexity within 1%)"
                      if cfg.train.bf16 else ""))
        if hint := output_hint(cfg.model):
            st.caption(hint)


seeds = int(field(st.number_input, "Seeds per run", "seeds", 1, 1, MAX_SEEDS,
                  help="Train each run above this many times, with seeds s, s + 1, …: at these sizes the seed moves "
                       "perplexity by more than the gap between models. Compare shows a run's seeds as one group, "
                       "mean ± std with a band; each seed is a run in the queue."))
label = f"Train {n_runs} model{'s' if n_runs > 1 else ''}" + (f" × {seeds} seeds ({n_runs * seeds} runs)" if seeds > 1
                                                              else "")
if st.button(label, type="primary"):
    training.queue_runs(configs, corpus, seeds)  # every run checked before any is queued


def run_controls(run) -> None:
    """One run's line: name, status, tags and note, progress bar, Stop / Resume, Edit, and why it failed."""
    c1, c2, c3 = st.columns([3, 6, 1])
    c1.markdown(f"**#{run.id} {appstate.md(run_name(run))}** · `{run.status}`"
                + (f" · {appstate.md(run.device)}" if run.device else "") + (" · archived" if run.archived else ""))
    said = ([f":material/sell: {appstate.md(', '.join(run.tags))}"] if run.tags else []) + \
        ([f":material/notes: {appstate.md(note_excerpt(run.note, 60))}"] if run.note else [])
    if said:
        c1.caption(" · ".join(said))
    c2.progress(min(1.0, run.step / run.total_steps) if run.total_steps else 0.0, text=progress_text(run))
    if identity.changeable(run):
        if run["owner"] and not identity.is_mine(run):  # an instructor's on a student's run: whose it is
            c3.caption(identity.owner_label(run))
        owner_controls(run, c3)
    else:  # everyone may look; only its owner or an instructor may change it
        c3.caption(identity.owner_label(run))
    if run.status in ("failed", "diverged", "interrupted") and run.message:
        st.warning(f"#{run.id}: {appstate.md(readable_message(run.message))}")
    elif training.cut_short(run):  # a full bar, not all its epochs
        st.caption(f"#{run.id} {appstate.md(run.message)}")


def owner_controls(run, c3) -> None:
    """Stop, Resume, Edit and Delete, for the run's owner or an instructor."""
    if run.status in ACTIVE and c3.button("Stop", key=f"stop{run.id}"):
        training.stop_run(run)
    if training.resumable(run):
        resume_control(run, c3)
    with c3.popover("Edit", help="its name, a note, tags; archive it"):
        keep_editor(run)
    if run.status not in ACTIVE:
        with c3.popover("Delete", help="remove this run's checkpoints and curves for good"):
            st.caption(f"Delete #{run.id} and its checkpoints for good?")
            if st.button("Delete for good", key=f"delete{run.id}", type="primary") and training.delete_run(run):
                st.rerun()  # the whole page: the run leaves the chooser and the history too


def resume_control(run, c3) -> None:
    """Resume: at once for a stopped or interrupted run; for a finished one (one more epoch changes numbers every
    page compares) only once asked in a popover."""
    if run.status != "done":
        if c3.button("Resume", key=f"resume{run.id}", help="carry on from the last checkpoint to the planned epochs"):
            training.resume_run(run)
        return
    with c3.popover("Resume", help="train it one more epoch from its last checkpoint"):
        st.caption(f"#{run.id} has trained all its epochs. One more changes its curves, perplexities and "
                   "checkpoints, here and on every page that compares it.")
        if st.button("Train one more epoch", key=f"resume{run.id}", type="primary"):
            training.resume_run(run)


def keep_editor(run) -> None:
    """What a person says about a run, kept in the store and shown in every table and legend: a name of its own,
    a note, tags; and Archive (hidden from the lists unless asked for)."""
    if identity.shared_server():
        st.caption("Everyone on this server sees a run's name, note and tags.")
    with st.form(f"train_keep{run.id}", border=False):
        name = st.text_input("Name", run.display_name, max_chars=NAME_CHARS, key=f"train_name{run.id}",
                             placeholder=run.cfg.label(), help="empty: the name it started with")
        note = st.text_area("Note", run.note, max_chars=NOTE_CHARS, key=f"train_note{run.id}")
        tags = st.text_input("Tags", ", ".join(run.tags), max_chars=TAGS_CHARS, key=f"train_tags{run.id}",
                             placeholder="baseline, seed 2", help="separated by commas; Compare filters by them")
        if st.form_submit_button("Save") and training.keep_run(run, name, note, tags):
            st.rerun()  # the whole page: every table and legend shows the new name
    if run.archived:
        if st.button("Unarchive", key=f"train_unarchive{run.id}") and training.archive_run(run, False):
            st.rerun()
    elif st.button("Archive", key=f"train_archive{run.id}", disabled=run.status in ACTIVE,
                   help="hide it from the lists (Show archived brings it back); stop it first if it is training") \
            and training.archive_run(run):
        st.rerun()


def curves(runs: list) -> None:
    """Validation perplexity, training loss and the lr of these runs, each run in its own colour on every page."""
    metrics, labels, configs = training.curves_data(runs)
    options = appstate.curve_controls("train_", container=st.container())
    left, middle, right = st.columns([5, 5, 3])
    chart(curves_figure(metrics, labels, "step", "valid_ppl", configs=configs, **options), "train-curves", left,
          width="stretch", key="live_ppl")
    chart(curves_figure(metrics, labels, "step", "train_loss", configs=configs,
                        **dict(options, log_y=False)), "train-curves", middle, width="stretch", key="live_loss")
    chart(curves_figure(metrics, labels, "step", "lr", log_y=True, configs=configs, cut_outliers=False, legend=False),
          "train-curves", right, width="stretch",
          key="live_lr")


def next_steps(runs: list) -> None:
    """Once runs are done, where to look next: their comparison, then inside the best of them."""
    if not any(r.status == "done" for r in runs):
        return
    st.markdown("**Next:** compare these runs with the n-gram baseline, then look inside them.")
    st.page_link("views/compare.py", label="Compare: perplexity beside the Kneser–Ney baseline →",
                 icon=":material/leaderboard:", query_params={"compare": ",".join(str(r.id) for r in runs)})
    training.look_inside(runs)


def waiting(runs: list) -> None:
    """Where each of your queued runs is in the queue, and why (the queue serves people in turn)."""
    for run, _, why in training.queue_places(runs):
        st.caption(f":material/hourglass_top: Your #{run.id} {appstate.md(run_name(run))} is "
                   f"{appstate.md(why)}")


def live_view(live: bool):
    pick, archived, own = st.columns([3.6, 1.3, 1], vertical_alignment="bottom")  # labels whole at 1440 px
    show_archived = archived.checkbox("Show archived", key="train_archived", bind=appstate.URL,
                                      help="runs archived with Edit → Archive (or python -m lmcore archive)")
    only_mine = own.checkbox("Only mine", key="train_mine", bind=appstate.URL,
                             help="the runs you made; everyone's runs are here to look at and compare")
    every = training.all_runs(show_archived)  # (an archived run is never active)
    if any(r.status in ACTIVE for r in every) != live:  # a run came or every run ended: the page at the other rate
        st.rerun()
    waiting(every)
    if only_mine:
        every = identity.only_mine(every)
    if not every:
        st.info("None of your runs here: untick Only mine to see the class's." if only_mine else
                "Every run in this data folder is archived: tick Show archived." if training.all_runs(True) else
                "No runs in this data folder yet: pick presets above and press Train.")
        return
    by_id = {r.id: r for r in every}
    shown = pick.multiselect("Runs shown", sorted(by_id, reverse=True),
                             default=training.shown_runs(every, len(configs) * seeds)[-8:],
                             max_selections=8, format_func=lambda i: f"{run_label(by_id[i])} ({by_id[i].status})",
                             help="the runs you just started, else the ones running, else the newest; add any "
                                  "run of the history below")
    appstate.set_selected_run_ids(shown)
    runs = [by_id[i] for i in shown]
    for run in runs:
        run_controls(run)
    if runs:
        curves(runs)
        next_steps(runs)
    st.subheader("Every run in this data folder")
    for run_id, why in training.broken_runs():
        st.warning(f"#{run_id} cannot be shown: {appstate.md(why)}")
    st.dataframe(history_table(every), hide_index=True, placeholder=appstate.MISSING, width="stretch",
                 height=min(38 + 35 * len(every), 400),
                 column_config={"progress": st.column_config.ProgressColumn(format="percent", min_value=0,
                                                                           max_value=1),
                                "best valid ppl": st.column_config.NumberColumn(format="%.2f"),
                                "test ppl": st.column_config.NumberColumn(format="%.2f")})


st.subheader("Progress")
live = training.training_now()
st.fragment(live_view, run_every=training.LIVE_REFRESH_S if live else training.IDLE_REFRESH_S)(live)
