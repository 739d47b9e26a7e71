"""Markov against memory: long-range agreement and how much context each model uses, beside the n-gram."""
import numpy as np
import pandas as pd
import streamlit as st

import appstate
from appstate import models
from appstate.corpus import CorpusError, cached_ngram
from appstate.inspection import (LECTURE_ITEMS, agreement_items, agreement_tables, context_curve, ngram_context_curve,
                                 parse_probe_tsv)
from appstate.figures import chart
from lmcore.viz.memory import accuracy_by_distance_wide, agreement_figure, context_figure

# bound keys name a value in the URL and in the session, on every page: hence the page's prefix mem_
MISSING = appstate.MISSING  # a distance a model has no sentence at; a perplexity that overflowed

st.title("Markov against memory")
st.caption("An n-gram model conditions on the last n − 1 words only (the Markov assumption); a recurrent network "
           "can, in principle, use everything it has read. These probes measure what each trained model really uses.")
refs = models.pick_runs("Runs to compare")
if not refs:
    st.info("Pick one or more runs (the demo runs on the agreement corpus are a good start).")
    st.stop()
runs = [models.load_run(ref) for ref in refs]
run_keys = {ref.label: ref.key for ref in refs}  # each run's colour, the same as on every other page
first_cfg = runs[0].cfg
order = st.select_slider("n-gram baseline order", [2, 3, 4, 5], value=3, key="mem_order", bind="query-params",
                         help="The Kneser–Ney baseline sees the last n − 1 words: at n = 3 the verb of a sentence "
                              "whose subject is 5 words back is guessed without it.")
try:  # fitted first, so that a corpus that cannot be read stops the page before the probes
    cached_ngram(first_cfg.corpus, order)
except CorpusError as err:
    st.error(appstate.md(err))
    st.stop()

st.header("Long-range agreement")
st.caption("At the verb of “the roses in the vase by the door are …”, is P(are) > P(is)? Accuracy against the "
           "number of words between subject and verb. The n-gram baseline is fitted on the corpus of the first run the "
           "probe applies to.")
default_tsv = "\n".join(f"{' '.join(it.prefix)}\t{it.correct}\t{it.wrong}\t{it.distance}" for it in LECTURE_ITEMS)
source = st.radio("Sentences", ["the agreement corpus (validation split)", "my own (prefix, correct, wrong, distance)"],
                  horizontal=True, key="mem_sentences", bind="query-params",
                  help="Each sentence is a prefix ending just before the verb, the verb that agrees with the subject, "
                       "the one that does not, and how many words stand between subject and verb.")
if source.startswith("my own"):
    typed = st.text_area("One per line, tab-separated: prefix, correct next word, wrong next word, words between "
                         "subject and verb", default_tsv, height=140, max_chars=50_000, key="mem_probes",
                         bind="query-params")
    try:
        items = parse_probe_tsv(typed)
    except ValueError as err:
        st.error(appstate.md(err))
        st.stop()
else:
    items = agreement_items("valid")
tables, unreadable = agreement_tables(runs, items, order)
# none of the picked runs reads the probe's words: the demo runs show what the probe finds, rather than nothing
demos = models.agreement_demos() if unreadable and not tables and not source.startswith("my own") else []
if unreadable:
    st.info(f"The agreement probe does not apply to {'; '.join(unreadable)}. Type sentences of your own corpus above ("
            "Sentences: my own), or pick runs trained on the agreement corpus in Runs to compare above: the demo "
            "runs (demo · … · agreement) or your own (Corpus: agreement, then Train)."
            + (" Below, meanwhile: the demo runs, trained on the agreement corpus and shipped with the app." if demos
               else ""))
if demos:
    tables, _ = agreement_tables([models.load_run(ref) for ref in demos], items, order)
if tables:
    table = pd.concat(tables, ignore_index=True)
    chart(agreement_figure(table, {ref.label: ref.key for ref in demos} if demos else run_keys), "memory-agreement",
          width="stretch")
    st.dataframe(accuracy_by_distance_wide(table).round(3), hide_index=True, width="stretch", placeholder=MISSING)

st.header("How much context is used")
st.caption("Khandelwal et al. (2018): validation perplexity when the model may read only the last k tokens before "
           "each prediction, all k scored on the same targets. Where the curve flattens, more context stops helping: "
           "a feedforward model (FFNN n=5) is flat from k = n − 1 = 4 on, since it never reads further back.")
c1, c2 = st.columns(2)
max_targets = c1.select_slider("Validation targets", [2000, 5000, 10000, 20000], value=5000, key="mem_targets",
                               bind="query-params",
                               help="How many predictions of the validation text are scored at each k: more is "
                                    "steadier and slower (each costs up to 200 steps of the model).")
log_y = c2.radio("y axis", ["log", "linear"], horizontal=True, key="mem_scale", bind="query-params",
                 help="log: one model that is lost at k = 1 does not flatten the others") == "log"
# measured once per checkpoint; the URL remembers that it was asked for, so a link shows the curves again
if st.button("Measure context use", type="primary",
             help="Reads the validation text once per run with k = 1…200 tokens of context: seconds to a minute"):
    st.query_params["mem_context"] = "1"
if st.query_params.get("mem_context") == "1":
    curves = {}
    for i, ref in enumerate(refs):
        with st.spinner(f"{appstate.md(ref.label)}: perplexity with 1 to 200 tokens of context "
                        f"({i + 1} of {len(refs)})…"):  # a spinner's text is markdown too
            curves[ref.label] = context_curve(ref, max_targets)
    baseline = ngram_context_curve(first_cfg.corpus, order, max_targets)
    chart(context_figure(curves, baseline, f"Kneser–Ney {order}-gram", log_y=log_y, run_keys=run_keys),
          "memory-context",
          width="stretch")
    ppl = pd.concat([df.assign(run=name) for name, df in curves.items()]).pivot_table(
        index="context", columns="run", values="ppl", sort=False).reset_index()
    st.dataframe(ppl.replace([np.inf, -np.inf], np.nan).round(1), hide_index=True, placeholder=MISSING)
    st.caption(f"Every k, \"all\" and the n-gram scored on the same validation targets (up to {max_targets:,}), "
               "from the 201st token on (each needs 200 before it): not the whole split, so \"all\" differs a little "
               "from the validation perplexity on Compare.")
