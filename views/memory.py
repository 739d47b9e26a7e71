"""Markov against memory: long-range agreement and how much context each model uses, beside the n-gram."""
import pandas as pd
import streamlit as st

import appstate
from lmcore.corpus.reading import CorpusError
from lmcore.inspect.memory import (LECTURE_ITEMS, accuracy_by_distance, agreement_items, context_perplexity,
                                   lm_margins, ngram_context_perplexity, ngram_margins, parse_probe_tsv,
                                   probe_applies, readable)
from lmcore.viz.memory import agreement_figure, context_figure


st.title("Markov against memory")
st.caption("An n-gram model conditions on the last n − 1 words only (the Markov assumption); a recurrent network "
           "can, in principle, use everything it has read. These probes measure what each trained model really uses.")
refs = appstate.pick_runs("Runs to compare")
if not refs:
    st.info("Pick one or more runs (the demo runs on the agreement corpus are a good start).")
    st.stop()
loaded = {ref.label: appstate.load_run(ref) for ref in refs}
first_cfg = next(iter(loaded.values()))[1]
order = st.select_slider("n-gram baseline order", [2, 3, 4, 5], value=3)
try:
    ngram = appstate.cached_ngram(first_cfg.corpus, order)
except CorpusError as err:
    st.error(appstate.md(err))
    st.stop()

st.header("Long-range agreement")
st.caption("At the verb of “the roses in the vase by the door are …”, is P(are) > P(is)? Accuracy against the "
           "number of words between subject and verb. The n-gram baseline is fitted on the corpus of the first run the "
           "probe applies to.")
default_tsv = "\n".join(f"{' '.join(it.prefix)}\t{it.correct}\t{it.wrong}\t{it.distance}" for it in LECTURE_ITEMS)
source = st.radio("Sentences", ["the agreement corpus (validation split)", "my own (prefix, correct, wrong, distance)"],
                  horizontal=True)
if source.startswith("my own"):
    typed = st.text_area("One per line, tab-separated: prefix, correct next word, wrong next word, words between "
                         "subject and verb", default_tsv, height=140, max_chars=50_000)
    try:
        items = parse_probe_tsv(typed)
    except ValueError as err:
        st.error(appstate.md(err))
        st.stop()
else:
    items = agreement_items("valid")
tables, ngram_cfg = [], None
demo = appstate.run_by_key("demo:agreement-lstm")
agreement_demo = f"the demo run “{demo.label}”" if demo else "a demo run on the agreement corpus"
for label, (model, cfg, vocab, _) in loaded.items():
    if not probe_applies(items, vocab):  # e.g. a python-docs run knows "is" and "are" but not "roses"
        st.info(f"{appstate.md(label)}: the agreement probe does not apply, since only "
                f"{len(readable(items, vocab)):,} of {len(items):,} probe sentences have every word in this run's "
                f"vocabulary; pick a run trained on the agreement corpus, e.g. {appstate.md(agreement_demo)}.")
        continue
    kept = readable(items, vocab)
    tables.append(accuracy_by_distance(kept, lm_margins(model, vocab, kept), label))
    ngram_cfg = ngram_cfg or cfg  # the baseline on the first run the probe applies to
if ngram_cfg is not None:
    kn = ngram if ngram_cfg.corpus == first_cfg.corpus else appstate.cached_ngram(ngram_cfg.corpus, order)
    kn_vocab = appstate.cached_corpus(ngram_cfg.corpus).vocab
    kept = readable(items, kn_vocab)
    tables.append(accuracy_by_distance(kept, ngram_margins(kn, kn_vocab, kept), f"Kneser–Ney {order}-gram"))
if tables:
    table = pd.concat(tables, ignore_index=True)
    st.plotly_chart(agreement_figure(table), width="stretch")
    wide = table.pivot_table(index="distance", columns="model", values="accuracy").reset_index()
    st.dataframe(wide, hide_index=True, width="stretch")

st.header("How much context is used")
st.caption("Khandelwal et al. (2018): validation perplexity when the model may read only the last k tokens before "
           "each prediction, all k scored on the same targets. Where the curve flattens, more context stops helping.")
max_targets = st.select_slider("Validation targets", [2000, 5000, 10000, 20000], value=5000)
if st.button("Measure context use", type="primary"):
    curves = {}
    bar = st.progress(0.0, text="starting")
    for i, (label, (model, cfg, vocab, _)) in enumerate(loaded.items()):
        corpus = appstate.cached_corpus(cfg.corpus)
        ids = vocab.encode(corpus.vocab.decode(corpus.valid))
        def report(fraction, what, i=i, label=label):
            bar.progress((i + fraction) / len(loaded), text=f"{label}: {what}")
        curves[label] = context_perplexity(model, ids, max_targets=max_targets, progress=report)
    bar.empty()
    corpus = appstate.cached_corpus(first_cfg.corpus)
    baseline = ngram_context_perplexity(ngram, corpus.valid, max_targets=max_targets)
    st.session_state["context_curves"] = (curves, baseline, order)
if "context_curves" in st.session_state:
    curves, baseline, shown_order = st.session_state["context_curves"]
    st.plotly_chart(context_figure(curves, baseline, f"Kneser–Ney {shown_order}-gram"), width="stretch")
    st.dataframe(pd.concat([df.assign(run=name) for name, df in curves.items()]).pivot_table(
        index="context", columns="run", values="ppl", sort=False).reset_index(), hide_index=True)
