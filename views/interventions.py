"""Interventions: close a gate, freeze the cell, silence the number units, and see what changes, before and after:
perplexity, agreement by distance, each token's surprisal, the error signal through time, Graves' Fig. 4.4.
Every field is in the URL (prefix iv_), so a link reopens the same experiment."""
import streamlit as st

import appstate
from appstate import URL, models
from appstate import interventions as ivs
from appstate.widgets import field
from appstate.figures import chart
from lmcore.viz.gates import fig44_figure, fig44_window, glyph_layout, tokens_that_fit
from lmcore.viz.gradients import decay_figure
from lmcore.viz.interventions import agreement_change_figure, surprisal_change_html

KEEPER, MEAN = "keeper unit", "mean of all"

st.title("Interventions")
st.caption("An intervention changes one quantity inside the network as it reads, and everything after it sees the "
           "change. The lecture's LSTM keeps its memory in the cell, c_t = f ⊙ c_{t−1} + i ⊙ g_t: set the forget gate "
           "f to 0 and the cell forgets everything at every step; set f to 1 and the input gate i to 0 and it keeps "
           "exactly what it held. If the model's long-range agreement rests on that memory, it should fail when the "
           "memory is cut, and only then. Pick a preset or your own point (a gate, the cell c, the hidden state h), "
           "units, operation and first step; the same model before and after is compared below.")
models.not_listed("state to intervene on")
run = models.pick_model("Run", key="iv_run", archs=models.RECURRENT, default="demo:agreement-lstm")
if run is None:
    st.stop()
cfg = run.cfg.model
presets = {p.name: p for p in ivs.presets_for(cfg.arch)}
if st.session_state.get("iv_preset") not in presets:  # another architecture's preset (a run of another kind)
    st.session_state["iv_preset"] = next(iter(presets))
preset = presets[st.selectbox("Preset", list(presets), key="iv_preset", bind=URL,
                              help="Fills the fields below; edit any of them afterwards.")]
st.caption(appstate.md(preset.says))

context = (preset.name, run.ref.key)  # a new preset or run puts every field back to the preset's value
points = ivs.point_options(cfg.arch)
c1, c2, c3, c4, c5 = st.columns([1, 2, 2, 1, 1])
layer = field(c1.selectbox, "Layer", "iv_layer", 0, list(range(cfg.layers)), context=context,
              format_func=lambda k: f"layer{k}", help="Which layer's gates, cell or state (layer0: next to the input).")
point = field(c2.selectbox, "Point", "iv_point", preset.point, points, context=context, format_func=ivs.point_label,
              help="The quantity changed as the cell computes it: a gate, the candidate, the LSTM's cell c, the "
                   "hidden state h.")
op = field(c3.selectbox, "Operation", "iv_op", preset.op, list(ivs.OPS), context=context,
           format_func=ivs.OP_NAMES.get,
           help="set: replace by the value (0 closes a sigmoid gate, 1 opens it); mean: each unit's mean over the "
                "validation text; scale: multiply; add: add the value.")
value = field(c4.number_input, "Value", "iv_value", float(preset.value), -100.0, 100.0, step=0.1, format="%.2f",
              context=context, disabled=op == "mean")
start = int(field(c5.number_input, "From step", "iv_from", preset.start, 0, 10_000, context=context,
                  help="The first step changed. Step 0 is the <eos> each sentence is read after: in “the roses in "
                       "…”, “the” is step 1 and “roses” step 2. Perplexity reads the validation text as 10 streams "
                       "and counts from each stream's start."))
d1, d2, d3 = st.columns([2, 2, 1])
also = field(d1.selectbox, "And also", "iv_also", preset.also, [ivs.NOTHING, *points], context=context,
             format_func=lambda p: p if p == ivs.NOTHING else ivs.point_label(p),
             help="A second point of the same layer, changed on the same units and steps (freeze the cell: f = 1 "
                  "and i = 0).")
also_op = field(d2.selectbox, "Its operation", "iv_also_op", preset.also_op, list(ivs.OPS), context=context,
                format_func=ivs.OP_NAMES.get, disabled=also == ivs.NOTHING)
also_value = field(d3.number_input, "Its value", "iv_also_value", float(preset.also_value), -100.0, 100.0, step=0.1,
                   format="%.2f", context=context, disabled=also == ivs.NOTHING or also_op == "mean")
u1, u2, u3 = st.columns([3, 1, 2])
mode = field(u1.radio, "Units", "iv_units", preset.units, list(ivs.UNIT_MODES), context=context, horizontal=True,
             help="Number units: found with the agreement probe, by ablating each unit alone (Lakretz et al. 2019; "
                  "about 20 s once per run and point) or by correlating each unit at the verb with the subject's "
                  "number (instant). Units found on the Hidden states page can be typed.")
k = int(field(u2.number_input, "k", "iv_k", preset.k, 1, cfg.hidden, context=context,
              disabled=mode in (ivs.ALL, ivs.TYPED)))
typed = field(u3.text_input, "Units (numbers)", "iv_list", "", context=context, max_chars=2000,
              disabled=mode != ivs.TYPED, placeholder="e.g. 3, 17, 104")
try:
    draws_units, found = ivs.unit_draws(run, f"layer{layer}.{point}", mode, k, typed)
except ValueError as err:
    st.error(appstate.md(err))
    st.stop()
draws = [ivs.interventions(layer, point, op, value, start, also, also_op, also_value, units) for units in draws_units]
st.info("Intervention: " + appstate.md("; ".join(i.label for i in draws[0]))
        + (f" — and {len(draws) - 1} more draws" if len(draws) > 1 else ""))
