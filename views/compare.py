"""Compare: every run's perplexity, parameters and speed beside the Kneser–Ney baseline; curves; CSV (without
owners, unless an instructor asks for their display names)."""
import streamlit as st

import appstate
from appstate import identity, training
from appstate.training import (LE_2015, best_runs, corpus_name, lecture_rows, lecture_table, readable_message,
                               run_label, run_name, run_summary)
from appstate.figures import chart
from lmcore.viz.training import curves_figure, group_curves_figure

SHOWN_COLUMNS = ("run", "name", "tags", "architecture", "layers", "units", "parameters", "best valid ppl",
                 "valid bits/char", "valid bits/word", "test ppl", "optimizer", "lr", "final lr", "tokens/s",
                 "training time (s)", "status", "note")
SEED_VIEWS = {"std": "groups: mean ± std", "range": "groups: min–max", "runs": "single runs"}
# bound keys name a value in the URL and in the session, on every page: hence the page's prefix cmp_
MISSING = appstate.MISSING  # the n-gram has no layers; a run that blew up has no perplexity

st.title("Compare")
st.caption("Perplexity is 2 to the average surprisal in bits (e to the loss in nats): the number of words the model "
           "is, on average, as unsure between as a uniform guess. Lower is better; a uniform guess scores the "
           "vocabulary size.")
pick_tags, pick_archived, pick_mine = st.columns([4, 1.1, 0.9], vertical_alignment="bottom")
archived = pick_archived.checkbox("Show archived", key="cmp_archived", bind="query-params",
                                  help="runs archived on the Train page (or with python -m lmcore archive)")
only_mine = pick_mine.checkbox("Only mine", key="cmp_mine", bind="query-params",
                               help="the runs you made; untick to compare yours with the class's")
runs = training.evaluated_runs(archived)
runs = identity.only_mine(runs) if only_mine else runs
if not runs and only_mine:
    st.info("None of your runs has been evaluated yet: untick Only mine to see the class's.")
    st.stop()
