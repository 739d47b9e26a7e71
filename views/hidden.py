"""Hidden states: the units × tokens heatmap of h (or c), text coloured by one unit, LSTMVis pattern search.

Every default is proposed from the data (threshold, span, feature), so the page finds something on any run;
every field is in the URL, so a link reopens the same view."""
from functools import partial

import streamlit as st

import appstate
from appstate import URL, models
from appstate.inspection import (EOS, GATE_LABELS, ORDERS, SCORE_NAMES, clearest_feature, matches_table, order_units,
                                 ordinal, propose_span, propose_threshold, regex_feature, search_pattern, select_units,
                                 suggest_features, value_bounds)
from appstate.figures import chart
from lmcore.viz.colour import NARROW, colour_range, fills_range, text_colour_range
from lmcore.viz.hidden import WINDOW, brushed_span, coloured_text_html, heatmap_figure, unit_label, window_bounds

OWN = "my own"


def pick_feature(tokens: list[str], sep: str, values, context):
    """The 0/1 feature the units are correlated with: one proposed from this text (at first the one some
    unit follows most closely), or the user's regex."""
    features = suggest_features(tokens, sep)
    suggested = {f.name: f for f in features}
    clearest = clearest_feature(values, features)
    appstate.follow_default("feature", features[clearest].name if features else OWN, context)
    r1, r2 = st.columns([1, 2])
    choice = r1.selectbox("Feature", [*suggested, OWN], index=clearest if features else 0, key="feature", bind=URL,
                          on_change=_start_own_pattern,
                          help="Proposed from this text: each marks at least a few of its tokens and at most 60%; "
                               "the first shown is the one some unit follows most closely. Pick “my own” to write "
                               "a regular expression.")
    if choice != OWN:
        st.session_state["_feature_pattern"] = suggested[choice].pattern
        # in a code span, literal: a proposed pattern is ours or \b<word>\b, with no backtick to end the span
        r2.markdown(f"Regular expression: `{suggested[choice].pattern}`")
        return suggested[choice].mask
    first = next(iter(suggested.values())).pattern if suggested else r"\b(the)\b"
    pattern = r2.text_input("Regular expression", first, max_chars=200, key="pattern", bind=URL,
                            help="Over the text with tokens joined by spaces (nothing between characters) and a "
                                 "line break at each <eos>; with a group ( ), only the group marks tokens.")
    try:
        feature = regex_feature(tokens, pattern, sep)
    except ValueError as err:
        st.error(f"Feature: {appstate.md(err)}")
        st.stop()
    if feature.min() == feature.max():
        st.warning(f"The pattern marks {'every' if feature[0] else 'no'} token, so no unit correlates with it: "
                   "try one of the proposed features or another pattern.")
    return feature


def _start_own_pattern() -> None:
    # switching to "my own" starts from the feature shown before, so the user edits rather than retypes
    if st.session_state.get("feature") == OWN and "_feature_pattern" in st.session_state:
        st.session_state["pattern"] = st.session_state["_feature_pattern"]


def _take_brush(first: int, stop: int) -> None:
    # a span brushed on the heatmap (drawn with the window [first, stop)) becomes the span slider's value
    span = brushed_span(st.session_state["brush"]["selection"], first, stop)
    if span is not None:
        st.session_state["span"] = span


st.title("Hidden states")
st.caption("Every column is a token of the text, every row a unit of the hidden state h_t = the model's memory "
           "after reading x_1 … x_t. Sort the units to find the ones that track something; colour the text by one "
           "of them (Karpathy et al. 2015); select a span to find where the same units switch on (Strobelt et al., "
           "LSTMVis).")
models.not_listed("hidden states over the text")
run = models.open_run("Run", text_key="hidden_text", equations=False,  # the equations go at the end
                      archs=models.RECURRENT)
if run is None:
    st.stop()
ref, cfg, tokens = run.ref, run.cfg, run.tokens
tr = models.run_trace(ref, tokens)  # tr.tokens may show <unk>; the page shows the words as given
sep = "" if cfg.corpus.tokenizer == "char" else " "

c1, c2, c3 = st.columns(3)
layer = c3.selectbox("Layer", range(1, len(tr.layers) + 1), key="layer", bind=URL,
                     help="Layer 1 reads the word embeddings; each layer above reads the h of the one below") - 1 \
    if len(tr.layers) > 1 else 0
name = c1.radio("Quantity", [n for n in ("h", "c") if n in tr.layers[layer]], format_func=GATE_LABELS.get,
                horizontal=True, key="quantity", bind=URL,
                help="h is what the output layer W and the next step read; an LSTM's cell state c is its "
                     "memory line, unbounded, which h sees through o ⊙ tanh(c)")
by = c2.selectbox("Sort units by", list(ORDERS), format_func=ORDERS.get, key="sort", bind=URL,
                  help="variance: the units that change most over this text on top; correlation: the units "
                       "that follow (or oppose) a feature of the text, such as being inside parentheses")
values = tr.quantity(name, layer)  # (T, H)
colour = colour_range(values, value_bounds(cfg.model, name), name)
narrow = fills_range(values, colour) < NARROW
scale = st.radio("Colours", ["activation's range", "this text's range"], index=1 if narrow else 0,
                 horizontal=True, key="colours", bind=URL,
                 help="the activation's range shows values as the model can produce them (σ: 0 to 1); this "
                      "text's range stretches the colours over the values that occur, so units that barely move "
                      "still differ")
