"""Compare: every run's perplexity, parameters and speed beside the Kneser–Ney baseline; curves; CSV."""
import pandas as pd
import streamlit as st

import appstate
from lmcore.config import RunConfig
from lmcore.corpus.reading import CorpusError
from lmcore.reports import LE_2015, baseline_rows, compare_table, lecture_table, metrics_frame
from lmcore.viz.training import curves_figure

st.title("Compare")
store = appstate.get_store()
runs = [r for r in store.list_runs() if r["best_valid_ppl"] is not None]
if not runs:
    st.info("No trained runs yet. Train some on the Train page; they appear here as soon as they are evaluated.")
    st.page_link("views/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

corpora = sorted({r["corpus_source"] for r in runs})
current = appstate.corpus_spec().source
corpus = st.selectbox("Corpus", corpora, index=corpora.index(current) if current in corpora else 0,
                      format_func=lambda s: s.rsplit("/", 1)[-1])
runs = [r for r in runs if r["corpus_source"] == corpus]
order = st.select_slider("n-gram baseline order", options=[1, 2, 3, 4, 5], value=3)
try:
    with st.spinner("Fitting the Kneser–Ney baseline (once per corpus)…"):
        baseline = baseline_rows(store, runs, order)
except CorpusError as err:
    st.warning(f"No n-gram baseline: {appstate.md(err)}")
    baseline = pd.DataFrame()
metrics = metrics_frame(store, [r["id"] for r in runs])
ours = compare_table(runs, metrics)
table = pd.concat([ours, baseline], ignore_index=True) if len(baseline) else ours
for run in runs:
    if run["status"] == "diverged":
        st.warning(f"#{run['id']} {appstate.md(RunConfig.from_dict(run['config']).label())} diverged: "
                   f"{appstate.md(run['message'])}")
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"best valid ppl": st.column_config.NumberColumn(format="%.2f"),
                            "test ppl": st.column_config.NumberColumn(format="%.2f"),
                            "tokens/s": st.column_config.NumberColumn(format="%.0f"),
                            "lr": st.column_config.NumberColumn(format="%.4g", help="learning rate at the start"),
                            "final lr": st.column_config.NumberColumn(
                                format="%.4g", help="at the latest evaluation: ÷ lr-decay at each epoch end no "
                                                    "better than the best earlier one"),
                            "parameters": st.column_config.NumberColumn(format="%d")})
st.download_button("Download table (CSV)", table.to_csv(index=False).encode(), "comparison.csv", "text/csv")

labels = {r["id"]: f"#{r['id']} {RunConfig.from_dict(r['config']).label()}" for r in runs}
default = appstate.selected_run_ids("compare") or list(labels)[-4:]
ticked = st.multiselect("Runs to plot", list(labels), default=[i for i in default if i in labels],
                        format_func=labels.get)
appstate.set_selected_run_ids(ticked, "compare")
c1, c2 = st.columns(2)
x = c1.radio("Against", ["epoch", "wall_time", "step"], horizontal=True,
             format_func={"epoch": "epoch", "wall_time": "wall time", "step": "step"}.get)
y = c2.radio("Plot", ["valid_ppl", "lr"], horizontal=True,
             format_func={"valid_ppl": "validation perplexity", "lr": "learning rate"}.get)
baselines = {f"KN {order}-gram (valid)": float(b) for b in baseline["best valid ppl"][:1]} \
    if len(baseline) and y == "valid_ppl" else {}
st.plotly_chart(curves_figure(metrics[metrics["run_id"].isin(ticked)], {i: labels[i] for i in ticked}, x, y,
                              baselines), width="stretch")

st.subheader("The lecture's perplexity table, on your corpus")
st.caption("The lecture shows the table of Le et al. (2015), whose models were trained on a corpus of about a "
           "billion words; the same layout here is built from your runs on this corpus, best first. Perplexities "
           "of different corpora and vocabularies are not comparable with each other.")
ours, theirs = st.columns([3, 2])
lecture = lecture_table(runs, baseline if len(baseline) else None)
ours.dataframe(lecture, hide_index=True, width="stretch")
ours.download_button("Download (CSV)", lecture.to_csv(index=False).encode(), "lecture_table.csv", "text/csv",
                     key="lecture_csv")
theirs.caption("Le et al. (2015), as in the lecture")
theirs.dataframe(LE_2015, hide_index=True, width="stretch")
