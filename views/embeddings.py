"""Word representations: the most frequent words' vectors on a 2-D map (t-SNE or PCA), and nearest neighbours by cosine."""
import streamlit as st

import appstate
from appstate import models
from appstate.inspection import METHODS, NEIGHBOURS, cached_word_map, embedding_matrix, find_word, neighbour_table
from appstate.figures import chart
from lmcore.viz.embeddings import word_map_figure

st.title("Word representations")
st.caption("Every word has a vector: its input embedding x (the row of encoder.weight that V then multiplies) "
           "and its row of the output matrix W. Words used alike end up near each other.")
run = models.open_run("Model")
if run is None:
    st.stop()
ref, model, cfg, vocab = run.ref, run.model, run.cfg, run.vocab

words_max = min(2000, len(vocab) - 2)  # <unk> and <eos> are left out
c1, c2, c3, c4, c5 = st.columns([3, 2, 3, 3, 2])
vectors = {"input": "x: rows of encoder.weight", "output": "W: rows of decoder.weight"}
if cfg.model.output == "adaptive":  # rare words are read through smaller projections: no one row of W per word
    vectors.pop("output")
which = c1.radio("Vectors", list(vectors), horizontal=True, key="vectors", bind="query-params",
                 captions=list(vectors.values()))
method = c2.radio("Map", list(METHODS), horizontal=True, key="method", bind="query-params",
                  help="  \n".join(f"**{m}** {text}." for m, text in METHODS.items()))
n = c3.slider("Most frequent words", min(20, max(words_max - 1, 1)), words_max, min(300, words_max),
              step=10 if words_max > 100 else 1, key="words", bind="query-params",
              help="Rare words are barely trained, so their vectors are mostly their random start. t-SNE takes "
                   "about 1 s per 200 words on 2 cores.")
perplexity = c4.slider("Perplexity", 5, 100, 30, key="perplexity", bind="query-params", disabled=method == "PCA",
                       help="t-SNE only: roughly how many neighbours each word attends to. Small values show tight "
                            "local groups, large ones more of the overall layout; 5 to 50 is usual.")
score_box = c5.empty()
if cfg.model.output == "adaptive":
    st.caption("This run's output layer is an adaptive softmax: rare words are read through smaller projections of "
               "h, so there is no one output vector per word; the map shows input vectors.")
if cfg.model.tied:
    st.caption("This run ties its weights: W is the input embedding matrix, so both choices show the same vectors.")
if cfg.model.direct and cfg.model.output != "adaptive":
    st.caption("This feedforward run has direct connections: decoder.weight is [W D], each row W's "
               f"{cfg.model.hidden} numbers then D's {(cfg.model.window - 1) * cfg.model.emb}. Output vectors here "
               "are W's rows alone, the part that reads h, as for every other model.")
map_area = st.container()  # drawn after the word below, which it marks in red

st.subheader("Nearest neighbours")
left, right = st.columns([1, 2])
word = left.text_input("A word", vocab.itos[min(2, len(vocab) - 1)], key="word", max_chars=200, bind="query-params",
                       help="Its nearest words by cosine similarity in the full space; red on the map above.")
sizes = [s for s in (100, 300, 1000, 3000, 10000) if s < len(vocab)] + [len(vocab)]
among = left.select_slider("Among the most frequent", sizes, value=300 if 300 in sizes else sizes[-1], key="among",
                           bind="query-params", help="Rare words are barely trained and crowd the list; leave them out.") \
    if len(sizes) > 1 else sizes[0]  # a vocabulary under 100 words: all of it
matrix = embedding_matrix(model, which)  # (V, d)
wid, close = find_word(vocab, word, cfg.corpus.lowercase) if word else (None, [])
if wid is None and word:
    right.warning(f"“{appstate.md(word)}” is not in this run's vocabulary ({len(vocab):,} tokens from the training "
                  "split)." + (f" Close ones: {', '.join(map(appstate.md, close))}." if close else ""),
                  icon=":material/search_off:")
table = neighbour_table(matrix, vocab, wid, NEIGHBOURS, among) if wid is not None else None
if table is not None:
    right.dataframe(table, hide_index=True, placeholder=appstate.MISSING, column_config={"cosine similarity": st.column_config.NumberColumn(format="%.3f")})

with map_area:
    wmap = cached_word_map(ref, which, method, n, perplexity)
    on_map = {int(i): j for j, i in enumerate(wmap.ids)}  # vocabulary id -> place on the map
    marked = [wid] + [vocab.stoi[w] for w in table["word"]] if table is not None else []
    highlight = [on_map[i] for i in marked if i in on_map]
    pcs = [f"PC{j + 1} ({e:.1%} of these words' variance)" for j, e in enumerate(wmap.explained)] \
        if method == "PCA" else ["", ""]
    chart(word_map_figure(wmap.coords, vocab.decode(wmap.ids), wmap.kept, highlight, tuple(pcs),
                          ticks=method == "PCA"), "embeddings-word-map", width="stretch")
    if method == "PCA":
        st.caption(f"PCA of the {len(wmap.ids):,} most frequent words' centred {matrix.shape[1]}-dimensional vectors: "
                   f"the two directions keep {wmap.explained.sum():.1%} of their variance; the rest is flattened "
                   "away. Try t-SNE, which keeps neighbours instead of variance.")
    else:
        capped = f" (the {perplexity} asked for is capped at a third of the words mapped)" \
            if wmap.perplexity < perplexity else ""
        st.caption(f"t-SNE (scikit-learn, cosine distance, perplexity {wmap.perplexity:g}{capped}, seed 0) of the "
                   f"{len(wmap.ids):,} most frequent words: nearby points are words with similar vectors; distances "
                   "between groups and the axes mean little. Only labels that fit are drawn; hover for the rest."
                   + (f" Red: “{appstate.md(word)}” and its nearest words below." if highlight else ""))

pca_score = wmap.score if method == "PCA" else cached_word_map(ref, which, "PCA", n, perplexity).score
score_box.metric("Neighbours kept", f"{wmap.score:.0%}",
                 delta=f"{wmap.score - pca_score:+.0%} vs PCA" if method != "PCA" else None,
                 help=f"Of each word's {NEIGHBOURS} nearest words by cosine in the full {matrix.shape[1]}-dimensional "
                      f"space (among these {len(wmap.ids):,}), the share that are also among its {NEIGHBOURS} nearest "
                      f"on the map. 100%: every neighbourhood kept; a random map keeps about "
                      f"{NEIGHBOURS / max(len(wmap.ids) - 1, 1):.0%}.")
st.page_link("views/next_word.py", label="Next: what this model predicts after a text", icon=":material/keyboard_tab:",
             query_params={"run": ref.key})