if not runs:
    st.info("Every evaluated run is archived: tick Show archived." if not archived and training.evaluated_runs(True)
            else "No trained runs yet. Train some on the Train page; they appear here as soon as they are evaluated.")
    st.page_link("views/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()
tags = pick_tags.multiselect("Tags", training.all_tags(runs), key="cmp_tags", bind="query-params",
                             placeholder="every run", help="only the runs with any of these tags (given on the Train "
                                                           "page or with python -m lmcore tag)")
runs = training.tagged(runs, tags)
if not runs:
    st.info("No run here has these tags.")
    st.stop()

corpora = sorted({r.corpus_source for r in runs})
linked = appstate.selected_run_ids("compare")  # a link from Sweeps or Train names runs: open on their corpus
current = next((r.corpus_source for r in runs if r.id in linked), None) or appstate.corpus_spec().source
left, right = st.columns(2)
corpus = left.selectbox("Corpus", corpora, index=corpora.index(current) if current in corpora else 0,
                        format_func=corpus_name, key="cmp_corpus", bind="query-params",
                        help="Runs on different corpora (or vocabularies) cannot be compared by perplexity.")
runs = [r for r in runs if r.corpus_source == corpus]
order = right.select_slider("n-gram baseline order", options=[1, 2, 3, 4, 5], value=3, key="cmp_order",
                            bind="query-params",
                            help="The Kneser–Ney model reads the last n − 1 words only (the Markov assumption); "
                                 "3 is the classic trigram.")
table, baseline, metrics = training.comparison(runs, order)
for run in runs:
    if run.status == "diverged":
        st.warning(f"#{run.id} {appstate.md(run_name(run))} diverged: {appstate.md(readable_message(run.message))}")
Col = st.column_config
# widths in pixels so the table fits the page at 1440 px; the CSV keeps every column (device, corpus too)
st.dataframe(table, hide_index=True, width="stretch", placeholder=MISSING, column_order=SHOWN_COLUMNS,
             column_config={"run": Col.NumberColumn(format="%d", width=42),
                            "name": Col.TextColumn(width=120),
                            "tags": Col.TextColumn(width=90),
                            "architecture": Col.TextColumn(width=125),
                            "layers": Col.NumberColumn(width=50),
                            "units": Col.NumberColumn(width=50),
                            "parameters": Col.NumberColumn(format="localized", width=80),
                            "best valid ppl": Col.NumberColumn(
                                "valid ppl", format="%.2f", width=72,
                                help="best validation perplexity: the lowest at an evaluation (that checkpoint is "
                                     "kept as best.pt)"),
                            "valid bits/char": Col.NumberColumn(
                                "bits/char", format="%.3f", width=66,
                                help="the validation perplexity as bits per character of the validation text: "
                                     "comparable between a char-level and a word-level run of one corpus"),
                            "valid bits/word": Col.NumberColumn(
                                "bits/word", format="%.2f", width=66,
                                help="the same per whitespace-separated word of the validation text"),
                            "test ppl": Col.NumberColumn(
                                format="%.2f", width=68,
                                help="of the best checkpoint, on the test split, measured once"),
                            "optimizer": Col.TextColumn(width=72),
                            "lr": Col.NumberColumn(format="%.4g", width=50, help="learning rate at the start"),
                            "final lr": Col.NumberColumn(
                                format="%.4g", width=60, help="at the latest evaluation: ÷ lr-decay at each epoch end "
                                                              "no better than the best earlier one"),
                            "tokens/s": Col.NumberColumn(format="compact", width=68,
                                                         help="training speed over the run, on the cores it had: a run "
                                                              "gets the idle ones while fewer runs train than slots"),
                            "training time (s)": Col.NumberColumn("time (s)", format="%.0f", width=60),
                            "status": Col.TextColumn(width=80),
                            "note": Col.TextColumn(width=160)})
download, owners = st.columns([1, 3], vertical_alignment="center")
with_owners = identity.current_person().instructor and owners.checkbox(
    "Include owners (display names)", key="cmp_owners", help="a column of who made each run, in both CSV files; "
                                                            "students' downloads never have it")
download.download_button("Download table (CSV)", identity.with_owners(table, runs, with_owners).to_csv(index=False)
                         .encode(), "comparison.csv", "text/csv")
if training.tokenizers_differ(runs):
    st.warning("These runs read the text as different tokens (characters, words): a perplexity is per token, so "
               "theirs are per different units and cannot be compared. Compare them by bits per character (or per "
               "word) of the same validation text. A word-level run's <unk> hides the rare words it never spells.")

groups, group_table = training.seed_summary(runs, table, "std")
seed_view = "runs"
if any(g.size > 1 for g in groups):
    st.subheader("Seeds as groups")
    seed_view = st.radio("Runs that differ only by their seed", list(SEED_VIEWS), format_func=SEED_VIEWS.get,
                         horizontal=True, key="cmp_seeds", bind="query-params",
                         help="At these sizes the seed moves perplexity by as much as the model does: a group's "
                              "mean and spread is the comparison a lucky seed cannot fake.")
    if seed_view == "range":
        groups, group_table = training.seed_summary(runs, table, "range")
    st.dataframe(group_table, hide_index=True, width="stretch", placeholder=MISSING,
                 column_config={"parameters": Col.NumberColumn(format="localized")})
    st.caption("Against the best group: *within seed noise* when the two means are closer than the larger of the "
               "two standard deviations over seeds (a reseeding could swap them); *apart* when further.")

labels = {r.id: run_label(r) for r in runs}
trained_here = [r.id for r in runs if not r.sweep_id]  # a sweep's runs have their own page
default = appstate.selected_run_ids("compare") or (trained_here or list(labels))[-4:]
ticked = st.multiselect("Runs to plot", list(labels), default=[i for i in default if i in labels],
                        format_func=labels.get, help="Each run keeps its colour on every page.")
appstate.set_selected_run_ids(ticked, "compare")
c1, c2, c3 = st.columns([1, 1, 2])
x = c1.radio("Against", ["epoch", "wall_time", "step"], horizontal=True, key="cmp_x", bind="query-params",
             format_func={"epoch": "epoch", "wall_time": "wall time", "step": "step"}.get,
             help="wall time compares speed: a cheaper model may reach the same perplexity sooner")
y = c2.radio("Plot", ["valid_ppl", "lr"], horizontal=True, key="cmp_y", bind="query-params",
             format_func={"valid_ppl": "perplexity", "lr": "learning rate"}.get,
             help="validation perplexity, or the learning rate the schedule divided along the way")
options = appstate.curve_controls("cmp_", container=c3)
baselines = {f"KN {order}-gram (valid)": float(b) for b in baseline["best valid ppl"][:1]} \
    if len(baseline) and y == "valid_ppl" else {}
summaries = {r.id: run_summary(r) for r in runs if r.id in ticked}
if seed_view == "runs":
    chart(curves_figure(metrics[metrics["run_id"].isin(ticked)], {i: labels[i] for i in ticked}, x, y,
                        baselines, configs=summaries, **options), "compare-curves", width="stretch")
else:  # each group of a ticked run: its seeds' mean, the band their spread
    shown = [g for g in groups if set(g.run_ids) & set(ticked)]
    curves, keys = training.grouped_curves(metrics, shown, x, y)
    chart(group_curves_figure(curves, keys, x, y, seed_view, baselines, options.get("log_y", True)),
          "compare-group-curves",
          width="stretch")
st.caption("Hover a curve for the run's whole configuration; click a legend entry to hide it. Points far above the "
           "rest (a run that blew up) are left out of the y range, and the figure says how many.")

st.subheader("The lecture's perplexity table, on your corpus")
st.caption("The lecture shows the table of Le et al. (2015), whose models were trained on a corpus of about a "
           "billion words; the same layout here is built from your runs on this corpus, best first. Perplexities "
           "of different corpora and vocabularies are not comparable with each other.")
ours, theirs = st.columns([3, 2])
lecture = lecture_table(runs, baseline if len(baseline) else None)
if seed_view != "runs":
    lecture = lecture_rows(lecture, groups)
ours.dataframe(lecture, hide_index=True, width="stretch", placeholder=MISSING,
               column_order=[c for c in lecture.columns if c != "run"],
               column_config={"parameters": st.column_config.NumberColumn(format="localized")})
ours.download_button("Download (CSV)", identity.with_owners(lecture, runs, with_owners).to_csv(index=False).encode(),
                     "lecture_table.csv", "text/csv",
                     key="lecture_csv")
theirs.caption("Le et al. (2015), as in the lecture")
theirs.dataframe(LE_2015, hide_index=True, placeholder=appstate.MISSING, width="stretch")

if best_runs(runs):
    st.subheader("Look inside")
    training.look_inside(runs)
