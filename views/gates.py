"""Gates: Graves' Fig. 4.4 from three real models (Elman RNN, LSTM, GRU), gate saturation, gate histograms."""
import streamlit as st

import appstate
from lmcore.inspect.sensitivity import input_sensitivity, normalise, unit_sensitivity
from lmcore.inspect.trace import gate_notes
from lmcore.viz.gates import (PLACES, fig44_figure, fig44_window, gate_histogram_figure, glyph_layout,
                              saturation_figure, select_units, state_over_time_figure)

MODELS = [("Elman RNN", ("elman", "irnn"), "demo:agreement-elman", "gates_elman"),
          ("LSTM", ("lstm",), "demo:agreement-lstm", "gates_lstm"),
          ("GRU", ("gru",), "demo:agreement-gru", "gates_gru")]
MEAN, KEEPER = "mean of all units", "the unit that keeps the source longest"

st.title("Gates")
st.caption("An LSTM block can retain information indefinitely: if the forget gate is open and the input gate is "
           "closed, the cell passes on its content from the previous step. Below, the same text through three "
           "trained models: how long does each one's hidden state still depend on one input word?")

picked = []
for col, (label, archs, default, key) in zip(st.columns(3), MODELS):
    ref = appstate.pick_run(label, key, archs=archs, fallback=default, container=col)
    if ref is not None:
        model, cfg, vocab, _ = appstate.load_run(ref)
        picked.append((label, ref, model, cfg, vocab))
if not picked:
    st.stop()

if "gates_text_source" not in st.session_state:  # one typed sentence, unless the user chose otherwise
    st.session_state["gates_text_source"] = "type my own"
# the text follows the user's own run when one is shown, else the middle model's corpus
_, _, _, text_cfg, text_vocab = next((p for p in picked if not p[1].is_demo), picked[len(picked) // 2])
tokens = appstate.pick_text(text_cfg, text_vocab, key="gates_text")
if len(tokens) < 2:
    st.warning("Type at least two tokens.")
    st.stop()

c1, c2, c3, c4 = st.columns([3, 1, 2, 2])
source = c1.select_slider("Source step: the input x whose influence is traced", range(len(tokens)),
                          value=min(1, len(tokens) - 1), format_func=lambda t: f"{t}: {tokens[t]}")
width = c2.number_input("Window (tokens)", 5, 40, 20)
stacked = c2.toggle("Stack", help="One chart above the other, full width: easier to read for long windows.")
hidden = min(p[3].model.hidden for p in picked)
unit = c3.selectbox("Unit", [KEEPER, MEAN] + list(range(hidden)), format_func=str)
closed_below, open_above = c4.slider("Closed below · open above", 0.0, 1.0, (0.1, 0.9), 0.05)
max_layers = max(p[3].model.layers for p in picked)
layer = st.selectbox("Layer", range(max_layers), index=max_layers - 1, format_func=lambda i: f"layer {i + 1}") \
    if max_layers > 1 else 0

start, stop = fig44_window(len(tokens), source, width)
traces = {}
for col, (label, ref, model, cfg, vocab) in zip([st.container()] * 3 if stacked else st.columns(3), picked):
    arch, lay = cfg.model.arch, min(layer, cfg.model.layers - 1)
    ids = vocab.encode(tokens[:stop])
    if unit == KEEPER:  # this model's unit most sensitive to the source at the window's last step
        units = int(unit_sensitivity(model, ids, source, stop - 1, lay).argmax())
    else:
        units = None if unit == MEAN else int(unit)
    tr = appstate.run_trace(ref, tokens)
    traces[label] = (tr, lay, arch)
    raw = input_sensitivity(model, ids, source, lay, units)[start:]
    gates = {g: select_units(tr.layers[lay][g], units)[start:stop] for g in PLACES[arch]}
    notes, constant = gate_notes(cfg.model), cfg.model.constant_gates  # an LSTM variant without a gate
    glyphs = glyph_layout(gates, arch, closed_below, open_above, start, constant)
    which = "mean of all units" if units is None else f"unit {units}"
    name = f"{label} {cfg.model.variant_label}".rstrip()
    col.plotly_chart(fig44_figure(tr.tokens[start:stop], normalise(raw), glyphs, start, source, arch,
                                  f"{name}, {which}: ‖∂h_t/∂x_{source}‖", 12 if stacked else None, notes, constant),
                     key=f"fig44_{label}", width="stretch")
    for note in notes.values():
        col.caption(f"**{cfg.model.variant_label}** — {note}.")
    peak = raw.max()
    col.caption(f"Last step shown: {raw[-1] / peak:.0%} of the peak ({peak:.2g})." if peak > 0 else
                "No sensitivity: this unit does not depend on the source input.")
    with col:
        appstate.show_equations(cfg)
st.caption("Each circle is the hidden state h_t (of the chosen unit, or the mean of all units): black where it is "
           "most sensitive to the input at the source step (ringed in red), white where it no longer depends on "
           "it. LSTM: input gate below, forget gate left, output gate above (an LSTM variant without one of them "
           "draws it permanently open, in grey). GRU: update gate z left (open = keep "
           f"h_t−1), reset gate r below. O: open (> {open_above:g}), —: closed (< {closed_below:g}), ◐: in between. "
           "Hover for values.")

st.subheader("Gate saturation")
st.caption("Karpathy et al. (2015): each point is one unit's gate; x: the fraction of steps it is closed, y: the "
           "fraction it is open, over the whole text. Points on the dotted line are always saturated (a switch); "
           "points near (0, 0) are never saturated. Use a longer text (the validation split) for stable fractions.")
gated = [(label, *traces[label]) for label, *_ in picked if traces[label][2] in ("lstm", "gru")]
for col, (label, tr, lay, arch) in zip(st.columns(2), gated):
    col.plotly_chart(saturation_figure(tr.layers[lay], closed_below, open_above, f"{label}, layer {lay + 1}",
                                       tr.gate_notes), key=f"sat_{label}", width="stretch")

st.subheader("Gate values and the state over time")
st.caption("Histograms of every gate value (all steps, all units); then, per step, a box of the units' cell state c "
           "(LSTM: its linear memory, free to grow) or hidden state h (GRU: its only state, kept in [−1, 1]).")
for col, (label, tr, lay, arch) in zip(st.columns(2), gated):
    col.plotly_chart(gate_histogram_figure(tr.layers[lay], closed_below, open_above, f"{label}, layer {lay + 1}",
                                           tr.gate_notes), key=f"hist_{label}", width="stretch")
    state = "c" if arch == "lstm" else "h"
    name = "cell state c" if state == "c" else "hidden state h"
    col.plotly_chart(state_over_time_figure(tr.layers[lay][state], tr.tokens, name, f"{label}, layer {lay + 1}: {name}"),
                     key=f"state_{label}", width="stretch")