if found:
    st.caption(appstate.md(found))

appstate.follow_default("iv_text", ivs.default_text(run), run.ref.key, fill=True)
text = st.text_input("Text", key="iv_text", max_chars=2000, bind=URL,
                     help="Read after an <eos> (step 0), as the probe's sentences are. Its surprisal token by token "
                          "and Graves' Fig. 4.4 are drawn below.")
tokens = ivs.text_tokens(text, run)
models.unknown_caption(tokens[1:], run.vocab)
if len(tokens) < 3:
    st.warning("Type at least two tokens.")
    st.stop()
with st.spinner("Measuring before and after…"):
    m = ivs.measure(run, draws, tokens)

st.header("Before and after")
k1, k2, k3 = st.columns(3)
many = len(draws) > 1
ppl, ppl_spread = m.ppl
k1.metric(f"Validation perplexity (before: {m.ppl_before:.2f})", f"{ppl:.2f}" + (f" ± {ppl_spread:.2f}" if many else ""),
          f"{ppl - m.ppl_before:+.2f}", delta_color="inverse",
          help=f"The first {ivs.PPL_TOKENS:,} tokens of the validation split, read as in evaluation (so it can differ "
               "a little from the run's validation perplexity on Compare, which reads the whole split).")
if m.agreement_before is not None:
    (near0, far0), (near, _), (far, far_spread) = m.accuracy()
    k2.metric(f"Agreement, 0–{ivs.FAR - 1} words between (before: {near0:.1%})", f"{near:.1%}",
              f"{100 * (near - near0):+.1f} points")
    k3.metric(f"Agreement, {ivs.FAR}+ words between (before: {far0:.1%})",
              f"{far:.1%}" + (f" ± {100 * far_spread:.1f}" if many else ""), f"{100 * (far - far0):+.1f} points",
              help="Is P(correct verb) > P(wrong verb) at the verb, over the probe's validation sentences with at "
                   f"least {ivs.FAR} words between subject and verb?")
else:
    k2.info("The agreement probe does not apply to this run's corpus: pick a run trained on the agreement corpus.")
left, right = st.columns(2)
if m.agreement_before is not None:
    chart(agreement_change_figure(m.agreement_before, m.agreement_after, "after", ivs.FAR),
          "interventions-agreement-change", left, width="stretch", key="iv_fig_agreement")
if m.decay_before is not None:
    chart(decay_figure({"before": m.decay_before, "after" + (" (first draw)" if many else ""):
                        m.decay_after}, "Error signal reaching back", "‖∂ℓ_t/∂h_{t−k}‖"),
          "interventions-decay", right, width="stretch", key="iv_fig_decay")
    right.caption(f"Measured on windows of the validation text, the intervention inside the forward and backward "
                  f"passes; its first step counts from each window's first ({ivs.DECAY_K} + 20 steps before the "
                  "loss), so from step 0 it acts on every step shown.")

st.subheader("Surprisal, token by token")
st.caption("Each token coloured by how many more bits it costs to predict with the intervention than without"
           + (" (after: the mean over the draws)" if many else "") + ".")
st.html(surprisal_change_html(tokens[1:], m.surprisal_before, m.surprisal_after))

st.subheader("Graves' Fig. 4.4, before and after")
fit = tokens_that_fit()
g1, g2 = st.columns(2)
source = int(g1.number_input("Source step", 0, len(tokens) - 1, min(2, len(tokens) - 1), key="iv_src", bind=URL,
                             help="The input whose influence is traced (step 2: “roses” in the lecture's sentence)."))
unit = g2.selectbox("Unit", [KEEPER, MEAN, *range(cfg.hidden)], key="iv_unit", bind=URL,
                    format_func=lambda u: u if isinstance(u, str) else f"unit {u}",
                    help="Whose h_t and gates are drawn. Keeper unit: the unit whose state at the window's last step "
                         "depends most on the source, without the intervention; the same unit after.")
first, stop = fig44_window(len(tokens), source, fit)
before, after = ivs.chains(run, tokens, source, first, stop, layer, None if unit in (KEEPER, MEAN) else int(unit),
                           unit == KEEPER, draws[0])
which = "mean of all units" if before.unit is None else f"unit {before.unit}"
for name, chain in (("before", before), ("after" + (" (first draw)" if many else ""), after)):
    glyphs = glyph_layout(chain.gates, cfg.arch, 0.1, 0.9, first, chain.constant)
    chart(fig44_figure(tokens[first:stop], chain.shading, glyphs, first, source, cfg.arch,
                       f"{name}, layer{layer}, {which}: ‖∂h_t/∂x_{source}‖", chain.notes, chain.constant,
                       (0.1, 0.9)), "interventions-fig44", width="stretch", key=f"iv_fig44_{name.split()[0]}")
st.caption(f"Steps {first}–{stop - 1} of the text. Both figures share one shading scale: black is the larger peak of "
           "‖∂h_t/∂x_source‖ before and after, so a memory the intervention cuts shows as circles turning white. "
           "After: the gates and h of the run with the intervention, and the sensitivity with the intervention inside "
           "the backward pass. A gate set to 1 or 0 is drawn open or closed.")

st.page_link("views/gates.py", label="Gates: the same figure for the Elman RNN, LSTM and GRU side by side, without "
             "interventions", icon=":material/door_open:",
             query_params={"gates_lstm": run.ref.key} if cfg.arch == "lstm" else None)
st.page_link("views/memory.py", label="Markov vs memory: agreement by distance beside the n-gram, and how much "
             "context each model uses", icon=":material/memory:", query_params={"runs_view": run.ref.key})
