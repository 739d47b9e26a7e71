"""Corpus: choose a built-in corpus or upload a .txt file; tokenizer and vocabulary; stats and Zipf plot."""
import html
import math

import streamlit as st

import appstate
from appstate.corpus import (BIG_CORPUS_HINT, BUILTIN_CORPORA, BUILTIN_PREFIX, TOKENIZERS, CorpusError, CorpusSpec,
                             corpus_stats_table, detokenize, kept_uploads, preview_tokens, save_upload, set_corpus_spec,
                             upload_label, without_server_path)
from lmcore.viz.training import zipf_spec

st.title("Corpus")
st.caption("Every run trains on one corpus. The text is split 80/10/10 into train/valid/test by contiguous lines; "
           "the vocabulary comes from the training split only, and rarer or unseen words become <unk>.")
current = appstate.corpus_spec()

BUILTIN, UPLOAD, KEPT = "built-in corpus", "upload a .txt file", "a file uploaded before"
kept = [str(p) for p in kept_uploads()]
kinds = [BUILTIN, UPLOAD] + ([KEPT] if kept else [])
# the kind the user chose stays chosen: derived from the corpus alone, an upload turned it into "a file uploaded
# before" at once, which took the uploader (and a second file dropped into it) off the page
KIND = "corpus_text_kind"
chosen_kind = st.session_state.get(KIND) if st.session_state.get(KIND) in kinds else \
    BUILTIN if current.source.startswith(BUILTIN_PREFIX) else KEPT if current.source in kept else UPLOAD
kind = st.radio("Text", kinds, horizontal=True, index=kinds.index(chosen_kind),
                help="Uploads are kept in the data folder, so a reload, a new tab or a link finds them again.")
st.session_state[KIND] = kind
source = current.source
if kind == BUILTIN:
    names = list(BUILTIN_CORPORA)
    name = current.source[len(BUILTIN_PREFIX):] if current.source.startswith(BUILTIN_PREFIX) else names[0]
    name = st.selectbox("Built-in corpus", names, index=names.index(name) if name in names else 0,
                        format_func=lambda n: f"{n}: {BUILTIN_CORPORA[n]}")
    source = BUILTIN_PREFIX + name
elif kind == KEPT:
    source = st.selectbox("Uploaded before (newest first)", kept, index=kept.index(source) if source in kept else 0,
                          format_func=upload_label)
else:
    cap_mb = appstate.limits().max_upload_mb
    upload = st.file_uploader("A UTF-8 text file (one sentence or paragraph per line works best)", type=["txt"],
                              max_upload_size=max(1, math.ceil(cap_mb)),
                              help=f"Plain text in UTF-8 (UTF-16 with a byte-order mark works too), at most "
                                   f"{cap_mb:g} MB, with line breaks between sentences or paragraphs. "
                                   + BIG_CORPUS_HINT + ".")
    st.caption(f"Files over {cap_mb:g} MB: {BIG_CORPUS_HINT}.")  # our own text: no escaping
    if upload is not None:
        try:
            source = str(save_upload(upload.name, upload.getvalue()))
        except CorpusError as err:
            st.error(appstate.md(err))
            st.stop()
    elif current.source.startswith(BUILTIN_PREFIX):
        st.info("Choose a file to upload; the built-in corpus stays selected until then.")
    else:
        st.info(f"Choose a file to upload; {appstate.md(upload_label(current.source))} stays selected until then.")

c1, c2, c3, c4 = st.columns(4)
tokenizer = c1.selectbox("Tokenizer", list(TOKENIZERS), index=list(TOKENIZERS).index(current.tokenizer),
                         help="; ".join(f"{k}: {v}" for k, v in TOKENIZERS.items()))
lowercase = c2.checkbox("Lowercase", value=current.lowercase,
                        help="'The' and 'the' become one word: a smaller vocabulary, more examples of each")
min_count = c3.number_input("Min count", min_value=1, max_value=1000, value=current.min_count,
                            help="words seen fewer times in the training split become <unk>")
max_vocab = c4.number_input("Max vocabulary (0: no limit)", min_value=0, max_value=200_000,
                            value=current.max_vocab or 0, step=1000,
                            help="keep only the most frequent words; the softmax over V words costs most of the time "
                                 "of a word-level model")
spec = CorpusSpec(source=source, tokenizer=tokenizer, lowercase=lowercase, min_count=int(min_count),
                  max_vocab=int(max_vocab) or None)
if spec != current:
    set_corpus_spec(spec)

try:
    with st.spinner("Reading and tokenizing…"):
        corpus = appstate.cached_corpus(spec)
except CorpusError as err:
    st.error(appstate.md(without_server_path(err, spec)))
    st.stop()

st.subheader(appstate.md(appstate.corpus_label(spec)))
for note in corpus.notes:
    st.info(appstate.md(without_server_path(note, spec)))
stats = corpus.stats()
m1, m2, m3, m4 = st.columns(4)
m1.metric("Training tokens", f"{stats['train_tokens']:,}")
m2.metric("Vocabulary", f"{stats['vocab']:,}")
types = stats["train_types"]
m3.metric("Word types in training text", appstate.MISSING if types is None else f"{types:,}",
          help="Distinct tokens of the training split as read, before the rarer ones became <unk>: the vocabulary "
               "keeps those seen at least min count times (and at most max vocabulary).")
m4.metric("<unk> rate (valid)", f"{stats['valid_unk_rate']:.2%}")
left, right = st.columns([2, 3])
left.table(corpus_stats_table(corpus), hide_index=True)  # plain HTML: paints before the grid's script loads
right.vega_lite_chart(zipf_spec(corpus.rank_frequency()), width="stretch")

st.subheader("Preview: the first training tokens")
tokens = preview_tokens(corpus, 300)
# st.html, not st.markdown: markdown would turn __debug__ into bold; every token is escaped.
def clip(token: str, n: int = 60) -> str:
    return token if len(token) <= n else token[:n] + "…"


st.html("<div style='line-height:2'>" + " ".join(f"<code>{html.escape(clip(t))}</code>" for t in tokens[:120])
        + "</div>")
st.text(detokenize([clip(t) for t in tokens], spec.tokenizer))
st.divider()
st.markdown("**Next:** train the lecture's three models (σ-RNN, LSTM, GRU) on this corpus side by side.")
st.page_link("views/train.py", label="Train models on this corpus →", icon=":material/model_training:",
             query_params=appstate.corpus_params(spec))
