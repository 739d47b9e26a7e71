"""Word representations: each word's vector projected to 2-D with PCA, and its nearest neighbours by cosine."""
import re

import streamlit as st

import appstate
from lmcore.inspect.embeddings import MATRICES, embedding_matrix, find_word, most_frequent_ids, neighbour_table, pca
from lmcore.viz.embeddings import pca_figure

st.title("Word representations")
st.caption("Every word has a vector: its input embedding x (the row of encoder.weight that V then multiplies) "
           "and its row of the output matrix W. Words used alike end up near each other.")
ref = appstate.pick_run("Model", key="run")
if ref is None:
    st.stop()
model, cfg, vocab, _ = appstate.load_run(ref)
appstate.show_equations(cfg)

which = st.radio("Vectors", list(MATRICES), format_func=MATRICES.get, horizontal=True, key="emb_which")
if cfg.model.tied:
    st.caption("This run ties its weights: W is the input embedding matrix, so both choices show the same vectors.")
matrix = embedding_matrix(model, which)  # (V, d)
n = st.slider("Label the N most frequent words (training split)", 1, min(300, len(vocab) - 2), min(60, len(vocab) - 2))
proj = pca(matrix, 2)
st.plotly_chart(pca_figure(proj.coords, vocab.itos, most_frequent_ids(vocab, n), proj.explained), width="stretch")
st.caption(f"PCA of all {len(vocab):,} centred {matrix.shape[1]}-dimensional vectors (SVD): the two directions keep "
           f"{proj.explained.sum():.1%} of the variance ({proj.explained[0]:.1%} + {proj.explained[1]:.1%}); "
           "the rest of the map is flattened away, so also check the neighbours below.")

st.subheader("Nearest neighbours")
c1, c2 = st.columns([2, 1])
word = c1.text_input("A word", vocab.itos[min(2, len(vocab) - 1)], key="emb_word", max_chars=200)
sizes = [s for s in (100, 300, 1000, 3000, 10000) if s < len(vocab)] + [len(vocab)]
among = c2.select_slider("Among the most frequent", sizes, value=sizes[-1], key="emb_among",
                         help="rare words are barely trained and crowd the list; leave them out")
if word:
    wid, close = find_word(vocab, word, cfg.corpus.lowercase)
    if wid is None:
        plain = lambda s: re.sub(r"([\\`*_{}\[\]()#+\-.!<>|~$])", r"\\\1", s)  # markdown shows it as typed
        st.warning(f"“{plain(word)}” is not in this run's vocabulary ({len(vocab):,} tokens from the training split)."
                   + (f" Close ones: {', '.join(map(plain, close))}." if close else ""),
                   icon=":material/search_off:")
    else:
        st.dataframe(neighbour_table(matrix, vocab, wid, 10, among), hide_index=True,
                     column_config={"cosine similarity": st.column_config.NumberColumn(format="%.3f")})
