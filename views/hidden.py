"""Hidden states: the units × tokens heatmap of h (or c), text coloured by one unit, LSTMVis pattern search."""
import numpy as np
import streamlit as st

import appstate
from lmcore.inspect.hidden import (FEATURE_EXAMPLES, ORDERS, matches_table, order_units, regex_feature,
                                   search_pattern, select_units)
from lmcore.inspect.trace import GATE_NAMES
from lmcore.viz.hidden import WINDOW, coloured_text_html, heatmap_figure, window_bounds

st.title("Hidden states")
st.caption("Every column is a token of the text, every row a unit of the hidden state h_t = the model's memory "
           "after reading x_1 … x_t. Sort the units to find the ones that track something; colour the text by one "
           "of them (Karpathy et al. 2015); select a span to find where the same units switch on (Strobelt et al., "
           "LSTMVis).")
ref = appstate.pick_run("Run", key="run")
if ref is None:
    st.stop()
model, cfg, vocab, _ = appstate.load_run(ref)
tokens = appstate.pick_text(cfg, vocab, key="hidden_text")
if len(tokens) < 2:
    st.info("Type at least two tokens.")
    st.stop()
tr = appstate.run_trace(ref, tokens)  # tr.tokens may show <unk>; the page shows the words as given
sep = "" if cfg.corpus.tokenizer == "char" else " "

c1, c2, c3 = st.columns(3)
layer = c3.selectbox("Layer", range(len(tr.layers)), format_func=lambda i: f"layer {i + 1}") if len(tr.layers) > 1 else 0
name = c1.radio("Quantity", [n for n in ("h", "c") if n in tr.layers[layer]], format_func=GATE_NAMES.get,
                horizontal=True)
by = c2.selectbox("Sort units by", list(ORDERS), format_func=ORDERS.get)
values = tr.quantity(name, layer)  # (T, H)

feature = None
if by == "correlation":
    r1, r2 = st.columns([1, 2])
    example = r1.selectbox("Feature", list(FEATURE_EXAMPLES) + ["my own"])
    pattern = r2.text_input("Regular expression over the text (tokens joined by spaces, a line break at each "
                            "<eos>; with a group ( ), only the group marks tokens)",
                            FEATURE_EXAMPLES.get(example, r"\b(the)\b"), max_chars=200, key=f"regex_{example}")
    try:
        feature = regex_feature(tokens, pattern, sep)
    except ValueError as err:
        st.error(f"Feature: {appstate.md(err)}")
        st.stop()
    if feature.min() == feature.max():
        st.warning(f"The feature is {feature[0]} at every token, so no unit correlates with it: try another "
                   "pattern or a longer text.")
    st.caption(f"The feature marks {int(feature.sum())} of {len(feature)} tokens (green strip above the heatmap).")
order, scores = order_units(values, by, feature)

first = 0
if len(tokens) > WINDOW:
    first = st.slider("Window: first token shown", 0, len(tokens) - WINDOW, 0, step=10,
                      help=f"{WINDOW} tokens are drawn at once; slide to see every token of the text")
span_key = f"hidden_span_{len(tokens)}"  # a new text, a new slider range
st.plotly_chart(heatmap_figure(values, tokens, order, first, name=name, feature=feature,
                               scores=scores if by != "unit" else None,
                               score_name={"variance": "var", "mean": "mean", "correlation": "r"}.get(by, ""),
                               highlight=st.session_state.get(span_key)), width="stretch")

st.subheader("The text, coloured by one unit")
unit = st.selectbox("Unit (in the order above)", [int(u) for u in order], format_func=lambda u: f"unit {u}")
st.html(coloured_text_html(tokens, values[:, unit], f"{name}[{unit}]", sep=sep))

st.subheader("Pattern search")
st.caption("Select a span: the units on (≥ threshold) across all of it and off just before it are the pattern. "
           "Below, every other span of this text where those units switch on together.")
a = min(window_bounds(len(tokens), first)[0] + 5, len(tokens) - 2)
p1, p2, p3 = st.columns([2, 1, 1])
span = p1.slider("Span (token positions)", 0, len(tokens) - 1, (a, a + 1), key=span_key)
threshold = p2.number_input("Threshold", value=0.3, step=0.05, format="%.2f")
min_fraction = p3.slider("Match when this share of the units is on", 0.1, 1.0, 1.0, 0.05)
units = select_units(values, span[0], span[1], threshold)
st.text(f"Span: {sep.join(tokens[span[0]:span[1] + 1])}\n{len(units)} units: "
        + (", ".join(f"u{u}" for u in units) or "none"))
if len(units):
    matches = search_pattern(values, units, threshold, min_fraction, exclude=span)
    st.dataframe(matches_table(matches, tokens, sep=sep), hide_index=True, width="stretch")
else:
    st.info("No unit is on across the whole span and off just before it: lower the threshold or shorten the span.")
appstate.show_equations(cfg)
