"""Gates: Graves' Fig. 4.4 from three real models (Elman RNN, LSTM, GRU), one per row over a window of the text
that can be read at full width; gate saturation, gate histograms, the state over time. Every choice is in the URL."""
import streamlit as st

import appstate
from appstate import URL, models
from appstate.inspection import gate_chain
from appstate.figures import chart
from lmcore.viz.gates import (
    fig44_figure,
    fig44_window,
    gate_histogram_figure,
    glyph_layout,
    saturation_figure,
    sigmoid_gates,
    state_over_time_figure,
    tokens_that_fit,
)

MODELS = [("Elman RNN", ("elman", "irnn"), "demo:agreement-elman", "gates_elman"),
          ("LSTM", ("lstm",), "demo:agreement-lstm", "gates_lstm"),
          ("GRU", ("gru",), "demo:agreement-gru", "gates_gru")]
KEEPER, MEAN = "keeper unit", "mean of all"


def unit_label(unit) -> str:
    return unit if isinstance(unit, str) else f"unit {unit}"


def follow_source(n_tokens: int, width: int) -> None:
    """When the source step moves out of the window, move the window to show it (and what follows it)."""
    source, start = st.session_state["src"], st.session_state.get("at", 0)
    if not start <= source < start + width:
        st.session_state["at"] = fig44_window(n_tokens, source, width)[0]


st.title("Gates")
st.caption("An LSTM block can retain information indefinitely: if the forget gate is open and the input gate is "
           "closed, the cell passes on its content from the previous step. Below, the same text through three "
           "trained models: how long does each one's hidden state still depend on one input word?")

models.not_listed("gates")
picked = [(label, run) for col, (label, archs, default, key) in zip(st.columns(3), MODELS)
          if (run := models.pick_model(label, key, archs=archs, fallback=default, container=col)) is not None]
if not picked:
    st.stop()