if narrow and scale != "this text's range":
    st.caption(f"These values span under {NARROW:.0%} of the activation's range, so they look alike: try this "
               "text's range.")
if scale == "this text's range":
    colour = text_colour_range(values, name)

feature = pick_feature(tokens, sep, values, (ref.key, hash(tuple(tokens)), layer, name)) \
    if by == "correlation" else None
if feature is not None:
    st.caption(f"The feature marks {int(feature.sum())} of {len(feature)} tokens (green strip above the heatmap).")
order, scores = order_units(values, by, feature)

first = 0
if len(tokens) > WINDOW:
    first = st.slider("Window: first token shown", 0, len(tokens) - WINDOW, 0, step=10, key="window", bind=URL,
                      help=f"{WINDOW} tokens are drawn at once; slide to see every token of the text")
first, stop = window_bounds(len(tokens), first)
heat = st.container()  # the heatmap, drawn once the span below is known
st.caption("Drag across tokens on the heatmap to select a span for the pattern search below (a narrow drag takes "
           "one token); hover a cell for its value.")

st.subheader("The text, coloured by one unit")
appstate.follow_default("unit", int(order[0]), (ref.key, hash(tuple(tokens)), layer, name, by,
                                                hash(feature.tobytes()) if feature is not None else None))
unit = st.selectbox("Unit (in the order above)", [int(u) for u in order], format_func=lambda u: f"u{u}",
                    key="unit", bind=URL, help="The first unit is the top row of the heatmap")
score_name = SCORE_NAMES.get(by, "")
rank = int(list(order).index(unit))
st.caption(f"{unit_label(unit, scores[rank] if score_name else None, score_name)}, row {rank + 1} of "
           f"{len(order)}. Colours: {colour.note}.")
st.html(coloured_text_html(tokens, values[:, unit], f"{name}[{unit}]", sep=sep, colour=colour))

st.subheader("Pattern search")
st.caption("Select a span (drag across it on the heatmap, or use the slider): the units on (≥ threshold) across "
           "all of it and off just before it are the pattern. Below, every other span of this text where those "
           "units switch on together.")
proposed = propose_threshold(values, name=name)
p1, p2, p3 = st.columns([2, 1, 1])
appstate.follow_default("threshold", None, (ref.key, layer, name))
typed = p2.number_input("Threshold", value=None, step=0.05, format="%.3f", key="threshold", bind=URL,
                        placeholder=f"{proposed.value:.3g} (proposed)",
                        help="A unit is on where its value is ≥ this. Empty: proposed from the data, the "
                             f"{ordinal(proposed.percentile)} percentile of every value of {name} over this text.")
threshold = proposed.value if typed is None else float(typed)
min_fraction = p3.slider("Match when this share of the units is on", 0.1, 1.0, 1.0, 0.05, key="share", bind=URL,
                         help="1: every unit of the pattern must be on; lower it to find looser echoes")
default_span = propose_span(values, threshold, first, stop, min_fraction)
appstate.follow_default("span", default_span,
                        (ref.key, hash(tuple(tokens)), layer, name, threshold, min_fraction, first))
span = p1.slider("Span (token positions)", 0, len(tokens) - 1, default_span, key="span", bind=URL,
                 help="Proposed: a span whose units also switch on together elsewhere in this text")
p2.caption(f"{proposed.describe()}{' (in use)' if typed is None else '; clear the box to use it'}.")

with heat:
    chart(heatmap_figure(values, tokens, order, first, name=name, feature=feature,
                         scores=scores if score_name else None, score_name=score_name, highlight=span,
                         colour=colour), "hidden-heatmap",
          key="brush", on_select=partial(_take_brush, first, stop), selection_mode=("box",), width="stretch")

units = select_units(values, span[0], span[1], threshold)
shown = appstate.md(sep.join("↵" if t == EOS else t for t in tokens[span[0]:span[1] + 1]))
if len(units):
    matches = search_pattern(values, units, threshold, min_fraction, exclude=span)
    st.markdown(f"**Span {span[0]}–{span[1]}**: “{shown}”. "
                + (f"{len(units)} units switch" if len(units) > 1 else "1 unit switches")
                + f" on here: {', '.join(f'u{u}' for u in units)}. {len(matches)} other span"
                f"{'s' if len(matches) != 1 else ''} where {'they switch' if len(units) > 1 else 'it switches'} on"
                f"{' together' if len(units) > 1 else ''}:")
    if matches:
        st.dataframe(matches_table(matches, tokens, sep=sep), hide_index=True, placeholder=appstate.MISSING, width="stretch")
    else:
        st.info("These units never switch on together elsewhere in this text: lower the share above, or pick "
                "another span.")
else:
    st.info(f"Span {span[0]}–{span[1]} (“{shown}”): no unit is on across all of it and off just before it at "
            f"threshold {threshold:.3g}. Lower the threshold, shorten the span, or go back to the proposed span "
            f"{default_span[0]}–{default_span[1]}.")

st.markdown("**Next:** how long does this model keep one input, and what does it predict from these states?")
family = {"irnn": "elman"}.get(ref.arch, ref.arch)
n1, n2 = st.columns(2)
n1.page_link("views/gates.py", label="Gates: how long the memory lasts →", icon=":material/door_open:",
             query_params={f"gates_{family}": ref.key})
n2.page_link("views/next_word.py", label="Next word: the prediction read from h →", icon=":material/keyboard_tab:",
             query_params={"run": ref.key})
models.show_equations(cfg)
