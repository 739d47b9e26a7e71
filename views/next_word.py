"""Next word: the text coloured by surprisal, the distribution over the next token at any position, sampling."""
import streamlit as st

import appstate
from appstate import models
from appstate.corpus import example_text
from appstate.inspection import next_token_ranks, prompt_tokens, sample_pieces, surprisal_table
from appstate.figures import chart
from lmcore.viz.next_word import context, sample_html, surprisal_html, topk_figure

TOP_K = 10

st.title("Next word")
st.caption("At every position the model outputs y_t = softmax(W h_t + b₂): a probability for every word of the "
           "vocabulary. Surprisal, −log₂ P(actual next token), is how many bits that token cost the model.")
run = models.open_run("Model", text_key="nw", too_short="Type at least two tokens to see predictions.")
if run is None:
    st.stop()
ref, model, cfg, vocab, tokens = run.ref, run.model, run.cfg, run.vocab, run.tokens
if cfg.model.output == "adaptive":
    st.caption("This run's y_t comes from an adaptive softmax (see the Equations): the head's probability of a word, "
               "or of its cluster times the word's within the cluster; still a probability for every word.")
tr = models.run_trace(ref, tokens, top_k=TOP_K)
ranks = next_token_ranks(model, tr.ids)

if st.session_state.get("nw_t", 0) > len(tokens) - 1:  # a shorter text than the position kept (or linked)
    st.session_state["nw_t"] = len(tokens) - 1
t = st.slider("Position t: the model has read tokens 0…t", 0, len(tokens) - 1, min(3, len(tokens) - 1), key="nw_t",
              bind="query-params",
              help="Streamlit cannot click on text; pick a position by number. Its token has a solid box.")
st.html(surprisal_html(tokens, tr.surprisal, selected=t, unknown=tr.ids == vocab.unk_id, kind=cfg.corpus.tokenizer))

actual = tr.tokens[t + 1] if t + 1 < len(tokens) else None  # as the model read it (<unk> if unknown)
title = f"Top {TOP_K} next tokens after “{context(tokens, t, cfg.corpus.tokenizer)}” (t = {t})"
if actual is not None:
    title += f"\nactual next: “{context(tokens, t + 1, cfg.corpus.tokenizer, 1)}”"
    title += " (read as <unk>)" if tr.ids[t + 1] == vocab.unk_id else ""
left, right = st.columns([3, 2])
chart(topk_figure(vocab.decode(tr.top_ids[t]), tr.top_probs[t], actual, title), "next-word-topk", left, width="stretch")
m1, m2 = right.columns(2)
m1.metric("Total probability", f"{tr.prob_mass[t]:.3f}", help="Σ_v P(v | x_1..x_t) over the whole vocabulary")
m2.metric(f"Top-{TOP_K} probability", f"{tr.top_probs[t].sum():.3f}")
right.caption(f"Total: the sum over all {len(vocab):,} tokens of the vocabulary. Probabilities are non-negative "
              "and sum to one; the top ten hold only part of it.")
if actual is None:
    right.info("The last token: no actual next token to compare with.")
else:
    m3, m4 = right.columns(2)
    p_next = float(tr.next_prob[t])
    m3.metric("P(actual next token)", f"{p_next:.4f}" if p_next >= 1e-3 else f"{p_next:.1e}",
              help=f"surprisal {tr.surprisal[t]:.2f} bits")
    m4.metric(f"Its rank (of {len(vocab):,})", f"{ranks[t]:,}", help="1 = the model's first guess")
    right.caption("The actual next token's bar is dark blue when it is among the top ten.")

st.subheader("This text")
st.dataframe(surprisal_table(tokens, tr.surprisal, ranks), hide_index=True, placeholder=appstate.MISSING)
st.caption("From a zero hidden state at the first token, so it can differ from the run's validation perplexity.")

st.subheader("Sampling")
appstate.follow_default("nw_prompt", " ".join(example_text(cfg.corpus).split()[:3]), fill=True)
with st.form("sample"):
    prompt = st.text_input("Prompt", key="nw_prompt", bind="query-params", max_chars=2000,
                           help="The text the model reads before it writes; empty: start a new line")
    c1, c2, c3, c4 = st.columns(4)
    n = c1.number_input("Tokens", 1, 500, 40, key="nw_length", bind="query-params", help="how many tokens to write")
    temperature = c2.slider("Temperature", 0.1, 2.0, 1.0, 0.05, key="nw_temperature", bind="query-params",
                            help="divides the logits before the softmax; low: safe and repetitive, high: wild")
    top_k = c3.number_input("Top-k (0: all)", 0, len(vocab), 0, key="nw_top_k", bind="query-params",
                            help="sample only among the k most probable next tokens")
    seed = c4.number_input("Seed", 0, 2**31 - 1, 0, key="nw_seed", bind="query-params",
                           help="the same seed and settings write the same text")
    clicked = st.form_submit_button("Sample", type="primary")
context_tokens = prompt_tokens(prompt, cfg.corpus.tokenizer, cfg.corpus.lowercase)
models.unknown_caption(context_tokens, vocab)
out = st.empty()
if clicked:  # the URL remembers that a sample was asked for; the seed makes it the same sample again
    st.query_params["nw_sampled"] = "1"
if clicked or st.query_params.get("nw_sampled") == "1":
    pieces = sample_pieces(model, vocab, context_tokens, cfg.corpus.tokenizer, int(n), float(temperature), int(top_k),
                           int(seed))
    text = ""
    for piece in pieces:
        text += piece
        if clicked:  # the text appears as it is produced
            out.html(sample_html(prompt, text))
    out.html(sample_html(prompt, text))