# the text follows the user's own run when one is shown, else the middle model's corpus
text_run = next((run for _, run in picked if not run.ref.is_demo), picked[len(picked) // 2][1])
tokens = models.pick_text(text_run.cfg, text_run.vocab, key="text", typed_first=True)
if len(tokens) < 2:
    st.warning("Type at least two tokens.")
    st.stop()

fit = tokens_that_fit()
c1, c2, c3, c4 = st.columns([3, 1, 2, 2])
width = min(len(tokens), int(c2.number_input(
    "Tokens shown", 5, fit, fit, key="win", bind=URL,
    help=f"Steps per figure: at most {fit}, what stays legible on a wide screen. A longer text is shown a window "
         "at a time; move the window with the slider below the figures' settings.")))
source = c1.slider(
    "Source step", 0, len(tokens) - 1, min(1, len(tokens) - 1), key="src", bind=URL, on_change=follow_source,
    args=(len(tokens), width),
    help="The input x_source whose influence is traced: each circle is shaded by ‖∂h_t/∂x_source‖, how much "
         "the hidden state at step t still depends on that one input. Steps are the grey numbers under the tokens.")
c1.caption(f"x_{source} = **{appstate.md(tokens[source])}**")
hidden = min(run.cfg.model.hidden for _, run in picked)
unit = c3.selectbox(
    "Unit", [KEEPER, MEAN, *range(hidden)], format_func=unit_label, key="g_unit", bind=URL,
    help="Whose h_t and gates are drawn. Keeper unit: in each model, the unit whose state at the window's last "
         "step depends most on the source (it differs between models); mean of all: the average over all units.")
closed_below, open_above = c4.slider(
    "Gate closed below · open above", 0.0, 1.0, (0.1, 0.9), 0.05, key="thr", bind=URL,
    help="A gate is a sigmoid in [0, 1]. Below the first number it is drawn closed (—: it blocks), above the "
         "second open (O: it lets through), in between ◐. The saturation charts below count with the same numbers.")
max_layers = max(run.cfg.model.layers for _, run in picked)
layer = st.selectbox("Layer", range(max_layers), index=max_layers - 1, format_func=lambda i: str(i + 1), key="g_layer",
                     bind=URL, help="Which layer's hidden state and gates (1: next to the input). A model with "
                                    "fewer layers shows its top one.") if max_layers > 1 else 0
if len(tokens) > width:
    last = len(tokens) - width
    if st.session_state.get("at", 0) > last:  # the text got shorter
        st.session_state["at"] = last
    if "at" not in st.session_state and "at" not in st.query_params:  # a link naming only the source step
        st.session_state["at"] = fig44_window(len(tokens), source, width)[0]
    start = st.slider("Window: first step shown", 0, last, key="at", bind=URL,
                      help="Slide along the text to follow the source's influence as far as it reaches.")
else:
    start = 0
stop = start + width
st.caption(f"Showing steps {start}–{stop - 1} of {len(tokens)}.")

chains = {}
figures = st.container()  # the figures one right under the other, so a step lines up across models
for col, (label, run) in zip(st.columns(len(picked)), picked):
    cfg, arch = run.cfg, run.cfg.model.arch
    chain = gate_chain(run, tokens, source, start, stop, layer, None if unit in (KEEPER, MEAN) else int(unit),
                       keeper=unit == KEEPER)
    chains[label] = (chain, arch)
    glyphs = glyph_layout(chain.gates, arch, closed_below, open_above, start, chain.constant)
    which = "mean of all units" if chain.unit is None else f"unit {chain.unit}"
    name = appstate.model_name(cfg.model)
    chart(fig44_figure(chain.trace.tokens[start:stop], chain.shading, glyphs, start, source, arch,
                       f"{name}, {which}: ‖∂h_t/∂x_{source}‖", chain.notes, chain.constant,
                       (closed_below, open_above)), "gates-fig44", figures, key=f"fig44_{label}", width="stretch")
    for note in chain.notes.values():
        col.caption(f"**{cfg.model.variant_label}** — {note}.")
    raw = chain.sensitivity
    peak, last_shown = raw.max(), raw[stop - 1] if stop - 1 < len(raw) else 0.0
    col.caption(f"{name}: the last step shown keeps {last_shown / peak:.0%} of the peak sensitivity ({peak:.2g})."
                if peak > 0 else f"{name}: no sensitivity; this unit does not depend on the source input.")
    with col:
        models.show_equations(cfg)
st.caption("Each circle is the hidden state h_t (of the chosen unit, or the mean of all units): black where it is "
           "most sensitive to the input at the source step (ringed in red), white where it no longer depends on "
           "it; shades are relative to the peak over the whole text. LSTM: input gate i below, forget gate f left, "
           "output gate o above (an LSTM variant without one of them draws it permanently open, in grey). GRU: "
           "update gate z left (open = keep h_t−1), reset gate r below. Hover for values.")
st.page_link("views/gradients.py", label="Next: gradients through time, how far back each model's error signal "
             "reaches (Fig. 4.1 and the decay with k)", icon=":material/trending_down:",
             query_params={"decay_runs": ",".join(run.ref.key for _, run in picked)})

st.subheader("Gate saturation")
st.caption("Karpathy et al. (2015): each point is one unit's gate; x: the share of steps it is closed, y: the share "
           "it is open, over the whole text. Points on the dotted line are always saturated (a switch); points near "
           "(0, 0) are never saturated. Use a longer text (the validation split) for stable fractions.")
gated = [(label, chain.trace, chain.layer, arch) for label, (chain, arch) in chains.items() if arch in ("lstm", "gru")]
panels = [len(sigmoid_gates(tr.layers[lay])) for _, tr, lay, _ in gated]  # column widths: one panel per gate
for col, (label, tr, lay, arch) in zip(st.columns(panels) if gated else [], gated):
    chart(saturation_figure(tr.layers[lay], closed_below, open_above, f"{label}, layer {lay + 1}",
                            tr.gate_notes), "gates-saturation", col, key=f"sat_{label}", width="stretch")

st.subheader("Gate values and the state over time")
st.caption("Histograms of every gate value (all steps, all units), the thresholds dotted in red; then, per step, a "
           "box of the units' cell state c (LSTM: its linear memory, free to grow) or hidden state h (GRU: its only "
           "state, kept in [−1, 1]), over the whole text, the figures' window shaded.")
for col, (label, tr, lay, arch) in zip(st.columns(panels) if gated else [], gated):
    chart(gate_histogram_figure(tr.layers[lay], closed_below, open_above, f"{label}, layer {lay + 1}",
                                tr.gate_notes), "gates-gate-histogram", col, key=f"hist_{label}", width="stretch")
for label, tr, lay, arch in gated:
    name = "cell state c" if arch == "lstm" else "hidden state h"
    chart(state_over_time_figure(tr.layers[lay]["c" if arch == "lstm" else "h"], tr.tokens, name,
                                 f"{label}, layer {lay + 1}: {name}",
                                 (start, stop) if len(tokens) > width else None), "gates-state-over-time",
          key=f"state_{label}", width="stretch")
